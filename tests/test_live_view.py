"""The live view: bars on a terminal, plain lines (no control codes) elsewhere, and a real run's plain lines."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path
from typing import Callable

import pytest
from conftest import run_cli
from rich.console import Console

from hpo.live import LiveView, opened

ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _show(view: LiveView, clock: Clock) -> None:
    view.study(done=2, pruned=1, failed=0, best="best 0.8867 (#1)", ends_at=time.time() + 300, planned=14)
    view.trial_begin(3, 120)
    clock.now += 20
    view.trial_step(40, 0.5123)


def test_a_terminal_gets_a_study_bar_and_a_trial_bar() -> None:
    out = io.StringIO()
    clock = Clock()
    view = LiveView(Console(file=out, force_terminal=True, width=140), total=None, metric="accuracy", clock=clock)
    with opened(view):
        _show(view, clock)
        view.console.print("[1/~14] trial 3 COMPLETE ...")  # trial lines go above the bars
        view._progress.refresh()
    text = out.getvalue()
    assert ESCAPE.search(text)  # drawn and redrawn in place
    plain = ESCAPE.sub("", text)
    assert "study" in plain and "2/14" in plain and "1 pruned, 0 failed, best 0.8867 (#1), ends about" in plain
    assert "trial 3" in plain and "40/120" in plain and "loss 0.5123, 40s left" in plain  # 20 s for 40 steps
    assert "[1/~14] trial 3 COMPLETE" in plain


def test_elsewhere_plain_status_lines_at_the_interval_and_no_control_codes() -> None:
    out = io.StringIO()
    clock = Clock()
    view = LiveView(Console(file=out, force_terminal=False, width=200), total=None, metric="accuracy",
                    every=60, clock=clock)
    assert not view.terminal
    with opened(view):
        _show(view, clock)  # 20 s in: no line yet
        assert out.getvalue() == ""
        clock.now += 40
        view.trial_step(80, 0.4)  # 60 s since the start: one line
        view.trial_step(81, 0.4)  # and not again before another 60 s
    lines = out.getvalue().splitlines()
    assert lines == ["status: trial 3: step 80/120, loss 0.4000, 30s left; study 2/~14 done, 1 pruned, 0 failed, "
                     f"best 0.8867 (#1), ends about {lines[0].rsplit('ends about ', 1)[1]}"]
    assert not ESCAPE.search(out.getvalue())


def test_the_callbacks_find_no_view_outside_a_search() -> None:
    from hpo.live import current

    view = LiveView(Console(file=io.StringIO()), total=3, metric="accuracy")
    assert current() is None
    with opened(view):
        assert current() is view
    assert current() is None


@pytest.mark.slow
def test_a_run_whose_output_is_not_a_terminal_writes_plain_lines(make_study: Callable[..., Path]) -> None:
    study_file = make_study()
    r = run_cli("run", str(study_file), env={"HPO_STATUS_EVERY": "0", "HPO_BUDGET": ""})
    assert r.returncode == 0, r.stderr[-3000:]
    assert not ESCAPE.search(r.stderr)
    lines = r.stderr.splitlines()
    trial_lines = [ln for ln in lines if re.match(r"\[\d+/3\] trial ", ln)]
    assert [int(ln.split()[2]) for ln in trial_lines] == [0, 1, 2]  # one line per trial
    status = [ln for ln in lines if ln.startswith("status: trial ")]
    assert status and all(re.match(r"status: trial \d: step \d+/\d+, loss ", ln) for ln in status)
    assert any("study 1/3 done" in ln and "best " in ln for ln in status)  # the study's state as it goes
