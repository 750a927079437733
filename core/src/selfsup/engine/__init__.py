"""The training engine: runtime, routines, checkpoints, metrics, the experiment runner."""
