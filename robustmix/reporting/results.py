"""Stored results as tidy pandas tables: the report's only input, under the names the rest of
robustmix and the tests use.

The code lives in four modules with one idea each: columns (the tables' words and keys),
loading (reading run folders, one pass over each run's files), compat (runs written by older
versions) and tables (the tidy tables built from what was read). This module only re-exports
them, so that `robustmix.reporting.results` keeps naming everything it named before the split.
"""

from __future__ import annotations

from .columns import (  # noqa: F401
    CHANCE,
    CONDITION_KEYS,
    GROUP_KEYS,
    KINDS,
    ROUND,
    SETTING_KEYS,
    as_int,
    pct,
)
from .compat import (  # noqa: F401
    checkpoint_name,
    counts_from_labels_csv,
    memorisation_null,
    memorisation_null_curve,
    method_from_name,
)
from .loading import (  # noqa: F401
    ATTACK_REQUIRED,
    METRIC_COLUMNS,
    PERCENT_COLUMNS,
    PREDICTION_COLUMNS,
    Results,
    StoredAttacks,
    _with_added,
    attack_correct,
    find_runs,
    load_results,
    model_name,
    params_text,
    read_attacks,
    read_flags,
    read_metrics,
    read_predictions,
    read_robust,
    read_run,
    schedule_words,
    source_label,
    stored_attacks,
    transition_counts,
    warn,
)
from .tables import (  # noqa: F401
    CURVE_COLUMNS,
    SOURCE_KEYS,
    ablation_table,
    attack_per_run,
    attack_plot_table,
    attack_table,
    chosen_runs,
    corrupted_eval_examples,
    curve_seeds,
    curves_table,
    error_interval,
    examples,
    flag_table,
    image_errors,
    memorisation_table,
    noise_table,
    provenance,
    robust_per_run,
    robust_summary,
    same_attack_set,
    setting_table,
    sources_table,
    sweep_table,
    transition_table,
)

# Private names older callers used before the split.
_pct = pct
_int = as_int
_checkpoint_name = checkpoint_name
_method_from_name = method_from_name
