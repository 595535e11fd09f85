"""Report blocks the tasks share: the metrics table, the per-label table, the how-to-use code."""

from __future__ import annotations

from typing import Any

from hpo.report.blocks import Block, Bullets, Code, Heading, Para, Table
from hpo.report.facts import validation_metrics


def metrics_table(final: dict[str, Any], data: dict[str, Any], order: list[str],
                  skip: tuple[str, ...] = ()) -> list[Block]:
    """Validation (best trial) against test (unseen), metrics in the task's order, then any others."""
    val = validation_metrics(final.get("validation_metrics", {}))
    test = final.get("test_metrics", {})
    names = [m for m in order if m in val or m in test] + sorted((set(val) | set(test)) - set(order) - set(skip))
    return [Heading(2, "Evaluation"),
            Para(f"Validation scores are those of the best trial ({data.get('validation')} examples, used to "
                 f"choose the hyperparameters, so slightly optimistic); test scores are the final model's on "
                 f"{data.get('test')} examples it never saw."),
            Table(["metric", "validation (best trial)", "test (unseen)"], [[n, val.get(n), test.get(n)] for n in names])]


def per_label_table(title: str, first: str, per: dict[str, dict[str, Any]]) -> list[Block]:
    """precision/recall/f1/support per label (or entity type), as evaluate() stores them."""
    return [Heading(3, title), Table([first, "precision", "recall", "f1", "support"],
                                     [[k, c["precision"], c["recall"], c["f1"], c["support"]] for k, c in per.items()])]


def intended_use(purpose: str, limits: list[str]) -> list[Block]:
    """What the model is for, and its limits (every model inherits its base model's and data's biases)."""
    return [Heading(2, "Intended use"), Para(purpose + " Check it on a labelled sample of your own data first."),
            Heading(2, "Limitations"),
            Bullets([*limits, "It inherits the biases of its base model and of the training data."])]


def how_to_use(pipeline_task: str, model_ref: str, call: str, cli: str, *, kwargs: str = "") -> list[Block]:
    return [Heading(2, "How to use"), Code(
        f'from transformers import pipeline\n\npipe = pipeline("{pipeline_task}", model="{model_ref}"{kwargs})\n'
        f"print({call})", "python"),
        Para("Or score a labelled file from the command line:"), Code(f"hpo predict {model_ref} {cli}", "bash")]


def text_cli(columns: Any, label: str | None) -> str:
    """`hpo predict` arguments naming the text (pair) and label columns."""
    return ("new.jsonl --text-column " + columns.text
            + (f" --text-pair-column {columns.text_pair}" if columns.text_pair else "")
            + (f" --label-column {label}" if label else "") + " --out predictions.jsonl")


def text_call(columns: Any) -> str:
    return ('pipe({"text": "first sentence", "text_pair": "second sentence"})' if columns.text_pair
            else 'pipe(["a sentence", "another one"])')
