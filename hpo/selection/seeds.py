"""Multi-seed finalists: each of the top trials trained again with fresh seeds and scored on validation.

The search's own run is left out of the mean: it was picked because it scored well, so counting it would
carry the selection's luck into the comparison. The finalist with the best mean wins; its best seed's model
(by validation) becomes the final model. Runs are cached in the output folder (for as long as the data and the
study in its store are the ones they were made from), a rerun only does what is missing.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

from hpo import progress
from hpo.results import read_json, write_json
from hpo.selection.gate import selection_cache
from hpo.study.objectives import primary_value
from hpo.selection.stats import mean_interval

if TYPE_CHECKING:
    import optuna

    from hpo.data import Splits
    from hpo.spec import LoadedStudy

DEFAULT_TRAINING_SEED = 42  # TrainingArguments' default


def fresh_seeds(study: "LoadedStudy") -> list[int]:
    """seeds values that differ from the seed the search trained with."""
    base = int(study.spec.training.get("seed", DEFAULT_TRAINING_SEED))
    return [base + 1 + i for i in range(study.spec.selection.seeds)]


def run_seeds(study: "LoadedStudy", model_id: str, optuna_study: "optuna.Study", splits: "Splits",
              candidates: list["optuna.trial.FrozenTrial"]) -> dict[str, Any] | None:
    """Re-run the first top_k candidates with `selection.seeds` seeds; None when seeds is 1."""
    from hpo.training import train_configuration

    spec = study.spec
    if spec.selection.seeds < 2 or not candidates:
        return None
    finalists = candidates[:max(1, spec.selection.top_k)]
    folder = selection_cache(study, optuna_study, splits)
    cache_path = folder / "seeds.json"
    cache = read_json(cache_path) or {}
    maximize = spec.objective.resolved_direction == "maximize"
    better = (lambda a, b: a > b) if maximize else (lambda a, b: a < b)
    seeds = fresh_seeds(study)
    for t in finalists:
        runs = cache.setdefault(str(t.number), {"runs": {}, "best_seed": None})
        model = folder / f"finalist-{t.number}"
        if runs["best_seed"] is not None and not (model / "config.json").is_file():
            runs.update({"runs": {}, "best_seed": None})  # its model is gone: train its seeds again
        for seed in seeds:
            if str(seed) in runs["runs"]:
                continue
            progress.say(f"seeds: trial {t.number} with seed {seed}")
            tmp = folder / f"finalist-{t.number}-seed-{seed}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            value = train_configuration(study, model_id, splits, t.params, tmp, score=True, seed=seed).validation
            best = runs["best_seed"]
            if best is None or better(value, runs["runs"][str(best)]):
                shutil.rmtree(model, ignore_errors=True)
                tmp.replace(model)
                runs["best_seed"] = seed
            else:
                shutil.rmtree(tmp, ignore_errors=True)
            runs["runs"][str(seed)] = value
            write_json(cache_path, cache)
    rows = []
    for t in finalists:
        runs = cache[str(t.number)]
        values = [runs["runs"][str(s)] for s in seeds]
        rows.append({"trial": t.number, "search_value": primary_value(t), "values": dict(zip(map(str, seeds), values)),
                     **mean_interval(values), "best_seed": runs["best_seed"],
                     "model_path": str(folder / f"finalist-{t.number}")})
    winner = (max if maximize else min)(rows, key=lambda r: r["mean"])
    return {"seeds": seeds, "metric": spec.objective.metric, "finalists": rows, "winner": winner["trial"],
            "promoted": "best seed", "promoted_seed": winner["best_seed"], "model_path": winner["model_path"],
            "search_winner": finalists[0].number}
