"""What a person watching a run sees: one line per trial with its state and value, and the best so far."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Callable

from rich.console import Console

if TYPE_CHECKING:
    import optuna

console = Console(stderr=True, highlight=False, soft_wrap=True)
STATE_STYLE = {"COMPLETE": "green", "PRUNED": "yellow", "FAIL": "red", "RUNNING": "cyan", "WAITING": "dim"}


def say(message: str) -> None:
    console.print(message)


def format_params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def trial_line(study: "optuna.Study", trial: "optuna.trial.FrozenTrial", n_trials: int | str, metric: str,
               reason: str | None = None) -> str:
    """`n_trials`: the trials the study runs to ('~14' when a budget plans them)."""
    from hpo.study.counts import count_trials

    state = trial.state.name
    value = "" if not trial.values else f"{metric}={trial.values[0]:.4f}"
    if trial.values and len(trial.values) > 1:  # multi-objective: the costs too
        names = study.metric_names or [f"objective {i}" for i in range(len(trial.values))]
        value += "".join(f" {n}={v:.4g}" for n, v in zip(names[1:], trial.values[1:]))
    if state == "PRUNED" and trial.user_attrs.get("budget_cut"):
        value = f"cut by the budget at {trial.user_attrs.get('progress', 0)}% of an epoch"
    elif state == "PRUNED":
        value = f"pruned at {trial.user_attrs.get('progress', '?')}% of an epoch"
    elif state == "FAIL":
        value = str(reason or trial.system_attrs.get("fail_reason", "failed")).splitlines()[0][:120]
    best = best_text(study)
    done = count_trials(study).finished
    secs = trial.user_attrs.get("duration_s")
    took = f"{secs:.0f}s" if isinstance(secs, (int, float)) else ""
    style = STATE_STYLE.get(state, "")
    return (f"[{done}/{n_trials}] trial {trial.number:>3} [{style}]{state:<8}[/{style}] {value:<28} {took:>5}  "
            f"{best}  {format_params(trial.params)}")


def best_text(study: "optuna.Study") -> str:
    try:
        if len(study.directions) > 1:
            return f"Pareto front: {', '.join(f'#{t.number}' for t in study.best_trials) or 'empty'}"
        best = study.best_trial
        return f"best {best.value:.4f} (#{best.number})"
    except ValueError:
        return "no best yet"


def trial_reporter(n_trials: int | Callable[[], int | str], metric: str) -> Any:
    """Prints each trial's line; `n_trials` may be a function (a budget's plan changes it as trials run)."""
    def report(study: "optuna.Study", trial: "optuna.trial.FrozenTrial", reason: str | None = None) -> None:
        console.print(trial_line(study, trial, n_trials() if callable(n_trials) else n_trials, metric, reason))
        sys.stderr.flush()
    return report


def quiet_libraries() -> None:
    """Library chatter (per-step logs, progress bars) would drown the per-trial lines."""
    import logging
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import optuna
    import transformers
    import datasets

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
