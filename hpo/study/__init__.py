"""The Optuna study: storage, sampler and pruner from the spec, its objectives, and trial counts."""
