"""The final model is the configuration it claims to be: retrains, the gate's fallback and seed runs train with
every value of the trial (the batch size included), and searched fields whose default is None work."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
import pytest
from conftest import search_context

TRAIN_ROWS, EPOCHS = 240, 2  # make_study's training split and epochs


def steps_for(batch_size: int) -> int:
    return EPOCHS * math.ceil(TRAIN_ROWS / batch_size)


def record_trainings(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every training a SearchTrainer runs: optimizer steps taken and the arguments it ran with."""
    from hpo.search.trainer import SearchTrainer

    runs: list[dict[str, Any]] = []
    original = SearchTrainer.train

    def train(self: Any, *args: Any, **kwargs: Any) -> Any:
        out = original(self, *args, **kwargs)
        runs.append({"steps": self.state.global_step, "batch": self.args.per_device_train_batch_size,
                     "learning_rate": self.args.learning_rate, "seed": self.args.seed})
        return out

    monkeypatch.setattr(SearchTrainer, "train", train)
    return runs


def study_with_trials(*configs: dict[str, Any]) -> optuna.Study:
    """A finished study whose trials have `configs` as params (no kept models), best first."""
    s = optuna.create_study(direction="maximize")
    dist = {"learning_rate": optuna.distributions.FloatDistribution(1e-3, 5e-2, log=True),
            "per_device_train_batch_size": optuna.distributions.CategoricalDistribution([16, 32])}
    for i, params in enumerate(configs):
        s.add_trial(optuna.trial.create_trial(params=params, distributions=dist, value=0.9 - i / 10))
    return s


def loaded(study_file: Path) -> tuple[Any, Any]:
    from hpo.data import prepare_splits
    from hpo.spec import load_study

    study = load_study(study_file)
    return study, prepare_splits(study)


def test_a_retrained_final_model_trains_with_the_trials_batch_size(make_study: Any, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from hpo.final import MARKER, promote
    from hpo.results import read_json

    study, splits = loaded(make_study(final={"strategy": "retrain"}))  # the training section leaves batch 8
    params = {"learning_rate": 0.02, "per_device_train_batch_size": 32}
    runs = record_trainings(monkeypatch)
    info = promote(study, study.spec.models[0], study_with_trials(params), splits, tmp_path / "best-model")
    assert info["how"] == "retrained"
    assert runs == [{"steps": steps_for(32), "batch": 32, "learning_rate": 0.02, "seed": 0}]
    assert info["params"] == read_json(tmp_path / "best-model" / MARKER)["params"] == params


def test_seed_runs_train_with_the_finalists_batch_size(make_study: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from hpo.selection.seeds import run_seeds

    study, splits = loaded(make_study(selection={"top_k": 1, "seeds": 2}))
    params = {"learning_rate": 0.02, "per_device_train_batch_size": 32}
    optuna_study = study_with_trials(params)
    runs = record_trainings(monkeypatch)
    record = run_seeds(study, study.spec.models[0], optuna_study, splits, optuna_study.get_trials())
    assert record["seeds"] == [1, 2] and record["winner"] == 0
    assert runs == [{"steps": steps_for(32), "batch": 32, "learning_rate": 0.02, "seed": seed} for seed in (1, 2)]


def test_the_gate_retrains_a_trial_without_a_kept_model_with_its_own_values(make_study: Any,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from hpo.selection.gate import run_gate

    study, splits = loaded(make_study(selection={"top_k": 2}))
    configs = [{"learning_rate": 0.02, "per_device_train_batch_size": 32},
               {"learning_rate": 0.005, "per_device_train_batch_size": 16}]
    optuna_study = study_with_trials(*configs)
    runs = record_trainings(monkeypatch)
    gate = run_gate(study, study.spec.models[0], optuna_study, splits, optuna_study.get_trials())
    assert [r["source"] for r in gate["rows"]] == ["retrained", "retrained"]
    assert runs == [{"steps": steps_for(c["per_device_train_batch_size"]), "batch": c["per_device_train_batch_size"],
                     "learning_rate": c["learning_rate"], "seed": 0} for c in configs]


def test_a_retrain_reproduces_the_trials_kept_model(make_study: Any, tmp_path: Path) -> None:
    """Same configuration, same seed, same data: retraining the best trial gives the model the trial kept."""
    import torch
    from safetensors.torch import load_file

    from hpo.final import promote
    from hpo.search.runner import enqueue_initial, run_trials

    study_file = make_study(final={"strategy": "retrain"}, search={
        "n_trials": 1, "baseline": False, "pruner": {"name": "none"},
        "space": {"per_device_train_batch_size": {"type": "categorical", "choices": [16, 32]}},
        "enqueue": [{"per_device_train_batch_size": 32}]})
    ctx = search_context(study_file)
    enqueue_initial(ctx)
    run_trials(ctx)
    trial = ctx.optuna_study.best_trial
    assert trial.params == {"per_device_train_batch_size": 32}
    info = promote(ctx.study, ctx.model_id, ctx.optuna_study, ctx.splits, tmp_path / "best-model")
    assert info["how"] == "retrained"
    kept = load_file(Path(trial.user_attrs["checkpoint"]) / "model.safetensors")
    again = load_file(tmp_path / "best-model" / "model.safetensors")
    assert kept.keys() == again.keys()
    for name in kept:
        torch.testing.assert_close(again[name], kept[name], msg=name)


@pytest.mark.parametrize("space", [
    {"neftune_noise_alpha": {"type": "float", "low": 1.0, "high": 5.0}},
    {"data_seed": {"type": "categorical", "choices": [1, 2]}},
])
def test_a_searched_field_whose_default_is_none_is_searched(make_study: Any, monkeypatch: pytest.MonkeyPatch,
                                                            space: dict[str, Any]) -> None:
    import transformers.trainer

    from hpo.search.runner import run_trials

    alphas: list[float] = []
    original = transformers.trainer.activate_neftune

    def activate(model: Any, alpha: float, *args: Any) -> Any:
        alphas.append(alpha)
        return original(model, alpha, *args)

    monkeypatch.setattr(transformers.trainer, "activate_neftune", activate)
    runs = record_trainings(monkeypatch)
    ctx = search_context(make_study(search={"n_trials": 1, "baseline": False, "space": space}))
    run_trials(ctx, max_trials=1)
    (trial,) = ctx.optuna_study.get_trials()
    assert trial.state == optuna.trial.TrialState.COMPLETE, trial.system_attrs
    (key,) = space
    assert getattr(ctx.trainer.args, key) == trial.params[key]
    if key == "neftune_noise_alpha":
        assert alphas == [trial.params[key]]  # the noise was applied with the trial's value
    assert runs[0]["steps"] == steps_for(8)
