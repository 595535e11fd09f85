"""Looking at a study: the trial table, the best trial, the dashboard."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from hpo.errors import StageError
from hpo.study.counts import count_trials, latest_trials, running_trials
from hpo.study.factory import load_existing, open_storage, study_names
from hpo.study.storage import redact

if TYPE_CHECKING:
    from hpo.spec import LoadedStudy


def _studies(study: "LoadedStudy") -> list[Any]:
    storage = open_storage(study)
    found = []
    for model, name in study_names(study).items():
        s = load_existing(study, model, storage)
        if s is None:
            raise StageError(f"study {name!r} is not in {redact(study.paths.storage_url)} yet",
                             hint="start it with 'hpo run'")
        found.append((model, s))
    return found


def print_status(study: "LoadedStudy", *, limit: int = 50) -> None:
    from rich.console import Console
    from rich.table import Table

    from hpo.progress import format_params
    from hpo.study.objectives import objective_names
    from hpo.selection.pareto import front_numbers

    console = Console(highlight=False)
    names = objective_names(study.spec)
    for model, s in _studies(study):
        counts = count_trials(s)
        shown = latest_trials(s, limit)
        table = Table(title=f"{s.study_name}  ({model})  {_finished_text(study, s, counts.finished)}: "
                            f"{counts.complete} complete, {counts.pruned} pruned, {counts.failed} failed, "
                            f"{counts.running} running", title_justify="left")
        front = front_numbers(s)  # multi-objective: its members are marked
        extra = ["front"] if len(names) > 1 else []
        for col in ("#", "state", *names, *extra, "duration", "worker", "params"):
            table.add_column(col, no_wrap=col != "params")
        for t in shown:
            secs = t.user_attrs.get("duration_s")
            values = [f"{v:.4g}" if i else f"{v:.4f}" for i, v in enumerate(t.values)] if t.values else [""] * len(names)
            marks = ["*" if t.number in front else ""] if extra else []
            table.add_row(str(t.number), t.state.name, *values, *marks,
                          f"{secs:.0f}s" if secs is not None else "", str(t.user_attrs.get("worker", "")),
                          format_params(t.params))
        console.print(table)
        if limit and counts.total > len(shown):
            console.print(f"({counts.total - len(shown)} earlier trials not shown; --limit 0 shows all)")
        running = running_trials(s)
        for t in running:
            steps = t.user_attrs.get("steps")
            at = f"step {steps[0]}/{steps[1]}, " if isinstance(steps, list) and len(steps) == 2 else ""
            console.print(f"worker {t.user_attrs.get('worker', '?')} runs trial {t.number} "
                          f"({at}{t.user_attrs.get('progress', 0)}% of an epoch evaluated)")
        if running:
            console.print(eta_line(s, study.spec.search.trial_cap, time.time()))


def _finished_text(study: "LoadedStudy", optuna_study: Any, finished: int) -> str:
    from hpo.spec.duration import format_duration
    from hpo.study.budget import ATTR

    search = study.spec.search
    plan = optuna_study.user_attrs.get(ATTR) or {}  # a run with --budget planned this study
    seconds = search.budget or plan.get("budget_s")
    if not seconds:
        return f"{finished}/{search.n_trials} finished"
    about = f"about {plan['trials']} planned" if plan.get("trials") else "planned"
    return f"{finished} finished ({about} within a budget of {format_duration(seconds)})"


def eta_line(optuna_study: Any, n_trials: int, now: float) -> str:
    """When the running search should end: from the budget's plan, else from the trials' durations."""
    from hpo.spec.duration import format_duration
    from hpo.study.budget import ATTR
    from hpo.study.eta import study_ends_at

    ends = study_ends_at(optuna_study, n_trials, now)
    if ends is None:
        return "ETA: unknown until a trial finishes"
    source = "the budget's plan, final stages included" if (optuna_study.user_attrs.get(ATTR) or {}).get(
        "ends_at") == ends else "the trials' durations and steps, search only"
    return f"ETA: {time.strftime('%H:%M:%S', time.localtime(ends))} (in {format_duration(ends - now)}; from {source})"


def best_trials(study: "LoadedStudy") -> Any:
    from hpo.study.objectives import objective_names
    from hpo.selection.pareto import ranked

    out = []
    for model, s in _studies(study):
        candidates = ranked(s, study.spec)  # multi-objective: the trial selection.pick chooses
        if not candidates:
            raise StageError(f"study {s.study_name!r} has no completed trial yet", hint="run 'hpo run'")
        b = candidates[0]
        out.append({"model": model, "study_name": s.study_name, "number": b.number, "value": b.values[0],
                    **({"values": dict(zip(objective_names(study.spec), b.values))} if len(b.values) > 1 else {}),
                    "params": b.params, "metrics": b.user_attrs.get("metrics", {}),
                    "duration_s": b.user_attrs.get("duration_s")})
    return out[0] if len(out) == 1 else out


def start_dashboard(study: "LoadedStudy", *, host: str, port: int) -> None:
    from optuna_dashboard import run_server

    from hpo.progress import say

    storage = open_storage(study)
    say(f"optuna-dashboard for {redact(study.paths.storage_url)} at http://{host}:{port}/ (Ctrl-C to stop)")
    run_server(storage, host=host, port=port)
