"""Study storages: heartbeats and retries over every storage the machine has, redaction, clear errors."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli
from pg_server import PASSWORD, free_port

from hpo.errors import ConcurrencyError, StorageError
from hpo.study.storage import SqliteLock, make_storage, redact


def _study(url: str, **kw: Any) -> Any:
    import optuna

    storage = make_storage(url, **kw)
    return optuna.create_study(study_name="s", storage=storage, direction="maximize", load_if_exists=True)


def test_a_dead_workers_trial_is_failed_and_retried_once(storage_url: str) -> None:
    import optuna
    from optuna.trial import TrialState

    study = _study(storage_url, heartbeat_interval=1, grace_period=1, max_retries=1)
    study.enqueue_trial({"lr": 5e-5}, user_attrs={"baseline": True})  # Trainer default, outside the range
    with pytest.warns(UserWarning, match="out of range"):
        trial = study.ask({"lr": optuna.distributions.FloatDistribution(0.1, 1.0)})
    study._storage.record_heartbeat(trial._trial_id)  # then the "process" dies: no more heartbeats
    time.sleep(2.2)  # SQLite clocks have whole seconds
    optuna.storages.fail_stale_trials(study)

    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    retry = trials[1]
    assert retry.system_attrs["fixed_params"] == trials[0].params == {"lr": 5e-5}
    assert retry.user_attrs == {"baseline": True, "retry_of": 0}
    assert retry.system_attrs["failed_trial"] == trials[0].number
    assert retry.system_attrs["retry_history"] == [trials[0].number]

    again = study.ask()  # a retried trial that dies again is not retried past max_retries
    study._storage.record_heartbeat(again._trial_id)
    time.sleep(2.2)  # SQLite clocks have whole seconds
    optuna.storages.fail_stale_trials(study)
    assert [t.state for t in study.get_trials(deepcopy=False)] == [TrialState.FAIL, TrialState.FAIL]


def test_running_trials_of_a_live_worker_are_left_alone(storage_url: str) -> None:
    import optuna
    from optuna.trial import TrialState

    study = _study(storage_url, heartbeat_interval=1, grace_period=30, max_retries=2)
    trial = study.ask()
    study._storage.record_heartbeat(trial._trial_id)
    optuna.storages.fail_stale_trials(study)
    assert study.get_trials(deepcopy=False)[0].state == TrialState.RUNNING


def test_a_trial_whose_worker_died_before_its_first_heartbeat_is_failed_and_retried(storage_url: str) -> None:
    from optuna.trial import TrialState

    from hpo.study.stale import StaleTrials

    study = _study(storage_url, heartbeat_interval=1, grace_period=5, max_retries=1)
    silent = study.ask()  # its worker died before it recorded a heartbeat
    late = study.ask()  # its worker is slow to record the first one
    stale = StaleTrials(grace_period=1.5)
    assert stale.fail(study) == 0  # first seen without a heartbeat: not yet
    time.sleep(0.5)
    study._storage.record_heartbeat(late._trial_id)
    time.sleep(1.2)
    study._storage.record_heartbeat(late._trial_id)
    assert stale.fail(study) == 1

    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING]
    assert trials[0].system_attrs["fail_reason"] == "its process died before its first heartbeat"
    assert trials[2].user_attrs["retry_of"] == silent.number


def test_without_heartbeats_no_trial_is_taken_for_dead(tmp_path: Path) -> None:
    from optuna.trial import TrialState

    from hpo.study.stale import StaleTrials

    study = _study(f"sqlite:///{tmp_path / 'x.db'}")  # no heartbeat_interval: no trial ever records one
    study.ask()
    stale = StaleTrials(grace_period=0)
    assert stale.fail(study) == stale.fail(study) == 0
    assert [t.state for t in study.get_trials(deepcopy=False)] == [TrialState.RUNNING]


def test_orphans_of_a_stopped_sqlite_process_are_failed_and_requeued(tmp_path: Path) -> None:
    from optuna.trial import TrialState

    from hpo.study.stale import fail_orphans

    url = f"sqlite:///{tmp_path / 'x.db'}"
    study = _study(url, heartbeat_interval=1, max_retries=1)
    study.ask()
    with SqliteLock(url):
        assert fail_orphans(study) == 1
    states = [t.state for t in study.get_trials(deepcopy=False)]
    assert states == [TrialState.FAIL, TrialState.WAITING]


def test_sqlite_lock_refuses_a_second_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    with SqliteLock(url):
        with pytest.raises(ConcurrencyError) as e:
            with SqliteLock(url):
                pass
        assert e.value.exit_code == 3 and "PostgreSQL" in e.value.one_line()


def test_sqlite_lock_file_goes_on_exit_and_a_removed_file_is_not_trusted(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The lock file is removed on exit; a process that opened it just before holds a lock on a file nobody
    else can see, so it must notice and lock the file at the path instead."""
    import builtins

    from hpo.study import storage

    url = f"sqlite:///{tmp_path / 'x.db'}"
    lock = SqliteLock(url)
    with lock:
        assert lock.path is not None and lock.path.exists()
    assert not lock.path.exists()
    opened = []

    def open_removed_first(path: Any, mode: str = "r") -> Any:
        fh = builtins.open(path, mode)
        if not opened:  # the first open gets the file of a holder that has just exited
            Path(path).unlink()
        opened.append(fh)
        return fh

    monkeypatch.setattr(storage, "open", open_removed_first, raising=False)
    with SqliteLock(url):
        assert len(opened) == 2 and lock.path.exists()
        monkeypatch.undo()
        with pytest.raises(ConcurrencyError):  # the file at the path is the one held
            with SqliteLock(url):
                pass


