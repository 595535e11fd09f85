"""Choosing the final model among the best trials: held-out gate, multi-seed finalists, Pareto pick."""
