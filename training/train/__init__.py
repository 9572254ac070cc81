"""The training recipe: config, schedule, losses, EMA, checkpoints, the bicubic start, the loop."""
