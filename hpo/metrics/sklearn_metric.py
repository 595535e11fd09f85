"""The shipped metrics are scikit-learn scores wrapped as `evaluate` modules; this builds the wrapper.

Each metric folder holds a script `evaluate.load` can read offline; the script only names its score.
"""

from __future__ import annotations

from typing import Any, Callable

import datasets
import evaluate

AVERAGE_DOC = "; average: macro, micro, weighted or binary"


def sklearn_metric(name: str, score: Callable[..., Any], description: str, *, averaged: bool) -> type:
    def _info(self: evaluate.Metric) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=description, citation="",
            inputs_description="predictions and references: lists of integer class ids"
                               + (AVERAGE_DOC if averaged else ""),
            features=datasets.Features({"predictions": datasets.Value("int32"),
                                        "references": datasets.Value("int32")}))

    def _compute(self: evaluate.Metric, predictions: list[int], references: list[int], **kwargs: Any) -> dict:
        if averaged:
            kwargs.setdefault("average", "macro")
            kwargs.setdefault("zero_division", 0)
        return {name: float(score(references, predictions, **kwargs))}

    return type(name.title().replace("_", ""), (evaluate.Metric,), {"_info": _info, "_compute": _compute})
