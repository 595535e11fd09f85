"""`hpo run` end to end in a subprocess: outputs, resume after a kill, pruning, status/best."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from conftest import peek_trials, run_cli

pytestmark = pytest.mark.slow


def _trials(study_file: Path, name: str = "tiny") -> list[optuna.trial.FrozenTrial]:
    url = f"sqlite:///{study_file.parent / (name + '.db')}"
    return optuna.load_study(study_name=name, storage=url).get_trials()


def _finished(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    return [t for t in trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]


def test_run_writes_model_and_results_and_status(make_study: object) -> None:
    study_file = make_study()
    r = run_cli("run", str(study_file))
    assert r.returncode == 0, r.stderr[-3000:]
    out = study_file.parent / "runs" / "tiny"
    results = json.loads((out / "results.json").read_text())
    cm = results["final"]["confusion_matrix"]
    assert sum(map(sum, cm)) == 80  # every test row scored once
    # the reported accuracy is the one its confusion matrix implies
    assert results["final"]["test_metrics"]["accuracy"] == pytest.approx(sum(cm[i][i] for i in range(len(cm))) / 80)
    assert results["final"]["labels"] == ["negative", "positive"]
    assert len(results["trials"]["tiny"]) == 3
    model_dir = out / "best-model"
    config = json.loads((model_dir / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    assert (model_dir / "tokenizer.json").is_file() or (model_dir / "vocab.txt").is_file()
    # the study's max_length travels with the model: hpo predict and truncating pipelines read it
    assert json.loads((model_dir / "tokenizer_config.json").read_text())["model_max_length"] == 32
    assert "trial" in r.stderr and "final model" in r.stderr
    # The held-out gate already scored the promoted checkpoint on the test rows: not evaluated twice.
    gate = json.loads((out / "selection" / "tiny" / "gate.json").read_text())
    assert gate[str(results["final"]["trial"])]["evaluation"]["metrics"] == results["final"]["test_metrics"]
    assert "evaluating trial" not in r.stderr
    # scored in the arithmetic the trials were validated in, and the report says which
    arithmetic = {"bf16": "bf16 autocast", "fp32": "fp32"}[results["search"]["precision"]]
    assert results["final"]["evaluated_in"] == arithmetic
    assert f"unseen data scored in {arithmetic}" in (out / "report.md").read_text()
    trials = _trials(study_file)
    assert trials[0].user_attrs["baseline"] is True  # Trainer defaults enqueued first
    assert all("profile" in t.user_attrs and "metrics" in t.user_attrs for t in trials)

    status = run_cli("status", str(study_file))
    assert status.returncode == 0 and "3/3 finished" in status.stdout
    best = json.loads(run_cli("best", str(study_file)).stdout)
    assert best["value"] == max(t.value for t in trials if t.value is not None)

    # A second run has nothing left to do: no new trial, same final model.
    again = run_cli("run", str(study_file))
    assert again.returncode == 0, again.stderr[-2000:]
    assert len(_trials(study_file)) == 3
    assert json.loads((out / "results.json").read_text())["final"]["trial"] == results["final"]["trial"]


def test_kill_after_first_trial_then_resume(make_study: object) -> None:
    study_file = make_study(search__n_trials=4, search__baseline=False)
    env = {**os.environ}
    proc = subprocess.Popen([sys.executable, "-m", "hpo", "run", str(study_file)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    db = study_file.parent / "tiny.db"
    deadline = time.monotonic() + 300
    before: list[optuna.trial.FrozenTrial] = []
    while time.monotonic() < deadline:
        if any(state in ("COMPLETE", "PRUNED") for _, state, _ in peek_trials(db)):
            break
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _finished(_trials(study_file))
    assert before, "no trial finished before the deadline"
    assert len(_finished(_trials(study_file))) < 4, "the run finished before it could be killed"

    r = run_cli("run", str(study_file))
    assert r.returncode == 0, r.stderr[-3000:]
    after = _trials(study_file)
    finished = _finished(after)
    assert len(finished) == 4
    assert len({t.number for t in after}) == len(after)
    assert not [t for t in after if t.state == optuna.trial.TrialState.RUNNING]
    by_number = {t.number: t for t in after}
    for t in before:  # finished trials are kept as they were, never run again
        assert by_number[t.number].state == t.state and by_number[t.number].value == t.value
        assert by_number[t.number].datetime_complete == t.datetime_complete


def test_pruner_stops_a_trial_that_falls_behind(make_study: object) -> None:
    study_file = make_study(
        objective={"metric": "loss"},
        search={"n_trials": 2, "evals_per_epoch": 4, "baseline": False,
                "space": {"learning_rate": {"type": "float", "low": 1e-8, "high": 0.05, "log": True}},
                # the first barely moves; the second's too-large steps push its validation loss above it
                "enqueue": [{"learning_rate": 1e-8}, {"learning_rate": 0.05}],
                "pruner": {"name": "median", "n_startup_trials": 1, "n_warmup_steps": 0}},
        training={"num_train_epochs": 3, "seed": 0, "per_device_train_batch_size": 16})
    r = run_cli("run", str(study_file))
    assert r.returncode == 0, r.stderr[-3000:]
    trials = _trials(study_file)
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED]
    pruned = trials[1]
    # Pruned on the progress scale (percent of an epoch), before the end of training.
    assert max(pruned.intermediate_values) < 300
    assert "PRUNED" in r.stderr
