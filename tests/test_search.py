"""Search mechanisms: base weights read once, heads drawn per seed, pruning on the progress scale."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import torch

from hpo.models import BaseModel


def test_trial_models_are_built_from_memory(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = BaseModel(str(tiny_model), id2label={0: "negative", 1: "positive"})
    torch.manual_seed(0)
    first = base.build()
    assert base.loads == 1

    import transformers

    def no_disk(*args: object, **kwargs: object) -> None:
        raise AssertionError("the base model was read from disk again")

    monkeypatch.setattr(transformers.AutoModelForSequenceClassification, "from_pretrained", no_disk)
    monkeypatch.setattr("safetensors.torch.load_file", no_disk)
    torch.manual_seed(0)
    same_seed = base.build()
    torch.manual_seed(1)
    other_seed = base.build()
    assert base.loads == 1

    body = "bert.embeddings.word_embeddings.weight"
    assert torch.equal(first.state_dict()[body], other_seed.state_dict()[body])
    assert first.state_dict()[body].data_ptr() != other_seed.state_dict()[body].data_ptr()  # a copy, not shared
    head = "classifier.weight"
    assert torch.equal(first.state_dict()[head], same_seed.state_dict()[head])  # seeded like from_pretrained
    assert not torch.equal(first.state_dict()[head], other_seed.state_dict()[head])
    assert first.config.id2label == {0: "negative", 1: "positive"}


def test_batch_sizes_are_compared_at_the_same_progress_points(make_study: object) -> None:
    from hpo.data import prepare_splits
    from hpo.search.runner import build_context, enqueue_initial, run_trials
    from hpo.spec import load_study
    from hpo.study.factory import open_storage

    study = load_study(make_study(search={
        "n_trials": 2, "evals_per_epoch": 4, "baseline": False, "pruner": {"name": "none"},
        "space": {"per_device_train_batch_size": {"type": "categorical", "choices": [8, 32]}},
        "enqueue": [{"per_device_train_batch_size": 8}, {"per_device_train_batch_size": 32}]}))
    splits = prepare_splits(study)
    ctx = build_context(study, study.spec.models[0], splits, open_storage(study))
    enqueue_initial(ctx)
    run_trials(ctx)
    trials = ctx.optuna_study.get_trials()
    assert [t.params["per_device_train_batch_size"] for t in trials] == [8, 32]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    steps = [sorted(t.intermediate_values) for t in trials]
    # 240 rows: 30 optimizer steps per epoch at batch 8, 8 at batch 32; the same points in percent of an epoch
    assert steps[0] == steps[1] == [25, 50, 75, 100, 125, 150, 175, 200]
    assert trials[1].user_attrs["progress"] == 200
    profile = trials[0].user_attrs["profile"]
    assert profile["training"] > 0 and profile["evaluation"] > 0 and profile["wall"] >= profile["training"]


def test_pruning_points_use_a_seeded_subset_and_the_value_uses_all_rows(make_study: object) -> None:
    from hpo.data import prepare_splits
    from hpo.search.runner import build_context, run_trials
    from hpo.spec import load_study
    from hpo.study.factory import open_storage

    study = load_study(make_study(search={
        "n_trials": 1, "evals_per_epoch": 2, "baseline": False, "pruning_eval_samples": 30,
        "pruner": {"name": "median", "n_startup_trials": 0, "n_warmup_steps": 0},
        "space": {"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}}}))
    ctx = build_context(study, study.spec.models[0], prepare_splits(study), open_storage(study))
    sizes: list[int] = []
    original = type(ctx.trainer).evaluation_loop

    def spy(self: object, dataloader: object, *args: object, **kwargs: object) -> object:
        sizes.append(len(dataloader.dataset))
        return original(self, dataloader, *args, **kwargs)

    type(ctx.trainer).evaluation_loop = spy
    try:
        run_trials(ctx)
    finally:
        type(ctx.trainer).evaluation_loop = original
    trial = ctx.optuna_study.get_trials()[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert sizes[:-1] == [30] * (len(sizes) - 1) and sizes[-1] == 80
    assert sorted(trial.intermediate_values) == [50, 100, 150, 200]
    assert trial.value == trial.intermediate_values[200]
