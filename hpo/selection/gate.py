"""The held-out gate: the top-k trials scored on the unseen test split, to see whether validation ranked them right.

A diagnostic, never a chooser: picking the final model by test score would make the test score optimistic.
Models come from the trials' saved checkpoints, or are retrained with the trial's parameters when missing;
scores are cached in the output folder so a rerun does not redo them, for as long as the data and the study
in its store are the ones they were made from.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from hpo import progress
from hpo.results import read_json, write_json
from hpo.study.objectives import primary_value
from hpo.selection.stats import binomial_noise, rank_correlation, ranks

if TYPE_CHECKING:
    import optuna

    from hpo.data import Splits
    from hpo.spec import LoadedStudy
    from hpo.tasks import Task

BINOMIAL = "95% binomial half-width of a difference"
KEY_FILE = "made-from.json"  # the selection folder's data key and study id


def selection_dir(study: "LoadedStudy", study_name: str) -> Path:
    return study.paths.output_dir / "selection" / study_name


def selection_cache(study: "LoadedStudy", optuna_study: "optuna.Study", splits: "Splits", *,
                    clear: bool = True) -> Path | None:
    """The folder of the study's gate and seed runs; emptied (`clear`) or None when what is in it was made from
    other data or from a study of the same name in another store."""
    from hpo.final import lineage

    folder = selection_dir(study, optuna_study.study_name)
    made_from = lineage(optuna_study, splits)
    if read_json(folder / KEY_FILE) == made_from:
        return folder
    if not clear:
        return None
    shutil.rmtree(folder, ignore_errors=True)
    write_json(folder / KEY_FILE, made_from)
    return folder


def test_metric(study: "LoadedStudy") -> str:
    """The unseen-data metric compared with validation: the objective's when the task's evaluation returns it,
    else the task's default metric (for loss)."""
    metric, task = study.spec.objective.metric, study.task
    return metric if metric in task.metrics else task.default_metric


def trial_model(study: "LoadedStudy", model_id: str, trial: "optuna.trial.FrozenTrial", splits: "Splits",
                folder: Path, study_id: str) -> tuple[str, str]:
    """(path of the trial's model, 'checkpoint' or 'retrained'); `folder` is the study's `selection_cache`."""
    from hpo.search.trainer import kept_model
    from hpo.training import train_configuration

    checkpoint = kept_model(trial, study_id)
    if checkpoint:
        return checkpoint, "checkpoint"
    out = folder / f"trial-{trial.number}"
    if not (out / "config.json").is_file():
        progress.say(f"gate: trial {trial.number} has no saved model; retraining it")
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        train_configuration(study, model_id, splits, trial.params, tmp)
        tmp.replace(out)
    return str(out), "retrained"


def gated_evaluation(study: "LoadedStudy", optuna_study: "optuna.Study", splits: "Splits",
                     trial: int) -> dict[str, Any] | None:
    """The gate's full test evaluation of a trial's saved model, so the final stage need not repeat it (only if
    the gate scored it on these rows, for this study)."""
    folder = selection_cache(study, optuna_study, splits, clear=False)
    if folder is None:
        return None
    entry = (read_json(folder / "gate.json") or {}).get(str(trial)) or {}
    return entry.get("evaluation") if entry.get("source") == "checkpoint" else None


