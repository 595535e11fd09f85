"""Memory between trials, and a trial that runs out of it.

The stock Trainer keeps the last trial's model, optimizer, scheduler and data loaders referenced
(`trainer.optimizer`, its callback handler, accelerate's lists) until the next trial has built its own
model, so two trials' weights and optimizer states share the GPU at that moment; after a pruned or
failed trial it releases nothing. Here every trial's objects are dropped when it ends, whatever the
outcome, and again before the next model is built, then garbage is collected, the CUDA cache emptied and
freed CPU memory given back to the system.

A trial that runs out of memory ends as an ordinary FAIL with one line naming the batch size, stored as
its `fail_reason` (what the progress line shows); the study goes on with the next trial.
"""

from __future__ import annotations

import ctypes
import gc
import re
import sys
import weakref
from pathlib import Path
from typing import Any, Callable, TypeVar

from hpo import devices, upstream

T = TypeVar("T")
MB = 2**20
OOM_TEXTS = (" out of memory", "DefaultCPUAllocator: can't allocate memory", "No executable batch size found")


class TrialOutOfMemory(Exception):
    """A trial ran out of memory; its message is the one line the user sees."""


def is_out_of_memory(error: BaseException) -> bool:
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    if isinstance(error, (oom, MemoryError)):
        return True
    return isinstance(error, RuntimeError) and any(text in str(error) for text in OOM_TEXTS)


def out_of_memory_line(args: Any, error: BaseException) -> str:
    """One line: the batch size that did not fit and what to do about it."""
    frames, tb = set(), error.__traceback__
    while tb is not None:
        frames.add(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    if "evaluation_loop" in frames and "training_step" not in frames:
        return (f"out of memory evaluating at per_device_eval_batch_size={args.per_device_eval_batch_size}; "
                "lower it in training:")
    return (f"out of memory at per_device_train_batch_size={args.per_device_train_batch_size}; "
            "lower it or set gradient_accumulation_steps")


def fail_on_out_of_memory(trainer: Any, trial: Any, train: Callable[[], T]) -> T:
    """Run a trial's training; out of memory, record the one line, free the trial's memory, raise it as the
    trial's error (without the training frames: their tensors would stay alive with the traceback)."""
    reason = None
    try:
        return train()
    except Exception as error:
        if not is_out_of_memory(error):
            raise
        reason = out_of_memory_line(trainer.args, error)
    upstream.storage_of(trial.study).set_trial_system_attr(upstream.trial_id(trial), "fail_reason", reason)
    trial.set_user_attr("fail_reason", reason)  # system attrs are not shown by optuna-dashboard
    release(trainer, model=True)
    raise TrialOutOfMemory(reason)


# -- releasing -------------------------------------------------------------------------------------------

def freeze_loaded() -> None:
    """Leave what a command has loaded before its first trial (libraries, study, data) out of later garbage
    collections. The Trainer and accelerate collect around every trial, and each collection walked the ~500,000
    objects that importing torch, transformers and datasets makes: 0.3-0.5 s a time, a third of a tiny study's
    CPU time. What trials make is collected as before. Only in hpo's own processes (the pipeline's commands): in
    a caller's process, its objects that later form garbage cycles would never be freed."""
    if gc.get_freeze_count():
        return
    gc.collect()
    gc.freeze()


def release(trainer: Any, *, model: bool, collect: bool = True) -> bool:
    """Drop what a trial built: optimizer, scheduler, data loaders and, with `model`, the model. If anything was
    held, and `collect`, collect garbage (accelerate wraps a model's forward in a reference cycle) and empty the
    CUDA cache: accelerate's free_memory does both. It empties its lists of prepared objects only after
    collecting (accelerate 1.15), so with the model they are emptied here first. Returns whether anything was held."""
    handler, accelerator = trainer.callback_handler, trainer.accelerator
    names = ["optimizer", "lr_scheduler"] + (["model", "model_wrapped"] if model else [])
    held = any(getattr(trainer, n, None) is not None for n in names)
    held |= any(getattr(handler, n, None) is not None for n in names + ["train_dataloader", "eval_dataloader"])
    held |= any(getattr(accelerator, n, None) for n in upstream.ACCELERATOR_HELD)
    held |= upstream.drop_eval_dataloaders(trainer)  # kept only with persistent workers
    if not held:
        return False
    for holder in (trainer, handler):
        for name in names:
            if hasattr(holder, name):
                setattr(holder, name, None)
    handler.train_dataloader = handler.eval_dataloader = None
    if model:  # else the model, still listed, outlives the collection and the next model is built beside it
        for name in upstream.ACCELERATOR_HELD:
            if getattr(accelerator, name, None):
                setattr(accelerator, name, [])
    if collect:
        accelerator.free_memory()  # a second or so with torch and transformers loaded: only when it frees something
    return True


def _trim_heap() -> None:
    """Give freed CPU memory back to the system (glibc keeps it otherwise): resident memory then shows what is
    really held between trials, and other processes on the machine get it back."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


# -- what a trial used -----------------------------------------------------------------------------------

def _proc_status(key: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    found = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
    return int(found.group(1)) * 1024 if found else None


def rss_bytes() -> int | None:
    """Resident memory of this process (Linux), None elsewhere."""
    return _proc_status("VmRSS")


def _reset_peak() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        return
    try:  # Linux: "5" resets VmHWM, the process's peak resident memory, to the current one
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _in_use_and_peak() -> tuple[int | None, int | None]:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.memory_allocated(), torch.cuda.max_memory_allocated()
    return rss_bytes(), _proc_status("VmHWM")


def trial_started(trainer: Any, trial: Any) -> None:
    """Before a trial's model is built: free what the last one (or the Trainer's set-up) left, record the
    device and the memory already in use (flat across trials unless something leaks), reset the peak."""
    last = getattr(trainer, "_hpo_last_model", lambda: None)()  # a LoRA model's forward wrappers form a cycle
    if not release(trainer, model=True) and (getattr(trainer, "_hpo_uncollected", False) or last is not None):
        del last
        trainer.accelerator.free_memory()
    trainer._hpo_uncollected = False
    _trim_heap()
    attrs = devices.trial_device()
    in_use, _ = _in_use_and_peak()
    if in_use is not None:
        attrs["memory_at_start_mb"] = round(in_use / MB, 1)
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    _reset_peak()


def trial_ended(trainer: Any, trial: Any) -> None:
    """After a trial, whatever its outcome: record precision and peak memory, drop its objects. The model stays
    only when the Trainer still needs it (no objective yet: it evaluates once more); `trial_started` frees it.

    A completed trial's objects are collected by the Trainer right after (run_hp_search_optuna). Those of a
    trial that raised (pruned, failed) stay in a reference cycle with the exception (the frames of context
    managers it went through hold it) until Optuna has recorded it: they are collected before the next
    trial's model is built."""
    failed = sys.exc_info()[0] is not None
    _, peak = _in_use_and_peak()
    trial.set_user_attr("precision", devices.precision_of(trainer.args))
    if peak is not None:
        trial.set_user_attr("peak_memory_mb", round(peak / MB, 1))
    ran = upstream.train_batch_size(trainer)
    if trainer.args.auto_find_batch_size and ran and ran != trainer.args.per_device_train_batch_size:
        trial.set_user_attr("train_batch_size", ran)  # lowered by auto_find_batch_size until it fit
    if trainer.model is not None:
        trainer._hpo_last_model = weakref.ref(trainer.model)
    release(trainer, model=failed or getattr(trainer, "objective", None) is not None, collect=False)
    trainer._hpo_uncollected = failed
