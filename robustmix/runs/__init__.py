"""Run directories: the hand-off between training, attacks and the report."""