def run_gate(study: "LoadedStudy", model_id: str, optuna_study: "optuna.Study", splits: "Splits",
             candidates: list["optuna.trial.FrozenTrial"]) -> dict[str, Any] | None:
    """Score the first top_k candidates on the test split; None when the gate is off (top_k 1)."""
    from hpo.final import score_unseen, settle
    from hpo.study.workers import study_uid

    spec, task = study.spec, study.task
    k = min(spec.selection.top_k, len(candidates))
    if spec.selection.top_k < 2 or k < 2:
        return None
    folder = selection_cache(study, optuna_study, splits)
    cache_path = folder / "gate.json"
    cache = read_json(cache_path) or {}
    metric = test_metric(study)
    rows, evaluations = [], {}
    for t in candidates[:k]:
        entry = cache.get(str(t.number))
        if entry is None:
            path, source = trial_model(study, model_id, t, splits, folder, study_uid(optuna_study))
            progress.say(f"gate: scoring trial {t.number} on {len(splits.test)} unseen rows")
            settle(study, Path(path), splits)  # scored as the final model will be (its threshold set)
            result = score_unseen(study, path, splits)
            entry = {"source": source, "test_metrics": result["metrics"], "evaluation": result}
            cache[str(t.number)] = entry
            write_json(cache_path, cache)
        evaluations[t.number] = entry["evaluation"]
        rows.append({"trial": t.number, "validation": primary_value(t), "test": entry["test_metrics"][metric],
                     "source": entry["source"]})
    return summarize(rows, maximize=spec.objective.resolved_direction == "maximize", metric=metric,
                     validation_metric=spec.objective.metric, n_test=len(splits.test),
                     test_maximize=task.metric_direction(metric) == "maximize",
                     **noise_rule(task, metric, evaluations))


def noise_rule(task: "Task", metric: str, evaluations: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """summarize()'s noise arguments: the binomial where `metric` is a share of the test examples for this
    task, else the task's own estimate from two trials' evaluations (a bootstrap where it has one)."""
    return {"binomial": metric in task.binomial_metrics,
            "noise_of": lambda a, b: task.gate_noise(metric, evaluations[a], evaluations[b])}


def summarize(rows: list[dict[str, Any]], *, maximize: bool, metric: str, validation_metric: str,
              n_test: int, test_maximize: bool = True, binomial: bool = False,
              noise_of: Callable[[int, int], tuple[float, str] | None] | None = None) -> dict[str, Any]:
    """Ranks, rank correlation and the warning, from rows of trial/validation/test values.

    Rows come in the order the selection ranks them; the first is the validation winner. `test_maximize`
    is the test metric's direction (errors such as mse are minimized). `binomial`: the noise is the binomial
    half-width on `n_test` examples; else `noise_of(chosen, unseen winner)` when they differ.
    """
    val_ranks = ranks([r["validation"] for r in rows], maximize=maximize)
    test_ranks = ranks([r["test"] for r in rows], maximize=test_maximize)
    for r, vr, tr in zip(rows, val_ranks, test_ranks):
        r["validation_rank"], r["test_rank"] = vr, tr
    corr = rank_correlation([r["validation"] for r in rows], [r["test"] for r in rows])
    if maximize != test_maximize and corr["spearman"] is not None:  # lower loss should mean higher accuracy
        corr = {k: -v for k, v in corr.items()}
    chosen = rows[0]
    sign = 1 if test_maximize else -1
    unseen_best = max(rows, key=lambda r: sign * r["test"])
    gap = sign * (unseen_best["test"] - chosen["test"])
    noise, kind = None, None
    if binomial:
        noise, kind = binomial_noise(chosen["test"], unseen_best["test"], n_test), BINOMIAL
    elif noise_of is not None and unseen_best["trial"] != chosen["trial"]:  # else a bootstrap, where the task has one
        noise, kind = noise_of(chosen["trial"], unseen_best["trial"]) or (None, None)
    kind = kind if noise is not None else None
    warning = None
    if unseen_best["trial"] != chosen["trial"] and gap > 0 and (noise is None or gap > noise):
        warning = (f"validation winner #{chosen['trial']} scores {metric} {chosen['test']:.4f} on unseen data, "
                   f"but #{unseen_best['trial']} scores {unseen_best['test']:.4f}: a gap of {gap:.4f}, more than "
                   + (f"the noise (±{noise:.4f}, {kind.split(' half-width')[0]} on {n_test} examples)" if noise is not None
                      else "zero (no noise estimate for this metric)")
                   + "; the validation ranking may not hold up, consider more validation data or more seeds")
    return {"k": len(rows), "validation_metric": validation_metric, "test_metric": metric, "rows": rows,
            **corr, "noise": noise, "noise_kind": kind, "unseen_winner": unseen_best["trial"], "gap": gap, "warning": warning}
