"""Which trial becomes the final model, and the evidence: gate, seeds and Pareto front in one `selection` record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpo.errors import StageError
from hpo.selection.gate import run_gate
from hpo.selection.pareto import front, ranked
from hpo.selection.seeds import run_seeds

if TYPE_CHECKING:
    import optuna

    from hpo.data import Splits
    from hpo.spec import LoadedStudy


@dataclass
class Choice:
    trial: "optuna.trial.FrozenTrial"
    source: str | None  # a model folder to promote as is; None: the trial's own checkpoint (or a retrain)
    how: str | None
    record: dict[str, Any]


def choose(study: "LoadedStudy", model_id: str, optuna_study: "optuna.Study", splits: "Splits") -> Choice:
    spec = study.spec
    candidates = ranked(optuna_study, spec)
    if not candidates:
        raise StageError(f"study {optuna_study.study_name!r} has no completed trial to promote",
                         hint="run the search first (hpo run), or check why trials failed (hpo status)")
    record: dict[str, Any] = {"top_k": spec.selection.top_k, "seeds": spec.selection.seeds,
                              "ranked": [t.number for t in candidates[:max(spec.selection.top_k, 1)]]}
    record["pareto"] = front(optuna_study, spec)
    record["warm_start"] = optuna_study.user_attrs.get("warm_start")
    record["gate"] = run_gate(study, model_id, optuna_study, splits, candidates)
    seeds = run_seeds(study, model_id, optuna_study, splits, candidates)
    record["multi_seed"] = seeds
    if seeds is None:
        record["chosen"] = candidates[0].number
        return Choice(candidates[0], None, None, record)
    trial = next(t for t in candidates if t.number == seeds["winner"])
    record["chosen"] = trial.number
    how = f"best of {len(seeds['seeds'])} seeds (seed {seeds['promoted_seed']})"
    return Choice(trial, seeds["model_path"], how, record)
