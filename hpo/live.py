"""The live view of a search: on a terminal, a bar for the study (trials done, pruned, failed, best so far, when
it ends) and one for the running trial (steps, loss, time left); elsewhere (CI, logs) plain lines, no control
codes: the one line per trial of `hpo.progress` and a short status line every `HPO_STATUS_EVERY` seconds
(default 60).

`TrialWatch`, the Trainer callback that feeds the trial bar, also writes the running trial's steps to its user
attrs (for `hpo status`) and cuts a trial that would run past the budget's search deadline (`hpo.search.budgeting`).
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from transformers import TrainerCallback

from hpo import interrupts
from hpo.spec.duration import format_duration

STATUS_EVERY_S = 60.0
STEPS_ATTR_EVERY_S = 10.0  # how often a running trial writes its steps to the store
_current: list["LiveView"] = []


def current() -> "LiveView | None":
    return _current[-1] if _current else None


def clock_time(unix: float) -> str:
    return time.strftime("%H:%M:%S" if abs(unix - time.time()) < 600 else "%H:%M", time.localtime(unix))


def status_every() -> float:
    raw = os.environ.get("HPO_STATUS_EVERY", "")
    try:
        return max(0.0, float(raw)) if raw else STATUS_EVERY_S
    except ValueError:
        return STATUS_EVERY_S


class LiveView:
    """What a person watching sees while trials run, on `console` (a terminal or not)."""

    def __init__(self, console: Console, *, total: int | None, metric: str, every: float | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.console, self.metric, self.clock = console, metric, clock
        self.terminal = console.is_terminal and not console.is_dumb_terminal
        self.every = status_every() if every is None else every
        self.total = total  # trials the study runs to, when known (a budget plans it: `planned`)
        self.planned: int | None = None
        self.done = self.pruned = self.failed = 0
        self.best: str = "no best yet"
        self.ends_at: float | None = None
        self.trial: int | None = None
        self.step = self.max_steps = 0
        self.loss: float | None = None
        self.trial_started = 0.0
        self._last_status = clock()
        self._progress: Progress | None = None
        self._study_task: Any = None
        self._trial_task: Any = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        if self.terminal:
            self._progress = Progress(TextColumn("{task.description}"), BarColumn(bar_width=30),
                                      MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                                      console=self.console, refresh_per_second=4, transient=True)
            self._study_task = self._progress.add_task("study", total=self._study_total(), info="")
            self._progress.start()
            self._refresh_study()

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    # -- the study -------------------------------------------------------------------------------
    def study(self, *, done: int, pruned: int, failed: int, best: str | None = None,
              ends_at: float | None = None, planned: int | None = None) -> None:
        self.done, self.pruned, self.failed = done, pruned, failed
        self.best = best or self.best
        self.ends_at = ends_at if ends_at is not None else self.ends_at
        self.planned = planned if planned is not None else self.planned
        self._refresh_study()

    def _study_total(self) -> int | None:
        return self.planned if self.planned is not None else self.total

    def study_text(self) -> str:
        ends = f", ends about {clock_time(self.ends_at)}" if self.ends_at else ""
        return f"{self.pruned} pruned, {self.failed} failed, {self.best}{ends}"

    def _refresh_study(self) -> None:
        if self._progress is not None:
            total = self._study_total()
            self._progress.update(self._study_task, completed=self.done, total=max(total or 0, self.done) or None,
                                  info=self.study_text())

    # -- the running trial -------------------------------------------------------------------------
    def trial_begin(self, number: int, max_steps: int) -> None:
        self.trial, self.step, self.max_steps, self.loss = number, 0, max_steps, None
        self.trial_started = self.clock()
        if self._progress is not None:
            if self._trial_task is not None:
                self._progress.remove_task(self._trial_task)
            self._trial_task = self._progress.add_task(f"trial {number}", total=max_steps, info="")

    def trial_left_s(self) -> float | None:
        if not self.step or not self.max_steps:
            return None
        return (self.clock() - self.trial_started) / self.step * (self.max_steps - self.step)

    def trial_text(self) -> str:
        loss = f"loss {self.loss:.4f}" if self.loss is not None else "loss -"
        left = self.trial_left_s()
        return f"{loss}, {format_duration(left)} left" if left is not None else loss

    def trial_step(self, step: int, loss: float | None) -> None:
        self.step, self.loss = step, loss if loss is not None else self.loss
        if self._progress is not None and self._trial_task is not None:
            self._progress.update(self._trial_task, completed=step, info=self.trial_text())
        elif not self.terminal and self.clock() - self._last_status >= self.every:
            self.status_line()

    def trial_end(self) -> None:
        if self._progress is not None and self._trial_task is not None:
            self._progress.remove_task(self._trial_task)
        self._trial_task, self.trial = None, None

    def status_line(self) -> None:
        """One short plain line: the running trial and the study."""
        self._last_status = self.clock()
        total = self._study_total()
        of = f"/{'~' if self.planned is not None else ''}{total}" if total else ""
        trial = f"trial {self.trial}: step {self.step}/{self.max_steps}, {self.trial_text()}; " \
            if self.trial is not None else ""
        self.console.print(f"status: {trial}study {self.done}{of} done, {self.study_text()}",
                           highlight=False, markup=False)


@contextmanager
def opened(view: LiveView) -> Iterator[LiveView]:
    """The view, current for the callbacks while the search runs."""
    _current.append(view)
    view.start()
    try:
        yield view
    finally:
        view.stop()
        _current.remove(view)


class TrialWatch(TrainerCallback):
    """Per training step of a trial: the live view, the trial's steps in the store, the budget's cut."""

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.stop_at: float | None = None  # wall clock past which a trial is cut (pruned): the budget's
        self.loss: float | None = None
        self._written = 0.0

    def _trial(self) -> Any:
        trial = getattr(self.trainer, "_trial", None)
        return trial if hasattr(trial, "study") else None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.loss, self._written = None, time.time()
        trial, view = self._trial(), current()
        if trial is not None and view is not None:
            view.trial_begin(trial.number, state.max_steps)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None,
               **kwargs: Any) -> None:
        if logs and "loss" in logs:
            self.loss = float(logs["loss"])

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        interrupts.check()  # a stop dropped inside a garbage collection lands here, a step later
        trial = self._trial()
        if trial is None:
            return
        view = current()
        if view is not None:
            view.trial_step(state.global_step, self.loss)
        now = time.time()
        if now - self._written >= STEPS_ATTR_EVERY_S:
            self._written = now
            trial.set_user_attr("steps", [state.global_step, state.max_steps])
        if self.stop_at is not None and now > self.stop_at and state.global_step < state.max_steps:
            import optuna

            trial.set_user_attr("budget_cut", True)
            trial.set_user_attr("steps", [state.global_step, state.max_steps])
            raise optuna.TrialPruned(f"cut at step {state.global_step}: the budget's search time is up")

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        view = current()
        if view is not None and self._trial() is not None:
            view.trial_end()


def watch_of(trainer: Any) -> TrialWatch | None:
    return next((c for c in trainer.callback_handler.callbacks if isinstance(c, TrialWatch)), None)
