"""What hpo relies on in optuna, transformers, accelerate, datasets and torch internals (hpo/upstream.py).

Each test names the upstream change when it fails, so an upgrade that moves one is found here, not in a run.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path

import optuna

from hpo import upstream


def _study(tmp_path: Path, name: str = "s") -> optuna.Study:
    return optuna.create_study(study_name=name, storage=f"sqlite:///{tmp_path / 'u.db'}")


def test_optuna_study_storage_and_ids(tmp_path: Path) -> None:
    for study in (optuna.create_study(study_name="mem"), _study(tmp_path)):
        storage = upstream.storage_of(study)
        assert isinstance(storage, optuna.storages.BaseStorage), "optuna: Study._storage is no longer the storage"
        sid = upstream.study_id(study)
        assert storage.get_study_name_from_id(sid) == study.study_name, "optuna: Study._study_id moved"
        trial = study.ask()
        study.tell(trial, 1.0)
        for t in (trial, study.trials[0]):
            assert storage.get_trial(upstream.trial_id(t)).number == 0, "optuna: Trial/FrozenTrial._trial_id moved"


def test_optuna_rdb_backend_models_and_range_query(tmp_path: Path) -> None:
    study = _study(tmp_path)
    rdb = upstream.backend_of(study)
    assert isinstance(rdb, optuna.storages.RDBStorage), "optuna: the cached storage's _backend is not the RDBStorage"
    assert isinstance(upstream.backend_of(optuna.create_study()), optuna.storages.InMemoryStorage)
    models = upstream.rdb_models()
    columns = {c.name for c in models.TrialModel.__table__.columns}
    assert {"trial_id", "study_id", "number", "state"} <= columns, f"optuna: trials table columns are {columns}"
    attrs = models.StudySystemAttributeModel.__table__
    unique = [{c.name for c in con.columns} for con in attrs.constraints
              if isinstance(con, __import__("sqlalchemy").UniqueConstraint)]
    assert {"study_id", "key"} in unique, "optuna: study system attrs are no longer unique per (study, key)"
    for _ in range(3):
        study.tell(study.ask(), 0.5)
    first = upstream.trial_id(study.trials[0])
    after = upstream.rdb_trials_after(rdb, study, first)
    assert [t.number for t in sorted(after, key=lambda t: t.number)] == [1, 2], \
        "optuna: RDBStorage._get_trials(study_id, states, included, trial_id_greater_than) changed"


def test_only_a_trial_with_a_heartbeat_goes_stale(tmp_path: Path) -> None:
    import time
    import warnings

    from hpo.study.stale import trials_without_heartbeat  # its query reads Optuna's trial_heartbeats table

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 's.db'}", heartbeat_interval=1, grace_period=1)
        study = optuna.create_study(storage=storage, study_name="s")
        beaten, silent = study.ask(), study.ask()  # both RUNNING; as if their workers died at once
        upstream.record_first_heartbeat(beaten)
        assert trials_without_heartbeat(study) == [upstream.trial_id(silent)], \
            "optuna: the trial_heartbeats table (TrialHeartbeatModel.trial_id) changed"
        time.sleep(2.5)
        optuna.storages.fail_stale_trials(study)
    states = {t.number: t.state.name for t in study.get_trials(deepcopy=False)}
    assert states == {beaten.number: "FAIL", silent.number: "RUNNING"}


def test_optuna_logs_failed_trials_with_the_logger_hpo_filters() -> None:
    import importlib

    module = importlib.import_module(upstream.OPTIMIZE_LOGGER)
    assert module._logger.name == upstream.OPTIMIZE_LOGGER, "optuna: Study.optimize logs failures elsewhere"
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    logger = logging.getLogger(upstream.OPTIMIZE_LOGGER)
    filters, level = logger.filters[:], logger.level  # a search run earlier in this process adds hpo's filter
    logger.filters.clear()
    logger.setLevel(logging.WARNING)
    logger.addHandler(handler)
    try:
        study = optuna.create_study()
        study.optimize(lambda t: 1 / 0, n_trials=1, catch=(ZeroDivisionError,))
    finally:
        logger.removeHandler(handler)
        logger.filters[:] = filters
        logger.setLevel(level)
    assert any("failed" in r.getMessage() for r in seen), "optuna: a failed trial is no longer logged there"


def _tiny_trainer(tmp_path: Path, tiny_model: Path):  # noqa: ANN202
    import datasets
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding,
                              Trainer, TrainingArguments)

    tok = AutoTokenizer.from_pretrained(tiny_model)
    rows = tok(["a good film", "a bad film"] * 10, truncation=True)
    data = datasets.Dataset.from_dict({**rows, "labels": [1, 0] * 10})
    args = TrainingArguments(output_dir=str(tmp_path / "o"), per_device_train_batch_size=8, report_to=[],
                             use_cpu=True)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=2)
    return Trainer(model=model, args=args, train_dataset=data, data_collator=DataCollatorWithPadding(tok))


def test_trainer_hooks_hpo_overrides_keep_their_parameters() -> None:
    from transformers import Trainer

    for name, params in upstream.TRAINER_HOOKS.items():
        method = getattr(Trainer, name, None)
        assert method is not None, f"transformers: Trainer.{name} is gone; SearchTrainer overrides it"
        have = list(inspect.signature(method).parameters)
        assert [p for p in params if p not in have] == [], f"transformers: Trainer.{name} now takes {have}"
    assert "self._hp_search_setup(trial)" in inspect.getsource(Trainer.train), \
        "transformers: Trainer.train no longer calls _hp_search_setup(trial)"


def test_trainer_batch_size_and_trial_attributes(tmp_path: Path, tiny_model: Path) -> None:
    trainer = _tiny_trainer(tmp_path, tiny_model)
    assert upstream.train_batch_size(trainer) == 8, "transformers: Trainer._train_batch_size is not set when built"
    upstream.set_train_batch_size(trainer, 4)
    assert len(trainer.get_train_dataloader()) == 5, \
        "transformers: the train dataloader no longer takes its batch size from Trainer._train_batch_size"
    marker = object()
    trainer._hp_search_setup(marker)
    assert upstream.current_trial(trainer) is marker, "transformers: _hp_search_setup no longer records Trainer._trial"
    trainer._eval_dataloaders = {"eval": object()}
    assert upstream.drop_eval_dataloaders(trainer) and trainer._eval_dataloaders == {}


def test_accelerator_holds_what_hpo_frees() -> None:
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    for name in upstream.ACCELERATOR_HELD:
        assert isinstance(getattr(accelerator, name, None), list), f"accelerate: Accelerator.{name} is gone"


def test_torch_cpu_bf16_probes_exist() -> None:
    import torch

    names = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    assert any(callable(getattr(torch.cpu, n, None)) for n in names), \
        "torch: torch.cpu has no bf16 probe; bf16 autocast would never be chosen on a CPU"
    assert isinstance(upstream.cpu_computes_bf16(), bool)


def test_datasets_fingerprint_follows_the_rows() -> None:
    import datasets

    a = datasets.Dataset.from_dict({"x": [1, 2, 3]})
    b = a.map(lambda r: {"x": r["x"] + 1})
    assert isinstance(upstream.fingerprint(a), str), "datasets: Dataset._fingerprint is gone"
    assert upstream.fingerprint(a) != upstream.fingerprint(b), "datasets: the fingerprint no longer follows the rows"


def test_no_private_upstream_use_outside_upstream_py() -> None:
    """The one module is the only place: a new private access elsewhere fails here."""
    import re

    root = Path(__file__).resolve().parents[1] / "hpo"
    files = [f for f in root.rglob("*.py") if f.name != "upstream.py" and "testing" not in f.parts]
    # hpo's own private names (methods and attributes it defines) are not upstream's
    own = {m for f in files for m in re.findall(r"(?:def |self\.)(_[a-z]\w*)\b", f.read_text())}
    own -= set(upstream.TRAINER_HOOKS)
    access = re.compile(r"\b(?:study|trial|t|storage|rdb|trainer|accelerator|dataset|ds)\.(_[a-z]\w*)")
    modules = re.compile(r"optuna\.storages\._|optuna\.study\._")
    offenders = []
    for file in files:
        for n, line in enumerate(file.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if modules.search(code) or any(name not in own and not name.startswith("_hpo_")
                                                for name in access.findall(code)):
                offenders.append(f"{file.relative_to(root.parent)}:{n}: {line.strip()}")
    assert offenders == [], "private upstream attributes outside hpo/upstream.py:\n" + "\n".join(offenders)
