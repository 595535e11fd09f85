"""One configuration of a study trained to the end outside the search: the final retrain, the held-out gate's
fallback and the seed runs.

The Trainer is built from the configuration (the study file's `training`, the trial's values, then overrides
such as a seed run's seed) through `hpo.search.setup.training_arguments`, the step the search's trials take
too, so the model is trained with every value the trial had; the batch size, for one, a Trainer reads from its
arguments only when it is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpo.data import Splits
    from hpo.spec import LoadedStudy


@dataclass(frozen=True)
class Trained:
    steps: int  # optimizer steps taken
    validation: float | None  # the objective's metric on validation, when asked for


def train_configuration(study: "LoadedStudy", model_id: str, splits: "Splits", params: dict[str, Any], out: Path,
                        *, score: bool = False, **overrides: Any) -> Trained:
    """Train `params` (over the study file's `training`, under `overrides`), save the model and tokenizer to `out`."""
    from hpo.adapters import save_model
    from hpo.search.setup import build_trainer
    from hpo.study.objectives import objective_key

    # no evaluation while training: a final model is scored afterwards, on whichever split the caller needs
    trainer = build_trainer(study, model_id, splits, checkpoints=None, params=params, eval_strategy="no",
                            **overrides)
    trainer.train()
    value = float(trainer.evaluate()[objective_key(study.spec.objective.metric)]) if score else None
    save_model(trainer, out, base_name=trainer.base_name)
    return Trained(trainer.state.global_step, value)
