"""Kept trial models with several workers: a running trial's saved model is never removed by another worker,
and once trials are recorded the kept set shrinks back to `keep_checkpoints`."""

from __future__ import annotations

from typing import Any

import optuna
import pytest
from conftest import search_context


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # the store's heartbeats are for Study.optimize
def test_a_running_trials_model_survives_another_workers_cleanup(make_study: Any) -> None:
    ctx = search_context(make_study(search__keep_checkpoints=1, selection={"top_k": 1}))
    trainer, mine = ctx.trainer, ctx.optuna_study
    other = optuna.load_study(study_name=mine.study_name, storage=ctx.study.paths.storage_url)  # a second worker

    def kept() -> set[int]:
        return {int(p.name.removeprefix("trial-")) for p in trainer.checkpoints.glob("trial-*")}

    a = mine.ask()  # trained and its model saved, not recorded COMPLETE yet
    trainer.objective = 0.9
    trainer._keep_if_best(a)
    b = other.ask()  # the other worker's trial ends meanwhile: the best it can see, so it keeps itself
    trainer.objective = 0.5
    trainer._keep_if_best(b)
    assert kept() == {a.number, b.number}
    assert a.number != b.number and (trainer.checkpoints / f"trial-{a.number}" / "config.json").is_file()

    mine.tell(a, 0.9)
    other.tell(b, 0.5)
    c = other.ask()
    trainer.objective = 0.95
    trainer._keep_if_best(c)
    assert kept() == {c.number}  # bounded: recorded trials below the best one are dropped
