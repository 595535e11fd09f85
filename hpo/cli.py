"""The commands. Each parses its arguments, loads the study and calls one function; errors become one line.

Exit codes: 0 ok, 1 unexpected or trials that keep failing (`search.max_failures`), 2 bad input, 3 busy
(another process holds the study), 4 Hub failure, 130 interrupted. HPO_DEBUG=1 shows tracebacks.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer

from hpo import interrupts
from hpo.errors import HpoError

LAUNCH = time.time()  # where a budget counts from when the process's own start is unknown (see `launched`)

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Hyperparameter optimization for fine-tuning Hugging Face models.")

StudyArg = typer.Argument(..., help="The study file (YAML).", show_default=False)
StorageOpt = typer.Option(None, "--storage", help="Storage URL (overrides HPO_STORAGE and the file).")
OutputOpt = typer.Option(None, "--output-dir", help="Output folder (overrides HPO_OUTPUT_DIR and the file).")


_current_file: list[str] = []  # the study file of this command, named by errors raised without one


def _load(study_file: Path, storage: Optional[str] = None, output_dir: Optional[str] = None, *,
          budget: Optional[str] = None, read_only: bool = False) -> Any:
    from hpo.spec import load_study

    _current_file[:] = [str(study_file)]
    return load_study(study_file, storage=storage, output_dir=output_dir, budget=budget, read_only=read_only)


def launched() -> float:
    """When this process started (Unix seconds): Python's own start-up and imports are part of the wait."""
    try:
        with open("/proc/self/stat") as fh:  # field 22: start time in clock ticks since boot
            ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
        started = time.time() - age
    except (OSError, ValueError, IndexError, AttributeError):
        return LAUNCH
    return started if 0 <= LAUNCH - started < 60 else LAUNCH  # a clock that disagrees: what this module saw


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _workers(value: str) -> str:
    from hpo.devices import parse_workers

    try:
        parse_workers(value)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    return value


def _note(text: str) -> None:
    from hpo.progress import say

    say(text)


@app.command()
def validate(study_file: Path = StudyArg,
             data: bool = typer.Option(False, "--data", help="Also read the data: columns, labels, empty splits.")
             ) -> None:
    """Check a study file (and with --data the rows it points at); trains nothing."""
    study = _load(study_file)
    if data:
        from hpo.data import prepare_splits
        from hpo.progress import quiet_libraries

        quiet_libraries()
        _out(f"{study_file}: data ok ({json.dumps(prepare_splits(study).summary())})")
    search = study.spec.search
    trials = f"{search.n_trials} trials" if not search.planned_trials else "trials planned"
    if search.budget is not None:
        from hpo.spec.duration import format_duration

        trials += f" within a budget of {format_duration(search.budget)}"
    _out(f"{study_file}: ok ({len(search.space)} searched parameters, {trials}, model {', '.join(study.spec.models)})")


@app.command()
def run(study_file: Path = StudyArg,
        workers: str = typer.Option("0", callback=_workers,
                                    help="Extra local worker processes, or 'auto': one process per visible GPU."),
        push: bool = typer.Option(True, help="Push to the Hub when the study has a hub section."),
        budget: Optional[str] = typer.Option(
            None, "--budget", help="Wall-clock time for the whole run, e.g. 30m, 1h30m, 90s: hpo plans the trials "
                                   "to fit (overrides HPO_BUDGET and search.budget)."),
        storage: Optional[str] = StorageOpt, output_dir: Optional[str] = OutputOpt) -> None:
    """Search, promote the best trial, evaluate it on unseen data, report, push. Resumes where it stopped."""
    from hpo.devices import parse_workers, pin_first_gpu, plan_run
    from hpo.pipeline import run as run_study

    gpus = pin_first_gpu()
    study = _load(study_file, storage, output_dir, budget=budget)
    plan = plan_run(study, parse_workers(workers), gpus)
    if plan.note:
        _note(plan.note)
    results = run_study(study, workers=plan.workers, push=push, worker_devices=plan.worker_devices,
                        started=launched())
    _out(json.dumps({"best_trial": results["final"]["trial"], "test_metrics": results["final"]["test_metrics"],
                     "model": results["final"]["path"]}, indent=2))


@app.command()
def worker(study_file: Path = StudyArg,
           trials: Optional[int] = typer.Option(None, "--trials", min=1, help="Stop after this many own trials."),
           device: Optional[int] = typer.Option(None, "--device", min=0,
                                                help="Train on this GPU (0, 1, ... among the visible ones)."),
           storage: Optional[str] = StorageOpt, output_dir: Optional[str] = OutputOpt) -> None:
    """Join the study and run trials until it has n_trials finished (or --trials of this worker's own)."""
    from hpo.devices import setup_worker
    from hpo.pipeline import run_worker

    note = setup_worker(device)
    study = _load(study_file, storage, output_dir)
    if note:
        _note(note)
    run_worker(study, max_trials=trials)


