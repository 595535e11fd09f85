"""The Optuna study: storage, sampler and pruner from the spec, and trial counts."""
