"""Training: configs and profiles, methods, mixing rules, models, the epoch plan, the trainer."""
