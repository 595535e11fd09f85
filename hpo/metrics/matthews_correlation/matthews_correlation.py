"""Matthews correlation coefficient, from -1 to 1."""

from sklearn.metrics import matthews_corrcoef

from hpo.metrics.sklearn_metric import sklearn_metric

MatthewsCorrelation = sklearn_metric("matthews_correlation", matthews_corrcoef, "Matthews correlation coefficient, from -1 to 1.", averaged=False)
