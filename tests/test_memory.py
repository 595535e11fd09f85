"""Memory between trials: each trial's objects freed before the next, and a trial out of memory fails alone."""

from __future__ import annotations

import csv
import gc
import weakref
from pathlib import Path
from typing import Any, Callable

import optuna
import pytest
import torch
import yaml
from conftest import search_context, sst2_rows
from transformers import TrainerCallback

from hpo import progress
from hpo.search import memory
from hpo.search.runner import enqueue_initial, run_trials

OOM_LINE = "out of memory at per_device_train_batch_size=32; lower it or set gradient_accumulation_steps"
CUDA_OOM = ("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 15.77 GiB of which "
            "1.12 GiB is free.")


class Objects(TrainerCallback):
    """Weak references to each trial's model, optimizer, scheduler and training data loader; and, each time a
    trial's model is about to be built, whether any earlier trial's objects are still alive."""

    def __init__(self, trainer: Any) -> None:
        self.refs: list[list[weakref.ref]] = []
        self.left_at_build: list[bool] = []
        build = trainer.model_init

        def model_init(trial: Any = None) -> Any:
            self.left_at_build.append(any(r() is not None for refs in self.refs for r in refs))
            return build(trial)

        trainer.model_init = model_init
        trainer.add_callback(self)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.refs.append([weakref.ref(kw[k]) for k in ("model", "optimizer", "lr_scheduler", "train_dataloader")])

    def alive(self, trial: int) -> list[bool]:
        return [r() is not None for r in self.refs[trial]]


class OutOfMemoryAt(TrainerCallback):
    """A fake device that runs out of memory: the model's forward raises for one batch size, in training or
    in evaluation, as a CUDA allocation that does not fit does."""

    def __init__(self, batch_size: int, *, when: str = "training", error: Callable[[str], Exception]) -> None:
        self.batch_size, self.when, self.error = batch_size, when, error

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
        def forward(module: Any, inputs: Any, kwargs: Any) -> None:
            rows = kwargs["input_ids"].shape[0]
            if module.training == (self.when == "training") and rows >= self.batch_size:
                raise self.error(CUDA_OOM)
        model.register_forward_pre_hook(forward, with_kwargs=True)


def two_trials(make_study: Any, *, training: dict | None = None) -> Any:
    """A study whose first trial trains at batch 32 and the second at batch 16."""
    return search_context(make_study(training={"num_train_epochs": 1, "seed": 0, **(training or {})}, search={
        "n_trials": 2, "evals_per_epoch": 1, "baseline": False, "pruner": {"name": "none"},
        "space": {"per_device_train_batch_size": {"type": "categorical", "choices": [16, 32]}},
        "enqueue": [{"per_device_train_batch_size": 32}, {"per_device_train_batch_size": 16}]}))


@pytest.mark.parametrize("error", [torch.OutOfMemoryError, RuntimeError], ids=["OutOfMemoryError", "RuntimeError"])
def test_a_trial_out_of_memory_fails_with_one_line_and_the_next_runs(make_study: Any, error: type) -> None:
    ctx = two_trials(make_study)
    objects = Objects(ctx.trainer)
    ctx.trainer.add_callback(OutOfMemoryAt(32, error=error))
    enqueue_initial(ctx)
    lines, reasons, alive_after = [], [], []

    def on_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial, reason: str | None = None) -> None:
        lines.append(progress.trial_line(study, trial, 2, "accuracy", reason))
        reasons.append(reason)
        alive_after.append(objects.alive(len(alive_after)))

    assert run_trials(ctx, max_trials=2, on_trial=on_trial) == 2
    failed, done = ctx.optuna_study.get_trials()
    assert failed.state == optuna.trial.TrialState.FAIL and failed.params["per_device_train_batch_size"] == 32
    assert failed.system_attrs["fail_reason"] == OOM_LINE  # what the progress line and the failure bound read
    assert reasons == [OOM_LINE, None] and OOM_LINE in lines[0]  # the line, and what search.max_failures counts
    assert done.state == optuna.trial.TrialState.COMPLETE and done.params["per_device_train_batch_size"] == 16
    assert alive_after == [[False] * 4, [False] * 4]  # the failed trial's model and optimizer too
    assert objects.left_at_build == [False, False]
    assert failed.user_attrs["device"] == "cpu" and failed.user_attrs["peak_memory_mb"] > 0


def test_out_of_memory_in_evaluation_names_the_evaluation_batch_size(make_study: Any) -> None:
    ctx = two_trials(make_study, training={"per_device_eval_batch_size": 64})
    ctx.trainer.add_callback(OutOfMemoryAt(1, when="evaluation", error=torch.OutOfMemoryError))
    enqueue_initial(ctx)
    run_trials(ctx, max_trials=1)
    trial = ctx.optuna_study.get_trials()[0]
    assert trial.state == optuna.trial.TrialState.FAIL
    assert trial.system_attrs["fail_reason"] == ("out of memory evaluating at per_device_eval_batch_size=64; "
                                                 "lower it in training:")


class PruneFirst(TrainerCallback):
    """The pruner stops the first trial at its first evaluation (the exception a real pruning raises)."""

    def __init__(self) -> None:
        self.trials = 0

    def on_train_begin(self, *args: Any, **kw: Any) -> None:
        self.trials += 1

    def on_evaluate(self, *args: Any, **kw: Any) -> None:
        if self.trials == 1:
            raise optuna.TrialPruned()


