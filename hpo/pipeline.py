"""The flow: spec -> data -> search -> final model -> evaluation -> report -> hub.

Each stage reads the spec and the study store and writes to the store or the output folder, so
`hpo run` can be stopped anywhere and rerun: it skips what is already done.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo import progress
from hpo.errors import SpecError, StageError
from hpo.results import read_json, results_path, write_json
from hpo.search.memory import freeze_loaded
from hpo.study.counts import count_trials
from hpo.study.factory import load_existing, open_storage, study_names
from hpo.study.storage import SqliteLock, is_sqlite, redact

if TYPE_CHECKING:
    from hpo.data import Splits
    from hpo.search.budgeting import BudgetKeeper
    from hpo.spec import LoadedStudy


def prepare(study: "LoadedStudy") -> "Splits":
    from hpo.data import prepare_splits

    splits = prepare_splits(study)
    progress.say(f"data: {len(splits.train)} train, {len(splits.validation)} validation, {len(splits.test)} test "
                 f"rows; {study.task.describe_labels(splits.label_names)}")
    return splits


def search(study: "LoadedStudy", splits: "Splits", storage: Any, *, max_trials: int | None = None,
           sole_process: bool = False, wait_for_others: bool = True, timings: dict[str, float] | None = None,
           budget: "BudgetKeeper | None" = None) -> int:
    """Run the missing trials of every model's study, in the live view. Returns the trials this process ran;
    adds the set-up time (tokenization or its cache, base weights, Trainer) to `timings`."""
    from hpo import live
    from hpo.search.runner import build_context, enqueue_initial, run_trials
    from hpo.study.stale import fail_orphans

    spec = study.spec
    ran = 0
    for i, model in enumerate(spec.models):
        began = time.perf_counter()
        ctx = build_context(study, model, splits, storage)
        if timings is not None:
            timings["last_run_search_setup_s"] = timings.get("last_run_search_setup_s", 0.0) + (
                time.perf_counter() - began)
        if sole_process and (n := fail_orphans(ctx.optuna_study)):
            progress.say(f"{n} trial(s) left running by a stopped process marked failed")
        counts = count_trials(ctx.optuna_study)
        planned = spec.search.planned_trials
        progress.say(f"study {ctx.optuna_study.study_name!r} on {redact(study.paths.storage_url)}: "
                     f"{counts.finished}{'' if planned else f'/{spec.search.n_trials}'} trials finished")
        enqueue_initial(ctx)
        if budget is not None:
            budget.models_after = len(spec.models) - i - 1
        total = budget.total_text if budget is not None else spec.search.n_trials
        view = live.LiveView(progress.console, total=None if planned else spec.search.n_trials,
                             metric=spec.objective.metric)
        with live.opened(view):
            on_trial = _watched(view, progress.trial_reporter(total, spec.objective.metric), budget,
                                spec.search.trial_cap)
            on_trial(ctx.optuna_study, None)
            ran += run_trials(ctx, max_trials=None if max_trials is None else max_trials - ran,
                              timeout=spec.search.timeout, on_trial=on_trial, wait_for_others=wait_for_others,
                              budget=budget)
    return ran


def _watched(view: Any, reporter: Any, budget: "BudgetKeeper | None", n_trials: int) -> Any:
    """The trial line, then the study bar brought up to date (trial None: only the bar)."""
    from hpo.study.eta import study_ends_at

    def on_trial(optuna_study: Any, trial: Any, reason: str | None = None) -> None:
        if trial is not None:
            reporter(optuna_study, trial, reason=reason)
            view.trial_end()
        counts = count_trials(optuna_study)
        plan = budget.plan if budget is not None else None
        # a budget's end is its plan's (none before the first trial has measured the speed), never a trial count's
        ends = budget.ends_at if budget is not None else study_ends_at(optuna_study, n_trials, time.time())
        view.study(done=counts.finished, pruned=counts.pruned, failed=counts.failed,
                   best=progress.best_text(optuna_study), ends_at=ends, planned=plan.trials if plan else None)
    return on_trial


def finalize(study: "LoadedStudy", splits: "Splits", storage: Any, *,
             timings: dict[str, float] | None = None) -> dict[str, Any]:
    """Promote, evaluate on unseen data and write results.json; once, whoever else asks at the same time."""
    from hpo.final import MARKER, final_lock, model_dir, promote, score_unseen
    from hpo.results import build_results
    from hpo.selection.choose import choose
    from hpo.selection.gate import gated_evaluation

    spec, out = study.spec, study.paths.output_dir
    with final_lock(out):
        previous = read_json(results_path(out)) or {}
        rows = []
        for model, name in study_names(study).items():
            optuna_study = load_existing(study, model, storage)
            if optuna_study is None:
                raise StageError(f"study {name!r} is not in the storage yet", hint="run 'hpo run' first")
            counts = count_trials(optuna_study)
            if counts.finished < spec.search.trial_cap and counts.running:
                raise StageError(f"study {name!r} has {counts.finished} finished trials "
                                 f"and {counts.running} running", hint="finalize once the workers are done")
            target = model_dir(out, model, len(spec.models) > 1)
            before = read_json(target / MARKER)
            choice = choose(study, model, optuna_study, splits)
            final = promote(study, model, optuna_study, splits, target, trial=choice.trial, source=choice.source,
                            how=choice.how)
            if final != before:
                progress.say(f"promoted trial {final['trial']} of {name!r} ({final['how']}, {final['seconds']}s)")
            old = next((m for m in previous.get("models", []) if m.get("study_name") == name), None)
            if old and old.get("test") and old.get("final") == final:
                test = old["test"]  # the same promotion (trial, data, study in its store) scored before
            elif final["how"] == "reused" and (gated := gated_evaluation(study, optuna_study, splits,
                                                                         final["trial"])):
                test = gated  # the same saved model, already scored on the same rows by the gate
            else:
                progress.say(f"evaluating trial {final['trial']} of {name!r} on {len(splits.test)} unseen rows")
                test = score_unseen(study, target, splits)
            rows.append({"model": model, "study_name": name, "path": str(target), "final": final,
                         "test": test, "optuna_study": optuna_study, "trial": choice.trial,
                         "selection": choice.record})
        results = build_results(study, splits, rows, timings=timings or {}, previous=previous)
        if len(rows) > 1:
            _copy_winner(out, results)
        write_json(results_path(out), results)
    return results


def _copy_winner(out: Path, results: dict[str, Any]) -> None:
    import shutil

    src = Path(results["final"]["path"])
    dst = out / "best-model"
    tmp = dst.with_name("best-model.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    shutil.rmtree(dst, ignore_errors=True)
    tmp.replace(dst)
    results["final"]["path"] = str(dst)


def report(study: "LoadedStudy", results: dict[str, Any], storage: Any) -> list[Path]:
    from hpo.report import write_report

    return write_report(study, results, storage)


def publish(study: "LoadedStudy") -> dict[str, Any] | None:
    if study.spec.hub is None:
        return None
    from hpo.hub import push_outputs

    return push_outputs(study)


def refuse_shared_sqlite(study: "LoadedStudy", n: int) -> None:
    if n > 0 and is_sqlite(study.paths.storage_url):
        raise SpecError(f"--workers {n} needs a storage that many processes can share; this study uses SQLite",
                        file=study.file, path="storage",
                        hint="set storage: postgresql+psycopg://user@host/db (or HPO_STORAGE)")


def start_local_workers(study: "LoadedStudy", n: int,
                        devices: list[str | None] | None = None) -> list[subprocess.Popen[bytes]]:
    """n `hpo worker` processes; worker i is pinned to GPU devices[i] (CUDA_VISIBLE_DEVICES) when given."""
    from hpo.devices import worker_env

    refuse_shared_sqlite(study, n)
    if n <= 0:
        return []
    cmd = [sys.executable, "-m", "hpo", "worker", str(study.paths.study_file),
           "--output-dir", str(study.paths.output_dir)]
    env = {**os.environ, "HPO_STORAGE": study.paths.storage_url}  # not in argv: `ps` would show a password
    if study.spec.search.budget is not None:  # the same pruner and trial cap; workers follow the plan
        env["HPO_BUDGET"] = str(study.spec.search.budget)
    devices = devices or []
    return [subprocess.Popen(cmd, env=worker_env(env, devices[i] if i < len(devices) else None)) for i in range(n)]


def study_lock(study: "LoadedStudy") -> Any:
    """SQLite takes one process: refuse a second one at once, before any slow work (the data check included)."""
    url = study.paths.storage_url
    return SqliteLock(url) if is_sqlite(url) else contextlib.nullcontext()


def run(study: "LoadedStudy", *, workers: int = 0, push: bool = True,
        worker_devices: list[str | None] | None = None, started: float | None = None) -> dict[str, Any]:
    """The whole study: search (with local workers), final model, evaluation, report, push.

    `started`: when the command was launched (Unix seconds), where a budget (search.budget) starts."""
    from hpo.search.budgeting import BudgetKeeper

    refuse_shared_sqlite(study, workers)
    started = time.time() if started is None else started
    keeper = BudgetKeeper(study, started=started, parallel=1 + workers) if study.spec.search.budget else None
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with study_lock(study):
            progress.quiet_libraries()
            began = time.perf_counter()
            splits = prepare(study)  # before the store: bad data leaves no new store behind
            timings = {"last_run_data_s": time.perf_counter() - began}
            freeze_loaded()
            storage = open_storage(study)
            procs = start_local_workers(study, workers, worker_devices)
            began = time.perf_counter()
            search(study, splits, storage, sole_process=is_sqlite(study.paths.storage_url), timings=timings,
                   budget=keeper)
            for p in procs:
                p.wait()
            timings["last_run_search_s"] = time.perf_counter() - began
            results = finalize(study, splits, storage, timings=timings)
            report(study, results, storage)
            if keeper is not None:
                _budget_summary(study, results, keeper)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()  # each marks its running trial failed on the way out
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=60)
    final = results["final"]
    from hpo.selection.gate import test_metric

    shown = test_metric(study)
    progress.say(f"final model: trial {final['trial']} ({final['how']}), test "
                 f"{shown}={final['test_metrics'][shown]:.4f} -> {final['path']}")
    if push:
        pushed = publish(study)
        if pushed:
            progress.say(f"pushed to {pushed['url']}")
    return results


def _budget_summary(study: "LoadedStudy", results: dict[str, Any], keeper: "BudgetKeeper") -> None:
    """How the run ended against its budget: said, and kept in results.json under `budget`."""
    from hpo.spec.duration import format_duration

    results["budget"] = summary = keeper.summary(time.time())
    write_json(results_path(study.paths.output_dir), results)
    off = 100 * (summary["wall_vs_budget"] - 1)
    progress.say(f"budget: search to report took {format_duration(summary['wall_s'])} of "
                 f"{format_duration(summary['budget_s'])} ({off:+.0f}%)")


def run_worker(study: "LoadedStudy", *, max_trials: int | None = None) -> int:
    """One worker: join the shared study and run trials; the coordinator finalizes (and plans a budget)."""
    from hpo.search.budgeting import BudgetKeeper

    keeper = BudgetKeeper(study, started=time.time(), lead=False) if study.spec.search.budget else None
    with study_lock(study):
        progress.quiet_libraries()
        splits = prepare(study)
        freeze_loaded()
        storage = open_storage(study)
        return search(study, splits, storage, max_trials=max_trials, sole_process=is_sqlite(study.paths.storage_url),
                      wait_for_others=max_trials is None, budget=keeper)


def finalize_only(study: "LoadedStudy") -> dict[str, Any]:
    with study_lock(study):
        progress.quiet_libraries()
        splits = prepare(study)
        freeze_loaded()
        storage = open_storage(study)
        results = finalize(study, splits, storage)
        report(study, results, storage)
    return results
