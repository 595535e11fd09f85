"""Shared fixtures: tiny models built from a config, SST-2 slices from ../shared/data, study files."""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Under pytest-xdist the workers share the cores: torch's threads on tiny models then mostly wait for each
# other (on a busy 2-core machine a tiny trial took 3-5x longer with two threads per process than with one).
# Each worker, and every `hpo` process it starts (hpo's set_threads reads OMP_NUM_THREADS), gets its share.
_XDIST_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _XDIST_WORKERS > 1:
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, _cores // _XDIST_WORKERS)))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules with slow (end-to-end) tests first, each module kept in one piece (its module fixtures are made
    once): xdist's workers then take the long tests early and end together on short ones."""
    slow = {getattr(item, "module", None) for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: getattr(item, "module", None) not in slow)


def pytest_collection_finish(session: pytest.Session) -> None:
    """The libraries the tests train with, and what collection loaded, are left out of later garbage collections,
    as in an `hpo` command: the Trainer and accelerate collect around every trial, 0.3 s each over it all."""
    import importlib

    from hpo.search.memory import freeze_loaded

    for name in ("datasets", "evaluate", "sklearn.metrics", "optuna.storages", "hpo.search.trainer",
                 "hpo.search.runner", "hpo.data", "hpo.spec", "hpo.study.factory", "hpo.metrics"):
        importlib.import_module(name)
    freeze_loaded()


def sst2_rows(split: str, n: int) -> list[dict[str, str]]:
    with open(SHARED / "sst2" / f"{split}.csv", newline="") as fh:
        return [r for _, r in zip(range(n), csv.DictReader(fh))]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BERT of a few thousand parameters with a vocabulary from SST-2 sentences."""
    from hpo.testing.tiny import build_tiny_model

    texts = [r["sentence"] for r in sst2_rows("train", 3000)]
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", texts)


@pytest.fixture
def make_study(tmp_path: Path, tiny_model: Path) -> Callable[..., Path]:
    """Write a study file (tiny model, SST-2 slices as CSV with string labels) with overrides; return its path."""
    data = tmp_path / "data"
    data.mkdir()
    names = {"0": "negative", "1": "positive"}
    for split, n in (("train", 240), ("validation", 80), ("test", 80)):
        src = "train" if split == "train" else "validation" if split == "validation" else "test"
        rows = sst2_rows(src, n)
        with open(data / f"{split}.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["review", "sentiment"])
            w.writerows([r["sentence"], names[r["label"]]] for r in rows)

    def make(**overrides: Any) -> Path:
        doc: dict[str, Any] = {
            "name": "tiny",
            "model": str(tiny_model),
            "dataset": {"train": "data/train.csv", "validation": "data/validation.csv", "test": "data/test.csv",
                        "text_column": "review", "label_column": "sentiment", "max_length": 32},
            "search": {"n_trials": 3, "evals_per_epoch": 2,
                       "space": {"learning_rate": {"type": "float", "low": 1e-3, "high": 5e-2, "log": True},
                                 "per_device_train_batch_size": {"type": "categorical", "choices": [16, 32]}},
                       "sampler": {"name": "random", "seed": 0},
                       "pruner": {"name": "none"}},
            "training": {"num_train_epochs": 2, "seed": 0},
        }
        for key, value in overrides.items():
            section, _, sub = key.partition("__")
            if sub:
                doc.setdefault(section, {})[sub] = value
            elif value is None:
                doc.pop(section, None)
            else:
                doc[section] = value
        path = tmp_path / "study.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    return make


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`python -m hpo ARGS` in a subprocess, as a user runs it."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "hpo", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=timeout)


@contextlib.contextmanager
def paused(pid: int) -> Iterator[None]:
    """The process stopped (SIGSTOP) for the block: what the block sees of it holds until the block signals it,
    however fast or slow the machine. Signals sent meanwhile are handled when it continues."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


# -- storages: a real PostgreSQL server the tests start themselves, and SQLite files --------------------
@pytest.fixture(scope="session")
def pg_server() -> Any:
    """A PostgreSQL server on 127.0.0.1 in a temp folder; missing binaries fail in CI, skip elsewhere."""
    from pg_server import find_bindir, start_server

    bindir = find_bindir()
    if bindir is None or not (bindir / "pg_ctl").exists():
        message = ("PostgreSQL server binaries not found (looked in HPO_PG_BIN, /usr/lib/postgresql/*/bin, PATH): "
                   "apt-get install -y postgresql")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    server = start_server(bindir)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_url(pg_server: Any) -> str:
    """postgresql+psycopg://hpo:PASSWORD@127.0.0.1:PORT/hpo (with a password, so redaction is testable)."""
    return pg_server.url()


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty storage of each kind the machine has (in-memory cannot be shared across processes)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    server = request.getfixturevalue("pg_server")
    return server.create_db(f"t{os.getpid()}_{next(_DB_IDS)}")


_DB_IDS = iter(range(1, 1_000_000))


def peek_trials(db: Path, study: str = "tiny") -> list[tuple[int, str, float | None]]:
    """(number, state, value) of a study's trials while another process writes the SQLite file.

    Read-only through sqlite3: opening it with Optuna would create the tables, racing the writer.
    """
    import sqlite3

    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            rows = con.execute(
                "SELECT t.number, t.state, v.value FROM trials t JOIN studies s ON s.study_id = t.study_id "
                "LEFT JOIN trial_values v ON v.trial_id = t.trial_id AND v.objective = 0 "
                "WHERE s.study_name = ? ORDER BY t.number", (study,)).fetchall()
    except sqlite3.OperationalError:  # tables not created yet, or the writer holds the file
        return []
    return [(n, s, v) for n, s, v in rows]


def search_context(study_file: Path) -> Any:
    """The trial loop's context for a study file's first model, built in this process as `hpo run` does."""
    from hpo.data import prepare_splits
    from hpo.search.runner import build_context
    from hpo.spec import load_study
    from hpo.study.factory import open_storage

    study = load_study(study_file)
    return build_context(study, study.spec.models[0], prepare_splits(study), open_storage(study))
