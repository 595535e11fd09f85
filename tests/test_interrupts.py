"""Ctrl-C and SIGTERM during a trial and during the final training: exit 130, one line, nothing lost or redone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from conftest import paused, peek_trials, search_context

N_TRIALS = 3


def finished(db: Path) -> dict[int, tuple[str, Any]]:
    return {n: (state, value) for n, state, value in peek_trials(db) if state in ("COMPLETE", "PRUNED")}


def start(study: Path) -> subprocess.Popen[str]:
    # As from a terminal: a shell starts background jobs with SIGINT ignored, and Python then keeps it ignored.
    return subprocess.Popen([sys.executable, "-m", "hpo", "run", str(study)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "HPO_DEBUG": ""},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def interrupt_when(proc: subprocess.Popen[str], ready: Callable[[], bool], sig: int) -> tuple[int, str]:
    """Send `sig` once `ready()`, still true with the process paused (it cannot move past the phase meanwhile)."""
    deadline = time.monotonic() + 300
    while True:
        assert proc.poll() is None, f"finished before the signal: {proc.communicate()[1][-1500:]}"
        assert time.monotonic() < deadline, "phase never reached"
        if ready():
            with paused(proc.pid):
                if ready():
                    proc.send_signal(sig)
                    break
        time.sleep(0.2)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def check_stopped(code: int, err: str, db: Path) -> None:
    assert code == 130, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("interrupted") and "Traceback" not in err, err[-2000:]
    assert not [n for n, state, _ in peek_trials(db) if state == "RUNNING"]


@pytest.mark.slow
def test_interrupted_runs_resume_without_redoing(make_study: Callable[..., Path]) -> None:
    # one order only: three tiny runs already take minutes on 2 cores; both signals take the same path
    in_trial, in_final = signal.SIGINT, signal.SIGTERM
    study = make_study(search__n_trials=N_TRIALS, final={"strategy": "retrain"},
                       training={"num_train_epochs": 4, "seed": 0})
    db = study.parent / "tiny.db"
    results = study.parent / "runs" / "tiny" / "results.json"

    # 1. during a trial: one finished, the next one running
    proc = start(study)
    code, err = interrupt_when(proc, lambda: len(finished(db)) >= 1 and any(
        state == "RUNNING" for _, state, _ in peek_trials(db)), in_trial)
    check_stopped(code, err, db)
    kept = finished(db)
    assert 1 <= len(kept) < N_TRIALS and not results.exists()

    # 2. during the final training: every trial finished, no results yet
    proc = start(study)
    code, err = interrupt_when(proc, lambda: len(finished(db)) >= N_TRIALS, in_final)
    check_stopped(code, err, db)
    after_search = finished(db)
    assert len(after_search) == N_TRIALS
    assert {n: after_search[n] for n in kept} == kept  # finished trials untouched
    assert not results.exists(), "the final stage was not interrupted (it finished first)"

    # 3. the rerun finishes the final stage only
    done = subprocess.run([sys.executable, "-m", "hpo", "run", str(study)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert finished(db) == after_search  # no trial run again, none added
    numbers = [n for n, _, _ in peek_trials(db)]
    assert len(numbers) == len(set(numbers))
    final = json.loads(results.read_text())["final"]
    import optuna

    best = optuna.load_study(study_name="tiny", storage=f"sqlite:///{db}").best_trial.number
    assert final["trial"] == best
    assert (Path(final["path"]) / "config.json").is_file()


@pytest.fixture
def search_ctx(make_study: Callable[..., Path]) -> Any:
    """A one-trial search in this process, Ctrl-C handled by Python's default handler (as in a terminal)."""
    ctx = search_context(make_study(search__n_trials=1, training={"num_train_epochs": 1, "seed": 0}))
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield ctx
    signal.signal(signal.SIGINT, previous)


def ctrl_c_after(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> None:
    """Ctrl-C right after `owner.name` returns (the row written, before the next line of Optuna runs)."""
    original = getattr(owner, name)

    def then_stop(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(owner, name, then_stop)


def test_a_stop_just_after_optuna_creates_the_trial_fails_it(search_ctx: Any,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import optuna

    from hpo.search.runner import run_trials

    ctrl_c_after(monkeypatch, optuna.Study, "ask")
    with pytest.raises(KeyboardInterrupt):
        run_trials(search_ctx)
    trials = search_ctx.optuna_study.get_trials()
    # not RUNNING: a resumed run needs no clean-up and counts it right; queued to run again
    assert [t.state.name for t in trials] == ["FAIL", "WAITING"]
    assert trials[1].user_attrs["retry_of"] == 0


def test_a_stop_while_optuna_records_the_result_keeps_the_trial(search_ctx: Any,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import optuna.study._optimize as optimize

    from hpo.search.runner import run_trials

    ctrl_c_after(monkeypatch, optimize, "_tell_with_warning")
    with pytest.raises(KeyboardInterrupt):
        run_trials(search_ctx)
    trials = search_ctx.optuna_study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] and trials[0].value is not None


class DroppedStop:
    """A stop whose handler runs inside a garbage-collection callback, where Python drops what it raises."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.dropped: list[BaseException] = []
        monkeypatch.setattr(sys, "unraisablehook", lambda u: self.dropped.append(u.exc_value))

    def now(self) -> None:
        from hpo import interrupts

        class Collected:
            def __del__(self) -> None:
                interrupts._stop(signal.SIGTERM, None)

        Collected()  # collected at once: its __del__ raises, and Python drops the KeyboardInterrupt
        assert [type(e) for e in self.dropped] == [KeyboardInterrupt]


def test_a_stop_dropped_during_a_trials_training_stops_it_at_the_next_step(search_ctx: Any,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import TrainerCallback

    from hpo.search.runner import run_trials

    stop = DroppedStop(monkeypatch)
    steps: list[int] = []

    class StopAtFirstStep(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            steps.append(state.global_step)
            if state.global_step == 0:
                stop.now()

    search_ctx.trainer.add_callback(StopAtFirstStep())
    with pytest.raises(KeyboardInterrupt):
        run_trials(search_ctx)
    assert steps == [0]  # stopped at the end of the step it arrived in
    assert [t.state.name for t in search_ctx.optuna_study.get_trials()] == ["FAIL", "WAITING"]

    search_ctx.trainer.pop_callback(StopAtFirstStep)
    assert run_trials(search_ctx) == 1  # the stop was handled: the rerun is not stopped again
    assert [t.state.name for t in search_ctx.optuna_study.get_trials()] == ["FAIL", "COMPLETE"]


def test_a_stop_dropped_before_the_search_stops_it_before_any_trial(search_ctx: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from hpo.search.runner import run_trials

    DroppedStop(monkeypatch).now()  # while the model or the data was loading
    with pytest.raises(KeyboardInterrupt):
        run_trials(search_ctx)
    assert search_ctx.optuna_study.get_trials() == []
    assert run_trials(search_ctx) == 1
