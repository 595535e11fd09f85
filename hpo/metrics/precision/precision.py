"""Share of predicted positives that are right."""

from sklearn.metrics import precision_score

from hpo.metrics.sklearn_metric import sklearn_metric

Precision = sklearn_metric("precision", precision_score, "Share of predicted positives that are right.", averaged=True)