def test_a_pruned_trials_objects_are_freed_before_the_next_model_is_built(make_study: Any) -> None:
    ctx = two_trials(make_study)
    objects = Objects(ctx.trainer)
    ctx.trainer.add_callback(PruneFirst())
    enqueue_initial(ctx)
    run_trials(ctx, max_trials=2)
    assert [t.state.name for t in ctx.optuna_study.get_trials()] == ["PRUNED", "COMPLETE"]
    assert objects.left_at_build == [False, False]
    assert objects.alive(0) == [False] * 4


def test_a_lora_trials_model_and_adapter_are_freed_and_the_base_stays_unwrapped(make_study: Any) -> None:
    ctx = search_context(make_study(peft={"r": 2}, training={"num_train_epochs": 1, "seed": 0}, search={
        "n_trials": 2, "evals_per_epoch": 1, "baseline": False, "pruner": {"name": "none"},
        "space": {"peft.r": {"type": "categorical", "choices": [2, 4]}}}))
    objects = Objects(ctx.trainer)
    assert run_trials(ctx, max_trials=2) == 2
    assert objects.left_at_build == [False, False]  # the first trial's model and adapter were freed
    gc.collect()  # the last one's wait in a reference cycle (accelerate's forward wrappers) for the next trial
    assert objects.alive(0) == objects.alive(1) == [False] * 4
    template = ctx.trainer.base_model._template  # each trial wraps its own copy, never the weights in memory
    assert not any("lora_" in name for name, _ in template.named_modules())


def test_other_errors_are_not_taken_for_memory(make_study: Any) -> None:
    ctx = two_trials(make_study)
    ctx.trainer.add_callback(OutOfMemoryAt(32, error=ValueError))
    enqueue_initial(ctx)
    run_trials(ctx, max_trials=1)
    trial = ctx.optuna_study.get_trials()[0]
    assert trial.state == optuna.trial.TrialState.FAIL and "fail_reason" not in trial.system_attrs


def test_auto_find_batch_size_retries_smaller_and_records_the_batch_it_ran(make_study: Any) -> None:
    ctx = two_trials(make_study, training={"auto_find_batch_size": True})
    ctx.trainer.add_callback(OutOfMemoryAt(25, error=torch.OutOfMemoryError))  # 32, 28 and 25 do not fit; 22 (0.9 of 25) does
    enqueue_initial(ctx)
    run_trials(ctx, max_trials=2)
    first, second = ctx.optuna_study.get_trials()
    assert first.state == second.state == optuna.trial.TrialState.COMPLETE
    assert first.params["per_device_train_batch_size"] == 32 and first.user_attrs["train_batch_size"] == 22
    assert "train_batch_size" not in second.user_attrs  # 16 fitted at once


# -- memory stays flat over many trials ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def mid_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BERT of about a million parameters: large enough that one trial's model and optimizer, kept, show
    in the process's resident memory above its noise."""
    from hpo.testing.tiny import build_tiny_model

    texts = [r["sentence"] for r in sst2_rows("train", 3000)]
    return build_tiny_model(tmp_path_factory.mktemp("mid") / "model", texts, vocab_size=2000, hidden=256)


def test_memory_is_released_between_trials_and_stays_flat(mid_model: Path, tmp_path: Path) -> None:
    if memory.rss_bytes() is None:
        pytest.skip("no /proc/self/status here to read resident memory from")
    for split, n in (("train", 96), ("validation", 32), ("test", 32)):
        with open(tmp_path / f"{split}.csv", "w", newline="") as fh:
            csv.writer(fh).writerows([["text", "label"], *([r["sentence"], r["label"]]
                                                           for r in sst2_rows(split, n))])
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({
        "name": "flat", "model": str(mid_model),
        "dataset": {"train": "train.csv", "validation": "validation.csv", "test": "test.csv", "max_length": 16},
        "search": {"n_trials": 10, "evals_per_epoch": 1, "baseline": False, "keep_checkpoints": 1,
                   "space": {"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-3, "log": True}},
                   "sampler": {"name": "random", "seed": 0}, "pruner": {"name": "none"}},
        "selection": {"top_k": 1}, "training": {"num_train_epochs": 1, "per_device_train_batch_size": 32}}))
    ctx = search_context(study)
    objects = Objects(ctx.trainer)
    rss: list[int] = []
    alive: list[list[bool]] = []

    def on_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial, reason: str | None = None) -> None:
        rss.append(memory.rss_bytes())
        alive.append(objects.alive(trial.number))

    assert run_trials(ctx, on_trial=on_trial) == 10
    assert alive == [[False] * 4] * 10  # nothing of a trial outlives it
    assert objects.left_at_build == [False] * 10
    # Weights plus AdamW's two moments: what one trial's model and optimizer take. Kept from every trial, they
    # would add that much per trial; after the first trials (allocator and caches warming up) growth stays
    # under two trials' worth over the last seven.
    per_trial = 3 * sum(p.numel() * p.element_size() for p in memory_model(ctx).parameters())
    growth = max(rss[3:]) - rss[2]
    assert growth < 2 * per_trial, f"resident memory grew {growth / 2**20:.1f} MB over 7 trials " \
                                   f"(one trial's model and optimizer: {per_trial / 2**20:.1f} MB)"
    starts = [t.user_attrs["memory_at_start_mb"] for t in ctx.optuna_study.get_trials()]
    assert max(starts[3:]) - starts[2] < 2 * per_trial / 2**20


def memory_model(ctx: Any) -> Any:
    """A model like the trials' (the trainer itself holds none between trials)."""
    assert ctx.trainer.model is None
    return ctx.trainer.base_model.build()
