"""Studies: a TOML file naming many runs and their attacks, validated whole, then executed."""
