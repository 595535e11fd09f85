"""The shipped metrics load offline through `evaluate` and agree with scikit-learn."""

import pytest
from sklearn import metrics as sk

from hpo import metrics
from hpo.errors import SpecError

PRED = [0, 1, 2, 1, 0, 2, 2]
REF = [0, 1, 1, 1, 2, 2, 0]


@pytest.mark.parametrize(("name", "expected"), [
    ("accuracy", sk.accuracy_score(REF, PRED)),
    ("f1", sk.f1_score(REF, PRED, average="macro")),
    ("precision", sk.precision_score(REF, PRED, average="macro", zero_division=0)),
    ("recall", sk.recall_score(REF, PRED, average="macro")),
    ("matthews_correlation", sk.matthews_corrcoef(REF, PRED)),
])
def test_shipped_metric_matches_sklearn(name: str, expected: float) -> None:
    assert metrics.compute([name], PRED, REF) == {name: pytest.approx(expected)}


def test_weighted_average_is_passed_through() -> None:
    assert metrics.compute(["f1"], PRED, REF, average="weighted")["f1"] == pytest.approx(
        sk.f1_score(REF, PRED, average="weighted"))


def test_unknown_metric_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="cannot load metric 'no_such_metric_here'"):
        metrics.load_metric("no_such_metric_here")
