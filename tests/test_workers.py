"""Many workers on one study: a SIGKILLed worker loses nothing, SIGTERM stops one cleanly, SQLite is refused,
and the final model is made once however many `hpo finalize` run at the same time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import paused, run_cli

pytestmark = pytest.mark.slow

HEARTBEAT = {"search__heartbeat_interval": 1, "search__grace_period": 8}  # 3 s lapses on a loaded 2-core box


def spawn(*args: str, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    fh = open(log, "wb")
    return subprocess.Popen([sys.executable, "-m", "hpo", *args], stdout=fh, stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})})


def load(url: str, name: str = "tiny") -> Any:
    import optuna

    return optuna.load_study(study_name=name, storage=url)


def wait_for_running_trial(url: str, pids: list[int], *, timeout: float = 300) -> tuple[int, int]:
    """(pid, trial number) of the first of `pids` seen running a trial."""
    from optuna.trial import TrialState

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            for t in load(url).get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                for pid in pids:
                    if str(t.user_attrs.get("worker", "")).endswith(f":{pid}"):
                        return pid, t.number
        except KeyError:
            pass  # the study is not created yet
        time.sleep(0.2)
    raise AssertionError(f"none of processes {pids} ran a trial within {timeout}s")


def signal_during_trial(url: str, pids: list[int], sig: int, *, timeout: float = 300) -> tuple[int, int]:
    """Send `sig` to the first of `pids` seen running a trial, while that trial surely still runs (the process is
    paused between the check and the signal). Returns (pid, trial number)."""
    deadline = time.monotonic() + timeout
    while True:
        pid, number = wait_for_running_trial(url, pids, timeout=max(1.0, deadline - time.monotonic()))
        with paused(pid):
            if next(t for t in load(url).get_trials(deepcopy=False) if t.number == number).state.name == "RUNNING":
                os.kill(pid, sig)
                return pid, number


def finished(trials: list[Any]) -> list[Any]:
    return [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]


def test_sigkill_one_of_three_postgres_workers_loses_nothing_and_final_is_made_once(
        make_study: Any, pg_server: Any, tmp_path: Path) -> None:
    url = pg_server.create_db("killed")
    no_password = url.replace(":s3cret-pg-pw@", "@")
    env = {"PGPASSWORD": "s3cret-pg-pw"}  # the URL in the file has none: libpq takes it from the environment
    study = make_study(storage=no_password, **HEARTBEAT, search__n_trials=4, training={"num_train_epochs": 2,
                                                                                        "seed": 0})
    workers = [spawn("worker", str(study), log=tmp_path / f"worker{i}.log", env=env) for i in range(3)]
    pid, killed_trial = signal_during_trial(url, [w.pid for w in workers], signal.SIGKILL)
    for i, w in enumerate(workers):
        code = w.wait(timeout=300)
        assert code == (-signal.SIGKILL if w.pid == pid else 0), (tmp_path / f"worker{i}.log").read_text()[-3000:]

    trials = load(url).get_trials(deepcopy=False)
    done = finished(trials)
    assert len(done) == 4
    assert not [t for t in trials if t.state.name == "RUNNING"]
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    lost = next(t for t in trials if t.number == killed_trial)
    assert lost.state.name == "FAIL"
    retried_from = [t.system_attrs.get("failed_trial") for t in done if "failed_trial" in t.system_attrs]
    assert len(retried_from) == len(set(retried_from)), "a retried trial finished twice"
    assert killed_trial not in {t.number for t in done}
    configs = [tuple(sorted(t.params.items())) for t in done]
    assert len(set(configs)) == len(configs), ("workers repeated each other's parameters", [
        (t.number, t.state.name, t.params, t.system_attrs) for t in trials])

    # Two finalizers at once: one promotes and evaluates, the other waits and reuses its work.
    finals = [spawn("finalize", str(study), log=tmp_path / f"final{i}.log", env=env) for i in range(2)]
    logs = []
    for i, f in enumerate(finals):
        code = f.wait(timeout=240)
        logs.append((tmp_path / f"final{i}.log").read_text())
        assert code == 0, logs[-1][-3000:]
    assert sum("promoted trial" in log for log in logs) == 1, logs
    # the unseen data is scored by one of them only (by the gate, whose evaluation the final stage reuses)
    assert sum("evaluating trial" in log or "gate: scoring" in log for log in logs) == 1, logs
    out = study.parent / "runs" / "tiny"
    marker = json.loads((out / "best-model" / "hpo-final.json").read_text())
    results = json.loads((out / "results.json").read_text())
    assert marker["trial"] == results["final"]["trial"] == load(url).best_trial.number
    assert results["models"][0]["counts"]["finished"] == 4


def test_sigterm_stops_a_worker_cleanly_and_a_rerun_completes(make_study: Any, pg_server: Any,
                                                               tmp_path: Path) -> None:
    url = pg_server.create_db("stopped")
    study = make_study(storage=url, **HEARTBEAT, search__n_trials=2)
    log = tmp_path / "worker.log"
    w = spawn("worker", str(study), log=log)
    _, stopped_trial = signal_during_trial(url, [w.pid], signal.SIGTERM)
    code = w.wait(timeout=60)
    states = {t.number: t.state.name for t in load(url).get_trials(deepcopy=False)}
    assert code == 130, f"signalled during trial {stopped_trial}; trials {states}\n{log.read_text()[-3000:]}"
    text = log.read_text()
    assert "interrupted" in text and "Traceback" not in text, text[-3000:]
    trial = next(t for t in load(url).get_trials(deepcopy=False) if t.number == stopped_trial)
    assert trial.state.name == "FAIL"

    again = run_cli("worker", str(study), timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    trials = load(url).get_trials(deepcopy=False)
    assert len(finished(trials)) == 2
    assert not [t for t in trials if t.state.name == "RUNNING"]


def test_two_workers_on_sqlite_second_is_refused_clearly(make_study: Any, tmp_path: Path) -> None:
    study = make_study(search__n_trials=2)
    url = f"sqlite:///{study.parent / 'tiny.db'}"
    first = spawn("worker", str(study), log=tmp_path / "first.log")
    try:
        wait_for_running_trial(url, [first.pid])
        with paused(first.pid):  # surely still at work in its trial, however long the second takes to start
            second = run_cli("worker", str(study), timeout=120)
        assert second.returncode == 3
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and "PostgreSQL" in lines[0], second.stderr
        assert "database is locked" not in second.stderr + second.stdout
    finally:
        assert first.wait(timeout=240) == 0, (tmp_path / "first.log").read_text()[-3000:]
    assert "database is locked" not in (tmp_path / "first.log").read_text()
