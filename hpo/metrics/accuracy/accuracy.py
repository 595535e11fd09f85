"""Fraction of predictions equal to the reference."""

from sklearn.metrics import accuracy_score

from hpo.metrics.sklearn_metric import sklearn_metric

Accuracy = sklearn_metric("accuracy", accuracy_score, "Fraction of predictions equal to the reference.", averaged=False)
