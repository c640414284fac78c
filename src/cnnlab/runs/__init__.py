"""What every training command does once: run folders, their config and checkpoint schema, restoring."""
