"""Training engine: fit/evaluate any model on any task, checkpoints, run directories."""
