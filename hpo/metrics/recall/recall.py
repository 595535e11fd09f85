"""Share of actual positives that are found."""

from sklearn.metrics import recall_score

from hpo.metrics.sklearn_metric import sklearn_metric

Recall = sklearn_metric("recall", recall_score, "Share of actual positives that are found.", averaged=True)