@app.command()
def finalize(study_file: Path = StudyArg, storage: Optional[str] = StorageOpt,
             output_dir: Optional[str] = OutputOpt,
             wait: bool = typer.Option(False, "--wait", help="First wait until the workers are done (a finalizer "
                                                               "started with them, e.g. a Kubernetes Job).")) -> None:
    """Promote the best trial, evaluate it and write the report, without running trials."""
    from hpo.devices import setup_worker
    from hpo.pipeline import finalize_only

    setup_worker(None)  # retraining (final.strategy retrain, selection.seeds) on one GPU
    study = _load(study_file, storage, output_dir)
    if wait:
        from hpo.study.waiting import wait_for_workers

        wait_for_workers(study, say=_note)
    results = finalize_only(study)
    _out(json.dumps({"best_trial": results["final"]["trial"], "test_metrics": results["final"]["test_metrics"]},
                    indent=2))


@app.command()
def status(study_file: Path = StudyArg, storage: Optional[str] = StorageOpt,
           limit: int = typer.Option(50, min=0, help="Show at most this many trials (the latest); 0 for all.")) -> None:
    """Table of trials: number, state, value, params, duration, worker."""
    from hpo.inspect import print_status

    print_status(_load(study_file, storage, read_only=True), limit=limit)


@app.command()
def best(study_file: Path = StudyArg, storage: Optional[str] = StorageOpt) -> None:
    """The best trial as JSON."""
    from hpo.inspect import best_trials

    _out(json.dumps(best_trials(_load(study_file, storage, read_only=True)), indent=2, default=str))


@app.command()
def dashboard(study_file: Path = StudyArg, storage: Optional[str] = StorageOpt,
              port: int = typer.Option(8080, help="Port on 127.0.0.1."),
              host: str = typer.Option("127.0.0.1", help="Interface to listen on.")) -> None:
    """Start optuna-dashboard on the study's storage and print its URL."""
    from hpo.inspect import start_dashboard

    start_dashboard(_load(study_file, storage), host=host, port=port)


@app.command()
def push(study_file: Path = StudyArg, output_dir: Optional[str] = OutputOpt) -> None:
    """Push (or re-push) the final model and report already on disk to the study's hub repo."""
    from hpo.hub import push_outputs

    result = push_outputs(_load(study_file, output_dir=output_dir))
    _out(f"pushed {result['files']} files to {result['url']}")


@app.command()
def predict(model: str = typer.Argument(..., help="Model folder or Hub repo id."),
            data: Path = typer.Argument(..., help="csv/jsonl/json file, or a text file with one text per line."),
            text_column: list[str] = typer.Option(
                ["text"], help="Column with the text; repeat it to join several columns into one text, as a "
                               "study's text_column list does."),
            text_separator: str = typer.Option(" ", help="Joins the columns of a repeated --text-column."),
            text_pair_column: Optional[str] = typer.Option(None, help="Column with the second text (pairs)."),
            label_column: Optional[str] = typer.Option(None, help="Column with gold labels: adds metrics."),
            label_separator: Optional[str] = typer.Option(
                None, help="Multi-label models: the gold label column is a string of labels joined by this."),
            out: Optional[Path] = typer.Option(None, help="Write predictions here (csv; JSONL when a row holds "
                                                          "lists: words, tags, label sets)."),
            max_length: Optional[int] = typer.Option(
                None, min=1, help="Tokens per text after truncation. Default: the length the model was trained "
                                  "with (hpo saves it), else the tokenizer's maximum.")) -> None:
    """Predict new data with a saved or pushed model, as the task it was trained for; metrics when labels are
    given."""
    from hpo.predict import run_predict

    summary = run_predict(model, data, text_column=text_column, text_separator=text_separator,
                          text_pair_column=text_pair_column, label_column=label_column, out=out, max_length=max_length,
                          label_separator=label_separator)
    _out(json.dumps(summary, indent=2))


def main(argv: list[str] | None = None) -> int:
    interrupts.install()
    debug = os.environ.get("HPO_DEBUG", "") not in ("", "0")
    _current_file.clear()
    try:
        with interrupts.handled_here():
            code = app(args=argv, standalone_mode=False)
            if code == 130:  # typer turns KeyboardInterrupt (and so SIGTERM) into this return value
                raise KeyboardInterrupt
        return code if isinstance(code, int) else 0
    except HpoError as e:
        if debug:
            raise
        sys.stderr.write(f"error: {e.one_line(study_file=next(iter(_current_file), None))}\n")
        return e.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted: finished trials are saved; rerun the same command to continue\n")
        return 130
    except Exception as e:  # the command line's own usage errors included
        try:
            from typer import _click as click  # newer typer bundles click and raises its exception classes
        except ImportError:
            import click

        if isinstance(e, click.exceptions.ClickException):
            ctx = getattr(e, "ctx", None)
            where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            sys.stderr.write(f"error: {' '.join(e.format_message().split())}{where}\n")
            return e.exit_code
        if type(e).__name__ == "Abort":  # click's Abort; typer's bundled click may not define it
            sys.stderr.write("interrupted\n")
            return 130
        if debug:
            raise
        sys.stderr.write(f"error: unexpected {type(e).__name__}: {' '.join(str(e).split())[:300]} "
                         "(set HPO_DEBUG=1 for the traceback)\n")
        return 1
