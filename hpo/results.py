"""results.json: written atomically, so a kill never leaves half a file, and read back by later stages."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=False, default=str)
        fh.write("\n")
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def results_path(output_dir: Path) -> Path:
    return output_dir / "results.json"


def trial_record(t: Any) -> dict[str, Any]:
    record = {"number": t.number, "state": t.state.name, "value": t.values[0] if t.values else None,
              "params": t.params, "duration_s": t.user_attrs.get("duration_s"),
              "baseline": bool(t.user_attrs.get("baseline")), "worker": t.user_attrs.get("worker")}
    if t.values and len(t.values) > 1:  # multi-objective: the metric first, then the costs
        record["values"] = list(t.values)
    if t.user_attrs.get("warm_start"):
        record["warm_start"] = t.user_attrs["warm_start"]
    return record


def model_summary(row: dict[str, Any]) -> dict[str, Any]:
    """One model's study: best trial, baseline, counts and the final model's unseen-data scores."""
    from hpo.study.counts import count_trials

    study = row["optuna_study"]
    trials = study.get_trials(deepcopy=False)
    best = row.get("trial") or study.best_trial  # the trial selection chose (hpo.selection)
    baseline = next((t for t in trials if t.user_attrs.get("baseline")), None)
    compute = sum(t.user_attrs.get("duration_s") or 0 for t in trials)
    test = row["test"]
    return {
        "model": row["model"], "study_name": row["study_name"], "path": row["path"],
        "best_trial": best.number, "best_value": best.values[0], "best_params": best.params,
        "validation_metrics": best.user_attrs.get("metrics", {}),
        "baseline": trial_record(baseline) if baseline else None,
        "counts": count_trials(study).as_dict(), "compute_s": round(compute, 2),
        "final": row["final"], "test": test, "selection": row.get("selection"),
    }


def _examples(splits: Any, n: int = 3) -> list[dict[str, Any]]:
    """The first test rows (canonical columns): the model card's widget examples."""
    test = getattr(splits, "test", None)
    return test.select(range(min(n, len(test)))).to_list() if test is not None else []


def _ran_on(study: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The precision the trials trained in and their devices, as recorded by each trial (workers may differ
    from this machine); this machine's choice for a study whose trials recorded none."""
    from hpo.devices import ran_on
    from hpo.search.setup import precision_name

    ran = ran_on([t for r in rows for t in r["optuna_study"].get_trials(deepcopy=False)])
    return {"precision": ran["precision"] or precision_name(study), "devices": ran["devices"],
            "peak_memory_mb": ran["peak_memory_mb"]}


def build_results(study: Any, splits: Any, rows: list[dict[str, Any]], *, timings: dict[str, float],
                  previous: dict[str, Any]) -> dict[str, Any]:
    """results.json; `timings` are this run's (data, search set-up, search), kept over from `previous` if absent."""
    from hpo.study.factory import resolved_pruner
    from hpo.study.storage import redact

    spec = study.spec
    models = [model_summary(r) for r in rows]
    maximize = spec.objective.resolved_direction == "maximize"
    winner = (max if maximize else min)(models, key=lambda m: m["best_value"])
    kept = dict(previous.get("timings", {}))
    kept.update({k: round(v, 2) for k, v in timings.items() if v})
    kept["compute_s"] = round(sum(m["compute_s"] for m in models), 2)
    return {
        "study": spec.name, "study_file": str(study.paths.study_file), "task": spec.task,
        "storage": redact(study.paths.storage_url),
        "objective": {"metric": spec.objective.metric, "direction": spec.objective.resolved_direction},
        "data": {**splits.summary(), "examples": _examples(splits)},
        "search": {"n_trials": None if spec.search.planned_trials else spec.search.n_trials,
                   "budget_s": spec.search.budget,
                   "space": {k: v.model_dump() for k, v in spec.search.space.items()},
                   "sampler": spec.search.sampler.model_dump(), "pruner": resolved_pruner(study).model_dump(),
                   "training": spec.training, **_ran_on(study, rows)},
        "final": {"model": winner["model"], "study_name": winner["study_name"], "trial": winner["best_trial"],
                  "how": winner["final"]["how"], "path": winner["path"], "params": winner["best_params"],
                  "validation_metrics": winner["validation_metrics"],
                  "test_metrics": winner["test"]["metrics"], "finalized": winner["final"].get("finalized", {}),
                  "lora": winner["final"].get("lora"),
                  # the task's tables: labels, confusion matrix, per class / per entity type, distribution
                  **{k: v for k, v in winner["test"].items() if k not in ("metrics", "examples",
                                                                          "latency_ms_per_example")}},
        "models": models,
        "trials": {m["study_name"]: [trial_record(t) for t in r["optuna_study"].get_trials(deepcopy=False)]
                   for m, r in zip(models, rows)},
        "timings": kept,
        "selection": winner.get("selection"),
        "hub": previous.get("hub"),
    }
