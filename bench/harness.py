"""What every benchmark mode shares: running one side as a child process, its logs, the results file, and
reading the hpo side's trials from its Optuna storage."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
TAIL_LINES = 40


# -- running the sides ------------------------------------------------------------------------------

def load_avg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def run_child(label: str, cmd: list[str], logs: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one side to completion, output to log files; its launch/end wall clock and exit code."""
    logs.mkdir(parents=True, exist_ok=True)
    out_log, err_log = logs / f"{label}.stdout.log", logs / f"{label}.stderr.log"
    print(f"[bench] {label}: {' '.join(cmd)}", flush=True)
    before = load_avg()
    launch = time.time()
    with open(out_log, "wb") as out, open(err_log, "wb") as err:
        rc = subprocess.run(cmd, cwd=REPO, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL).returncode
    end = time.time()
    print(f"[bench] {label}: exit {rc} after {end - launch:.0f}s (load average before {before}, "
          f"after {load_avg()})", flush=True)
    return {"cmd": cmd, "rc": rc, "launch": launch, "end": end, "wall_s": round(end - launch, 2),
            "load_before": before, "load_after": load_avg(), "stdout_log": str(out_log), "stderr_log": str(err_log)}


def tail(path: str, n: int = TAIL_LINES) -> str:
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:])


def fail(label: str, child: dict[str, Any], record: dict[str, Any], why: str) -> int:
    print(f"\n[bench] {label} failed: {why}", file=sys.stderr)
    print(f"--- last {TAIL_LINES} lines of its stderr ({child['stderr_log']}) ---", file=sys.stderr)
    print(tail(child["stderr_log"]), file=sys.stderr)
    print(f"--- end --- (all logs in {Path(child['stderr_log']).parent})", file=sys.stderr)
    record["error"] = {"side": label, "why": why, "stderr_tail": tail(child["stderr_log"])}
    save(record)
    return 1


def save(record: dict[str, Any]) -> Path:
    folder = BENCH / "results"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{record['started']}.json"
    path.write_text(json.dumps(record, indent=2, default=str))
    print(f"[bench] results written to {path.relative_to(REPO)}", flush=True)
    return path



# -- reading the hpo side -----------------------------------------------------------------------------

def read_study_file(path: Path) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(path.read_text())


def trial_record(t: Any) -> dict[str, Any]:
    """What both sides record of an Optuna trial: state, value, parameters, wall-clock start and end (Unix
    seconds, to line up with the processes' clocks) and the values reported on the way."""
    return {"number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
            "start": t.datetime_start.timestamp() if t.datetime_start else None,
            "end": t.datetime_complete.timestamp() if t.datetime_complete else None,
            "intermediate": {str(k): v for k, v in sorted(t.intermediate_values.items())}}


def hpo_trials(storage: str, study_name: str) -> list[dict[str, Any]]:
    """The hpo side's trials: the common record and what hpo keeps in user attrs (timings, progress, metrics)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=study_name, storage=storage)
    return [{**trial_record(t), "profile": t.user_attrs.get("profile"), "progress": t.user_attrs.get("progress"),
             "metrics": t.user_attrs.get("metrics"),
             "eval_accuracy": (t.user_attrs.get("metrics") or {}).get("eval_accuracy")}
            for t in study.get_trials(deepcopy=False)]


# -- figures ------------------------------------------------------------------------------------------

def fmt(x: Any, spec: str = ".1f", none: str = "-") -> str:
    if x is None:
        return none
    return format(x, spec) if isinstance(x, (int, float)) else str(x)


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b in (None, 0) else a / b



def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "load_avg_at_start": load_avg()}


def warn_if_busy(record: dict[str, Any]) -> None:
    la = load_avg()
    if la and record["machine"]["cpus"] and la[0] > record["machine"]["cpus"] + 0.5:
        print(f"[bench] warning: load average {la[0]} on {record['machine']['cpus']} cores: other work is "
              f"running, the times will be slower and noisier than on an idle machine", flush=True)


def child_env(online: bool) -> dict[str, str]:
    env = dict(os.environ)
    if not online:
        # Both sides load everything from disk; without this, hpo's Hub look-up retries for ~25 s offline.
        env["HF_HUB_OFFLINE"] = "1"
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.pop("HPO_BUDGET", None)  # a budget is given on the command line, where a mode wants one
    return env


def finish(record: dict[str, Any], work: Path, keep: bool) -> int:
    """Save the record, then remove the temporary folder (or say where it is kept)."""
    record["machine"]["load_avg_at_end"] = load_avg()
    save(record)
    if keep:
        print(f"[bench] kept {work}")
    else:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0
