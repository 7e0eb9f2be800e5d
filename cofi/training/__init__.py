"""Training: the loop, SAM, checkpoints, processes and sharding."""
