"""Metric resolution: the evaluate modules shipped here first, then a local path, then the Hub."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from hpo.errors import SpecError

HERE = Path(__file__).parent
SHIPPED = tuple(sorted(p.name for p in HERE.iterdir() if (p / f"{p.name}.py").is_file()))
AVERAGED = {"f1", "precision", "recall"}


@functools.lru_cache(maxsize=None)
def load_metric(name: str) -> Any:
    """An `evaluate` module by name: shipped (offline) > local path > Hub."""
    import evaluate

    target = str(HERE / name) if name in SHIPPED else name
    try:
        return evaluate.load(target)
    except Exception as e:
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise SpecError(f"cannot load metric {name!r}: {reason}", path="objective.metric",
                        hint=f"use one of {', '.join(SHIPPED)} or a path to an evaluate module") from None


def compute(names: list[str], predictions: Any, references: Any, *, average: str = "macro") -> dict[str, float]:
    out: dict[str, float] = {}
    n_classes = len(set(map(int, references)) | set(map(int, predictions)))
    for name in names:
        kwargs: dict[str, Any] = {}
        if name in AVERAGED:
            kwargs["average"] = average if average != "binary" or n_classes <= 2 else "macro"
        result = load_metric(name).compute(predictions=predictions, references=references, **kwargs)
        out.update({k: float(v) for k, v in result.items()})
    return out


def metric_names(objective: str) -> list[str]:
    """Metrics computed at every evaluation: the objective plus the shipped classification ones."""
    names = ["accuracy", "f1"]
    if objective not in names and objective != "loss":
        names.append(objective)
    return names
