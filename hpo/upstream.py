"""The private parts of optuna, transformers, accelerate, datasets and torch that hpo relies on, in one place.

None of these has a public API that does the job (optuna 4.9/5.0, transformers 5, accelerate 1, datasets 3/4,
torch 2.13). Each is checked by tests/test_upstream.py, which fails naming the upstream change if one moves.
The Trainer hooks `SearchTrainer` overrides are listed in `TRAINER_HOOKS` and checked the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

# -- optuna ------------------------------------------------------------------------------------------------
# The logger `Study.optimize` reports a failed trial with (hpo prints its own one line instead).
OPTIMIZE_LOGGER = "optuna.study._optimize"


def storage_of(study: "optuna.Study") -> Any:
    """The storage a Study object reads and writes (under Optuna's cache for RDB storages)."""
    return study._storage


def backend_of(study: "optuna.Study") -> Any:
    """The storage under Optuna's cache (RDBStorage for SQL URLs), or the storage itself when uncached."""
    storage = storage_of(study)
    return getattr(storage, "_backend", storage)


def study_id(study: "optuna.Study") -> int:
    """The study's id in its storage: what every storage method takes."""
    return study._study_id


def trial_id(trial: Any) -> int:
    """A Trial's or FrozenTrial's id in its storage (trial numbers count per study, ids per storage)."""
    return trial._trial_id


def heartbeat_enabled(storage: Any) -> bool:
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return is_heartbeat_enabled(storage)


def record_first_heartbeat(trial: Any) -> None:
    """Record a trial's heartbeat now. Optuna's heartbeat thread records the first one a moment after the trial
    starts, and fails as stale only trials that have one: a worker killed in between would leave its trial
    RUNNING for ever, and the other workers waiting for it."""
    if heartbeat_enabled(trial.storage):
        trial.storage.record_heartbeat(trial_id(trial))


def rdb_models() -> Any:
    """The SQLAlchemy models of Optuna's RDB storage (tables trials, study_system_attributes, ...)."""
    from optuna.storages._rdb import models

    return models


def rdb_trials_after(rdb: Any, study: "optuna.Study", after_trial_id: int) -> list["optuna.trial.FrozenTrial"]:
    """The study's trials whose id is above `after_trial_id`, in one range query."""
    return rdb._get_trials(study_id(study), None, set(), after_trial_id)


# -- transformers Trainer ---------------------------------------------------------------------------------
# Hooks SearchTrainer overrides -> the parameters it relies on (called by Trainer.train / _maybe_log_save_evaluate).
TRAINER_HOOKS = {
    "_hp_search_setup": ("trial",),
    "_report_to_hp_search": ("trial", "step", "metrics"),
    "_get_train_sampler": ("train_dataset",),
    "_get_eval_sampler": ("eval_dataset",),
}


def current_trial(trainer: Any) -> Any:
    """The trial a Trainer is training for (None outside a hyperparameter search)."""
    return getattr(trainer, "_trial", None)


def train_batch_size(trainer: Any) -> int | None:
    """The batch size the Trainer's training dataloader uses (lowered by auto_find_batch_size)."""
    return getattr(trainer, "_train_batch_size", None)


def set_train_batch_size(trainer: Any, size: int) -> None:
    """A Trainer reads its training batch size from its arguments only when built, or in a trial's setup."""
    trainer._train_batch_size = size


def drop_eval_dataloaders(trainer: Any) -> bool:
    """Forget the evaluation dataloaders a Trainer keeps (only with persistent workers); True if it held any."""
    held = bool(getattr(trainer, "_eval_dataloaders", None))
    if hasattr(trainer, "_eval_dataloaders"):
        trainer._eval_dataloaders = {}
    return held


# -- accelerate ---------------------------------------------------------------------------------------------
# What an Accelerator holds on to after `prepare` until `free_memory()`.
ACCELERATOR_HELD = ("_models", "_optimizers", "_schedulers", "_dataloaders")


# -- torch ----------------------------------------------------------------------------------------------------
def cpu_computes_bf16() -> bool:
    """The CPU has native bf16 arithmetic (AVX512-BF16 or AMX): torch.cpu has private probes only."""
    import torch

    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


# -- datasets ----------------------------------------------------------------------------------------------------
def fingerprint(dataset: Any) -> str:
    """A Dataset's fingerprint: it changes whenever its rows or transforms do."""
    return dataset._fingerprint
