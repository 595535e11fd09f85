"""Search mechanisms: base weights read once, heads drawn per seed, pruning on the progress scale."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from conftest import search_context

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


def run_and_record_evaluations(ctx: Any) -> list[tuple[int, int]]:
    """Run the study's trials; return (optimizer step, rows scored) of every evaluation."""
    from hpo.search.runner import run_trials

    seen: list[tuple[int, int]] = []
    original = type(ctx.trainer).evaluation_loop

    def spy(self: Any, dataloader: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append((self.state.global_step, len(dataloader.dataset)))
        return original(self, dataloader, *args, **kwargs)

    type(ctx.trainer).evaluation_loop = spy
    try:
        run_trials(ctx)
    finally:
        type(ctx.trainer).evaluation_loop = original
    return seen


def test_batch_sizes_are_compared_at_the_same_progress_points(make_study: object) -> None:
    from hpo.search.runner import enqueue_initial, run_trials

    ctx = search_context(make_study(search={
        "n_trials": 2, "evals_per_epoch": 4, "baseline": False,
        "pruner": {"name": "median", "n_startup_trials": 5, "n_warmup_steps": 0, "interval_steps": 1},
        "space": {"per_device_train_batch_size": {"type": "categorical", "choices": [8, 32]}},
        "enqueue": [{"per_device_train_batch_size": 8}, {"per_device_train_batch_size": 32}]}))
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
    ctx = search_context(make_study(search={
        "n_trials": 1, "evals_per_epoch": 2, "baseline": False, "pruning_eval_samples": 30,
        "pruner": {"name": "median", "n_startup_trials": 0, "n_warmup_steps": 0, "interval_steps": 1},
        "space": {"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}}}))
    evaluations = run_and_record_evaluations(ctx)
    sizes = [rows for _, rows in evaluations]
    trial = ctx.optuna_study.get_trials()[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert sizes[:-1] == [30] * (len(sizes) - 1) and sizes[-1] == 80
    assert sorted(trial.intermediate_values) == [50, 100, 150, 200]
    assert trial.value == trial.intermediate_values[200]


@pytest.mark.parametrize(("training", "space", "judged_at"), [
    ({"num_train_epochs": 2}, {}, 100),
    ({"num_train_epochs": 1}, {}, 50),
    ({}, {}, 150),  # the TrainingArguments default, 3 epochs
    ({"num_train_epochs": 4}, {"num_train_epochs": {"type": "int", "low": 1, "high": 4}}, 50),
    ({"max_steps": 40}, {}, 50),
])
def test_the_default_pruner_judges_a_trial_once_half_way(make_study: object, training: dict, space: dict,
                                                         judged_at: int) -> None:
    from hpo.spec import load_study
    from hpo.study.factory import make_pruner, resolved_pruner

    study = load_study(make_study(training=training, search={
        "n_trials": 4, "evals_per_epoch": 4, "pruner": {"name": "median"},
        "space": {"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-2}, **space}}))
    resolved = resolved_pruner(study)
    assert (resolved.n_warmup_steps, resolved.interval_steps) == (judged_at, judged_at)

    optuna_study = optuna.create_study(direction="maximize", pruner=make_pruner(resolved))
    grid = range(25, 2 * judged_at + 1, 25)
    for _ in range(2):  # the default n_startup_trials
        trial = optuna_study.ask()
        for step in grid:
            trial.report(0.9, step)
        optuna_study.tell(trial, 0.9)
    late = optuna_study.ask()  # far behind at every point: stopped where it is first judged, not before
    pruned_at = None
    for step in grid:
        late.report(0.1, step)
        if late.should_prune():
            pruned_at = step
            break
    assert pruned_at == judged_at


def test_an_explicit_warm_up_is_kept(make_study: object) -> None:
    from hpo.spec import load_study
    from hpo.study.factory import resolved_pruner

    study = load_study(make_study(search={
        "n_trials": 2, "pruner": {"name": "percentile", "n_warmup_steps": 25, "interval_steps": 1},
        "space": {"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-2}}}))
    assert (resolved_pruner(study).n_warmup_steps, resolved_pruner(study).interval_steps) == (25, 1)


def test_evaluation_batches_hold_rows_of_about_one_length(make_study: object) -> None:
    import numpy as np

    ctx = search_context(make_study(search={
        "n_trials": 1, "pruning_eval_samples": 30,
        "space": {"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-2}}}))
    trainer, splits = ctx.trainer, ctx.splits
    for data in (trainer.eval_dataset, trainer.pruning_eval_dataset):
        lengths = np.asarray(data["length"])
        assert (np.diff(lengths) >= 0).all() and lengths[0] < lengths[-1]
    assert len(trainer.eval_dataset) == len(splits.validation)  # every row, in another order
    assert sorted(trainer.eval_dataset["labels"]) == sorted(splits.validation["label"])


@pytest.mark.parametrize(("pruner", "evaluated"), [
    ({"name": "median"}, [100, 200]),  # judged once, half-way (2 epochs)
    ({"name": "median", "n_warmup_steps": 50, "interval_steps": 50}, [50, 100, 150, 200]),
    ({"name": "percentile", "n_warmup_steps": 75, "interval_steps": 100}, [75, 175, 200]),
    ({"name": "successive_halving"}, [25, 50, 75, 100, 125, 150, 175, 200]),
    ({"name": "none"}, [200]),
])
def test_a_trial_is_evaluated_only_where_the_pruner_can_stop_it(make_study: object, pruner: dict,
                                                                evaluated: list[int]) -> None:
    ctx = search_context(make_study(search={
        "n_trials": 1, "evals_per_epoch": 4, "baseline": False, "pruner": {"n_startup_trials": 5, **pruner}
        if pruner["name"] in ("median", "percentile") else pruner,
        "space": {"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}}}))
    calls = [step for step, _ in run_and_record_evaluations(ctx)]
    trial = ctx.optuna_study.get_trials()[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert sorted(trial.intermediate_values) == evaluated
    assert len(calls) == len(evaluated) and calls[-1] == ctx.trainer.state.max_steps  # the end once, at the end


@pytest.mark.parametrize(("native", "training", "bf16"), [
    (True, {}, True), (False, {}, False), (True, {"bf16": False}, False), (False, {"bf16": True}, True),
])
def test_bf16_by_default_where_the_hardware_has_it(make_study: object, monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path, native: bool, training: dict,
                                                   bf16: bool) -> None:
    from hpo import devices
    from hpo.search import setup
    from hpo.spec import load_study

    monkeypatch.setattr(devices, "hardware", lambda: devices.Hardware(cuda=False, cuda_bf16=False, cpu_bf16=native))
    study = load_study(make_study(training={"num_train_epochs": 1, **training}))
    args = setup.training_arguments(study, tmp_path)
    assert args.bf16 is bf16
    assert setup.precision_name(study) == ("bf16" if bf16 else "fp32")
    if bf16 and not torch.cuda.is_available():
        assert args.use_cpu  # TrainingArguments refuses bf16 on a CPU-only machine without it


def test_training_batches_are_length_grouped_in_random_order(make_study: object) -> None:
    from hpo.search.batches import LengthBucketSampler

    trainer = search_context(make_study(search={
        "n_trials": 1, "space": {"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-2}}})).trainer
    loader = trainer.get_train_dataloader()
    assert isinstance(loader.batch_sampler.sampler, LengthBucketSampler)
    widths = [batch["input_ids"].shape[1] for batch in loader]
    assert widths != sorted(widths, reverse=True)  # not a sweep from long to short


def test_evaluation_batches_run_from_short_to_long(make_study: object) -> None:
    # group_by_length would regroup the sorted evaluation rows at random: batches padded to near the longest
    trainer = search_context(make_study(search={
        "n_trials": 1, "space": {"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-2}}},
        training={"num_train_epochs": 1, "per_device_eval_batch_size": 4})).trainer
    loader = trainer.get_eval_dataloader()
    widths = [batch["input_ids"].shape[1] for batch in loader]
    assert len(widths) > 3 and widths == sorted(widths) and widths[0] < widths[-1], widths


@pytest.mark.parametrize("asked, expected", [("1", 1), ("", None), ("999", None), ("0", None)])
def test_threads_are_one_per_core_or_fewer_as_omp_num_threads_says(monkeypatch: pytest.MonkeyPatch, asked: str,
                                                                    expected: int | None) -> None:
    import os

    from hpo.search.setup import set_threads

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", asked)
    try:
        set_threads()
        assert torch.get_num_threads() == (expected or cores)  # never more threads than cores
    finally:
        torch.set_num_threads(before)


def test_a_command_leaves_what_it_loaded_out_of_later_collections(tmp_path: Path) -> None:
    """In a fresh process, as `hpo run` calls it: loaded objects frozen once, objects made later still freed."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import gc, weakref
        from transformers import Trainer
        from hpo.search.memory import freeze_loaded
        freeze_loaded()
        frozen = gc.get_freeze_count()
        freeze_loaded()
        assert gc.get_freeze_count() == frozen > 100_000, frozen  # the libraries' objects
        class Node: pass
        a, b = Node(), Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        del a, b
        gc.collect()
        assert gone() is None
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
