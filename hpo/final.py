"""Promote the best trial to the final model: reuse its saved model, or retrain its hyperparameters.

Runs once per study however many processes ask: a lock in the output folder serialises them and a
marker in best-model/ says which trial it holds, of which study in which store, on which data; a finished
final model is never trained again, and one made for other data or another store is never taken for this one's.
"""

from __future__ import annotations

import fcntl
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from hpo.errors import ConcurrencyError, StageError
from hpo.results import read_json, write_json

if TYPE_CHECKING:
    import datasets
    import optuna

    from hpo.data import Splits
    from hpo.spec import LoadedStudy

MARKER = "hpo-final.json"


@contextmanager
def final_lock(output_dir: Path, *, wait: bool = True) -> Iterator[None]:
    output_dir.mkdir(parents=True, exist_ok=True)
    with open(output_dir / ".final.lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise ConcurrencyError(f"another process is finalizing {output_dir}",
                                   hint="wait for it to finish; its results will be in results.json") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def model_dir(output_dir: Path, model_id: str, several: bool) -> Path:
    if not several:
        return output_dir / "best-model"
    return output_dir / "models" / model_id.rstrip("/").replace("/", "_")


def lineage(optuna_study: "optuna.Study", splits: "Splits") -> dict[str, str]:
    """What a final model, its test scores and the selection's caches were made from: the data (its rows and
    settings) and the study's identity in its store."""
    from hpo.study.workers import study_uid

    return {"data": splits.key, "study_id": study_uid(optuna_study)}


def promote(study: "LoadedStudy", model_id: str, optuna_study: "optuna.Study", splits: "Splits",
            target: Path, *, trial: "optuna.trial.FrozenTrial | None" = None, source: str | None = None,
            how: str | None = None) -> dict[str, Any]:
    """Put the best trial's model (or `trial`'s, copied from `source` when given) in `target` (once) and say
    how it got there."""
    from hpo.adapters import settle_adapter
    from hpo.search.trainer import KEPT_MARKER, kept_model
    from hpo.training import train_configuration

    try:
        best = trial or optuna_study.best_trial
    except ValueError:
        raise StageError(f"study {optuna_study.study_name!r} has no completed trial to promote",
                         hint="run the search first (hpo run), or check why trials failed (hpo status)") from None
    made_from = lineage(optuna_study, splits)
    marker = read_json(target / MARKER) or {}
    same_origin = marker.get("how") == how if source is not None else marker.get("how") in ("reused", "retrained")
    same_origin = same_origin and (marker.get("lora") or {}).get("saved_as", "merged") == study.spec.final.save
    if marker.get("trial") == best.number and marker.get("study") == optuna_study.study_name and same_origin \
            and all(marker.get(k) == v for k, v in made_from.items()):
        return marker
    start = time.perf_counter()
    checkpoint = kept_model(best, made_from["study_id"])
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if source is not None:
        shutil.copytree(source, tmp)
        how = how or "copied"
    elif study.spec.final.strategy == "reuse" and checkpoint:
        shutil.copytree(checkpoint, tmp, ignore=shutil.ignore_patterns(KEPT_MARKER))
        how = "reused"
    else:
        train_configuration(study, model_id, splits, best.params, tmp)
        how = "retrained"
    lora = settle_adapter(tmp, save=study.spec.final.save)  # merged: pipeline(model=...) needs no peft
    finalized = settle(study, tmp, splits)
    info = {"study": optuna_study.study_name, **made_from, "trial": best.number, "value": best.values[0],
            "params": best.params, "how": how, "seconds": round(time.perf_counter() - start, 2),
            "finalized": finalized, **({"lora": lora} if lora else {})}
    write_json(tmp / MARKER, info)
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp.replace(target)
    return info


def _trials_arithmetic(study: "LoadedStudy") -> Any:
    """A context that runs a saved model in the arithmetic the study's trials were validated in."""
    from hpo.devices import evaluation_arithmetic
    from hpo.search.setup import precision_name

    return evaluation_arithmetic(precision_name(study))


def settle(study: "LoadedStudy", folder: Path, splits: "Splits") -> dict[str, Any]:
    """What the task settles on validation into the saved model's config.json (a multi-label threshold)."""
    spec = study.spec
    with _trials_arithmetic(study):
        return study.task.finalize(folder, splits.validation, splits.label_names,
                                   max_length=spec.dataset.max_length, objective=spec.objective.metric)


def score_unseen(study: "LoadedStudy", folder: Path | str, splits: "Splits", *,
                 rows: "datasets.Dataset | None" = None) -> dict[str, Any]:
    """The task's evaluation of a saved model on the test split (or `rows` of the splits' columns), in the
    arithmetic its trials were validated in (`evaluated_in` says which)."""
    with _trials_arithmetic(study) as arithmetic:
        result = study.task.evaluate(str(folder), splits.test if rows is None else rows, splits.label_names,
                                     max_length=study.spec.dataset.max_length)
    return {**result, "evaluated_in": arithmetic}


def time_scoring(study: "LoadedStudy", folder: Path | str, splits: "Splits", *, rows: int) -> tuple[float, float]:
    """(seconds per row, seconds per scoring besides its rows: loading the model, building the pipeline,
    the metrics) of `score_unseen` with a saved model, timed on the first `rows` validation rows."""
    sample = splits.validation.select(range(min(rows, len(splits.validation))))
    start = time.perf_counter()
    result = score_unseen(study, folder, splits, rows=sample)
    wall = time.perf_counter() - start
    per_row = float(result.get("latency_ms_per_example") or 0.0) / 1000 or wall / max(1, len(sample))
    return per_row, max(0.0, wall - per_row * len(sample))
