"""Harmonic mean of precision and recall."""

from sklearn.metrics import f1_score

from hpo.metrics.sklearn_metric import sklearn_metric

F1 = sklearn_metric("f1", f1_score, "Harmonic mean of precision and recall.", averaged=True)
