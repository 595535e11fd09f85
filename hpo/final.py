"""Promote the best trial to the final model: reuse its saved model, or retrain its hyperparameters.

Runs once per study however many processes ask: a lock in the output folder serialises them and a
marker in best-model/ says which trial it holds, so a finished final model is never trained again.
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


def promote(study: "LoadedStudy", model_id: str, optuna_study: "optuna.Study", splits: "Splits",
            target: Path, *, trial: "optuna.trial.FrozenTrial | None" = None, source: str | None = None,
            how: str | None = None) -> dict[str, Any]:
    """Put the best trial's model (or `trial`'s, copied from `source` when given) in `target` (once) and say
    how it got there."""
    try:
        best = trial or optuna_study.best_trial
    except ValueError:
        raise StageError(f"study {optuna_study.study_name!r} has no completed trial to promote",
                         hint="run the search first (hpo run), or check why trials failed (hpo status)") from None
    marker = read_json(target / MARKER) or {}
    same_origin = marker.get("how") == how if source is not None else marker.get("how") in ("reused", "retrained")
    if marker.get("trial") == best.number and marker.get("study") == optuna_study.study_name and same_origin:
        return marker
    start = time.perf_counter()
    checkpoint = best.user_attrs.get("checkpoint")
    strategy = study.spec.final.strategy
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if source is not None:
        shutil.copytree(source, tmp)
        how = how or "copied"
    elif strategy == "reuse" and checkpoint and (Path(checkpoint) / "config.json").is_file():
        shutil.copytree(checkpoint, tmp)
        how = "reused"
    else:
        _retrain(study, model_id, best, splits, tmp)
        how = "retrained"
    finalized = settle(study, tmp, splits)
    info = {"study": optuna_study.study_name, "trial": best.number, "value": best.values[0], "params": best.params,
            "how": how, "seconds": round(time.perf_counter() - start, 2), "finalized": finalized}
    write_json(tmp / MARKER, info)
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp.replace(target)
    return info


def settle(study: "LoadedStudy", folder: Path, splits: "Splits") -> dict[str, Any]:
    """What the task settles on validation into the saved model's config.json (a multi-label threshold)."""
    spec = study.spec
    return study.task.finalize(folder, splits.validation, splits.label_names, max_length=spec.dataset.max_length,
                               objective=spec.objective.metric)


def _retrain(study: "LoadedStudy", model_id: str, best: "optuna.trial.FrozenTrial", splits: "Splits",
             out: Path) -> None:
    from optuna.trial import FixedTrial

    from hpo.search.setup import build_trainer

    trainer = build_trainer(study, model_id, splits, checkpoints=None)
    trainer.args.eval_strategy = "no"  # the final model is scored once, on unseen data, afterwards
    for key, value in trainer.hp_space_fn(FixedTrial(best.params)).items():
        setattr(trainer.args, key, value)
    trainer.train()
    trainer.save_model(str(out))
    trainer.processing_class.save_pretrained(str(out))