def test_redact_hides_the_password(pg_url: str) -> None:
    assert PASSWORD in pg_url
    shown = redact(pg_url)
    assert PASSWORD not in shown and "***" in shown and "127.0.0.1" in shown


def test_unreachable_postgres_is_one_redacted_line() -> None:
    url = f"postgresql+psycopg://hpo:{PASSWORD}@127.0.0.1:{free_port()}/nothing"
    with pytest.raises(StorageError) as e:
        make_storage(url)
    assert e.value.exit_code == 2
    line = e.value.one_line()
    assert PASSWORD not in line and "127.0.0.1" in line and "\n" not in line


def test_cli_unreachable_storage_exits_2_with_one_line(make_study: Any) -> None:
    study = make_study()
    url = f"postgresql+psycopg://hpo:{PASSWORD}@127.0.0.1:{free_port()}/nothing"
    proc = run_cli("status", str(study), "--storage", url, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "cannot open storage" in lines[0], proc.stderr
    assert PASSWORD not in proc.stderr + proc.stdout


def test_run_with_workers_on_sqlite_is_refused_before_any_work(make_study: Any) -> None:
    study = make_study()
    proc = run_cli("run", str(study), "--workers", "2", timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "postgresql" in proc.stderr and "SQLite" in proc.stderr and "data:" not in proc.stderr
    assert not (study.parent / "runs").exists()


@pytest.mark.slow
def test_postgres_password_reaches_no_output_log_result_or_stored_attr(make_study: Any, pg_server: Any) -> None:
    import optuna

    url = pg_server.create_db("redaction")
    study = make_study(storage="${HPO_TEST_PG}", search__n_trials=2, search__heartbeat_interval=1)
    env = {"HPO_TEST_PG": url}
    ran = run_cli("run", str(study), "--workers", "1", env=env, timeout=400)
    assert ran.returncode == 0, ran.stderr[-3000:]
    status = run_cli("status", str(study), env=env, timeout=60)
    assert status.returncode == 0, status.stderr
    assert "***" in ran.stderr and "COMPLETE" in status.stdout
    for text in (ran.stdout, ran.stderr, status.stdout, status.stderr):
        assert PASSWORD not in text
    out = study.parent / "runs" / "tiny"
    for f in out.rglob("*"):
        if f.is_file() and f.suffix in (".json", ".md", ".html", ".txt", ".log", ".yaml", ".csv"):
            assert PASSWORD not in f.read_text(errors="replace"), f
    assert json.loads((out / "results.json").read_text())["storage"].count("***") == 1

    s = optuna.load_study(study_name="tiny", storage=url)
    stored = [s.user_attrs, s._storage.get_study_system_attrs(s._study_id)]
    stored += [a for t in s.get_trials() for a in (t.user_attrs, t.system_attrs)]
    assert PASSWORD not in json.dumps(stored, default=str)
    assert all(":" in str(t.user_attrs.get("worker", "")) for t in s.get_trials() if t.state.name == "COMPLETE")


def test_a_one_time_step_is_claimed_by_exactly_one_of_many_processes(storage_url: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from hpo.study.workers import claim_once

    study = _study(storage_url)
    studies = [_study(storage_url) for _ in range(6)]  # each with its own engine, like separate processes
    with ThreadPoolExecutor(6) as pool:
        won = list(pool.map(lambda s: claim_once(s, "hpo:x"), studies))
    assert won.count(True) == 1
    assert not claim_once(study, "hpo:x") and claim_once(study, "hpo:y")


def _open(url: str) -> bool:
    from hpo.study.storage import make_storage

    make_storage(url, heartbeat_interval=5)
    return True


def test_many_processes_can_open_a_new_store_at_once(storage_url: str) -> None:
    import multiprocessing

    # an empty store: every process races to create the tables
    # spawn: a forked child of a process with torch and database threads running can hang on their locks
    with multiprocessing.get_context("spawn").Pool(6) as pool:
        assert pool.map(_open, [storage_url] * 6) == [True] * 6
