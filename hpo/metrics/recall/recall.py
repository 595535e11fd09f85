"""Share of actual positives that are found."""

import datasets
import evaluate
from sklearn.metrics import recall_score


class Recall(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Share of actual positives that are found.",
            citation="",
            inputs_description="predictions and references: lists of integer class ids; average: macro, micro, weighted or binary",
            features=datasets.Features(
                {"predictions": datasets.Value("int32"), "references": datasets.Value("int32")}),
        )

    def _compute(self, predictions, references, average="macro", labels=None, pos_label=1, sample_weight=None):
        return {"recall": float(recall_score(references, predictions, average=average, labels=labels, pos_label=pos_label, sample_weight=sample_weight, zero_division=0))}
