"""The benchmark harness: the notebook way vs `hpo run` on the same study, in one sitting.

    python bench/run.py            # full: 8 trials x 2 epochs x 2,000 SST-2 sentences (about 23 min here)
    python bench/run.py --quick    # smoke run: 4 trials x 1 epoch x 400 sentences (about 2½ min here)

Runs, each as a child process of this one, one after the other (never two at once: they would share the cores):
  (a) bench/notebook_baseline.py         plain transformers, Trainer.hyperparameter_search(backend="optuna")
  (b) python -m hpo run <study file>     with a fresh storage and output folder (HPO_STORAGE, HPO_OUTPUT_DIR)
  (c) bench/bare_loop.py                 a bare PyTorch loop on the same batches: the throughput reference
then prints one table and writes everything to bench/results/<timestamp>.json.

Time stamps are wall clock (Unix seconds); Optuna's datetime_start/datetime_complete are local wall clock
too, so trial end times line up with each process's launch time measured here.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
STUDIES = {False: BENCH / "studies" / "sst2-bench.yaml", True: BENCH / "studies" / "sst2-quick.yaml"}
TARGET_MARGIN = 0.005  # "within 0.5 points" of the notebook's best validation accuracy
PROFILE_KEYS = ("model_load", "data_prep", "training", "evaluation", "reporting", "checkpoint", "wall")
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


def hpo_trials(storage: str, study_name: str) -> list[dict[str, Any]]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=study_name, storage=storage)
    out = []
    for t in study.get_trials(deepcopy=False):
        out.append({
            "number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
            "start": t.datetime_start.timestamp() if t.datetime_start else None,
            "end": t.datetime_complete.timestamp() if t.datetime_complete else None,
            "intermediate": {str(k): v for k, v in sorted(t.intermediate_values.items())},
            "profile": t.user_attrs.get("profile"), "progress": t.user_attrs.get("progress"),
            "metrics": t.user_attrs.get("metrics"),
            "eval_accuracy": (t.user_attrs.get("metrics") or {}).get("eval_accuracy"),
        })
    return out


def epochs_trained(t: dict[str, Any], epochs: float) -> float:
    """Epochs a trial trained: its `progress` (percent of an epoch at its last report), else the schedule."""
    if t.get("progress") is not None:
        return float(t["progress"]) / 100.0
    return epochs if t["state"] == "COMPLETE" else 0.0


def first_reaching(trials: list[dict[str, Any]], target: float) -> dict[str, Any] | None:
    """The first COMPLETE trial (by end time) with value >= target: when the search had such a model."""
    hits = [t for t in trials if t["state"] == "COMPLETE" and t["value"] is not None and t["end"] is not None
            and t["value"] >= target - 1e-12]
    return min(hits, key=lambda t: t["end"]) if hits else None


def best_of(trials: list[dict[str, Any]]) -> tuple[float | None, dict[str, Any] | None]:
    done = [t for t in trials if t["state"] == "COMPLETE" and t["value"] is not None]
    if not done:
        return None, None
    best = max(t["value"] for t in done)
    return best, first_reaching(done, best)


# -- figures ------------------------------------------------------------------------------------------

def fmt(x: Any, spec: str = ".1f", none: str = "-") -> str:
    if x is None:
        return none
    return format(x, spec) if isinstance(x, (int, float)) else str(x)


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b in (None, 0) else a / b


def profile_table(trials: list[dict[str, Any]], train_rows: int, epochs: float) -> dict[str, Any]:
    rows, sums = [], {k: 0.0 for k in PROFILE_KEYS}
    seen_keys: set[str] = set()
    for t in trials:
        p = t.get("profile") or {}
        if not p:
            continue
        seen_keys |= set(p)
        ep = epochs_trained(t, epochs)
        row = {"number": t["number"], "state": t["state"],
               "batch_size": t["params"].get("per_device_train_batch_size"), "epochs": round(ep, 2),
               "examples": round(train_rows * ep), **{k: p.get(k) for k in PROFILE_KEYS}}
        rows.append(row)
        for k in PROFILE_KEYS:
            sums[k] += float(p.get(k) or 0.0)
    wall, train, ev = sums["wall"], sums["training"], sums["evaluation"]
    other = sorted(seen_keys - set(PROFILE_KEYS))
    return {"rows": rows, "sum": {k: round(v, 2) for k, v in sums.items()}, "other_keys": other,
            "has_data_prep": "data_prep" in seen_keys,
            "overhead_pct": round(100.0 * (wall - train - ev) / wall, 2) if wall else None,
            "examples": sum(r["examples"] for r in rows), "training_s": round(train, 2)}


def throughput(prof: dict[str, Any], bare: dict[str, Any] | None, precision: str, grouping: str) -> dict[str, Any]:
    """hpo examples/s in training vs the bare loop at the same batch sizes (time-weighted per trial)."""
    rows = [r for r in prof["rows"] if r["training"]]
    hpo_eps = ratio(sum(r["examples"] for r in rows), sum(r["training"] for r in rows))
    out: dict[str, Any] = {"hpo_examples_per_s": hpo_eps, "precision": precision, "grouping": grouping}
    if not bare or not rows:
        return out
    ref = {r["batch_size"]: r["examples_per_s"] for r in bare.get("results", [])
           if r["precision"] == precision and r["grouping"] == grouping}
    per_bs: dict[int, dict[str, float]] = {}
    for r in rows:
        d = per_bs.setdefault(r["batch_size"], {"examples": 0, "training_s": 0.0})
        d["examples"] += r["examples"]
        d["training_s"] += r["training"]
    for bs, d in per_bs.items():
        d["hpo_examples_per_s"] = ratio(d["examples"], d["training_s"])
        d["bare_examples_per_s"] = ref.get(bs)
        d["hpo_vs_bare"] = ratio(d["hpo_examples_per_s"], ref.get(bs))
    out["per_batch_size"] = per_bs
    if all(bs in ref for bs in per_bs):
        # the time the bare loop would take for the same examples at the same batch sizes
        bare_s = sum(d["examples"] / ref[bs] for bs, d in per_bs.items())
        out["bare_s_for_same_examples"] = round(bare_s, 2)
        out["hpo_vs_bare"] = ratio(bare_s, sum(d["training_s"] for d in per_bs.values()))
    out["bare_reference"] = ref
    return out


def noise_figures(nb: dict[str, Any], trials: list[dict[str, Any]], nb_start: float,
                  hpo_start: float | None) -> dict[str, Any]:
    """The issue's 0.5 points are below the noise of one validation score: on n rows an accuracy p has a 95 %
    binomial half-width of 1.96 sqrt(p (1 - p) / n) (2.3 points for 0.86 on 872). Time to within that, too."""
    p, n = nb["best_val_accuracy"], nb["config"].get("validation_samples") or 0
    if not n or p is None:
        return {}
    target = p - 1.96 * math.sqrt(p * (1 - p) / n)
    nb_hit, hp_hit = first_reaching(nb["trials"], target), first_reaching(trials, target)
    return {"noise_target": target,
            "noise_target_at_search_s_notebook": nb_hit["end"] - nb_start if nb_hit else None,
            "noise_target_at_search_s": hp_hit["end"] - hpo_start if hp_hit and hpo_start else None}


def print_table(nb: dict[str, Any], hp: dict[str, Any]) -> None:
    w = 44

    def line(name: str, a: str, b: str, r: str = "") -> None:
        print(f"{name:<{w}} {a:>12} {b:>12} {r:>12}")

    print()
    line("", "notebook", "hpo", "hpo/notebook")
    line("search wall time (s)", fmt(nb["search_wall_s"]), fmt(hp["search_wall_s"]),
         fmt(ratio(hp["search_wall_s"], nb["search_wall_s"]), ".2f"))
    line("total wall time, search + final model (s)", fmt(nb["total_wall_s"]), fmt(hp["total_wall_s"]),
         fmt(ratio(hp["total_wall_s"], nb["total_wall_s"]), ".2f"))
    line("best validation accuracy", fmt(nb["best_val_accuracy"], ".4f"), fmt(hp["best_val_accuracy"], ".4f"))
    line("  first reached, s from search start", fmt(nb["best_at_search_s"]), fmt(hp["best_at_search_s"]))
    line("  first reached, s from process launch", fmt(nb["best_at_launch_s"]), fmt(hp["best_at_launch_s"]))
    line("final model test accuracy", fmt(nb["test_accuracy"], ".4f"), fmt(hp["test_accuracy"], ".4f"))
    line("trials complete / pruned", f"{nb['complete']} / {nb['pruned']}", f"{hp['complete']} / {hp['pruned']}")
    t = hp["target"]
    print(f"\ntime to reach the notebook's best validation accuracy within 0.5 points (>= {t:.4f}):")
    line("  s from search start", fmt(nb["target_at_search_s"]), fmt(hp["target_at_search_s"], none="not reached"),
         fmt(ratio(hp["target_at_search_s"], nb["target_at_search_s"]), ".2f"))
    line("  s from process launch", fmt(nb["target_at_launch_s"]), fmt(hp["target_at_launch_s"], none="not reached"),
         fmt(ratio(hp["target_at_launch_s"], nb["target_at_launch_s"]), ".2f"))
    if hp.get("noise_target") is not None:
        nb_t, hp_t = hp["noise_target_at_search_s_notebook"], hp["noise_target_at_search_s"]
        print(f"time to within the 95 % noise of one validation score of the notebook's best "
              f"(>= {hp['noise_target']:.4f}):")
        line("  s from search start", fmt(nb_t), fmt(hp_t, none="not reached"), fmt(ratio(hp_t, nb_t), ".2f"))


def print_profile(prof: dict[str, Any]) -> None:
    keys = [k for k in PROFILE_KEYS if k != "data_prep" or prof["has_data_prep"]]
    head = ["trial", "state", "bs", "epochs"] + keys
    print("\nhpo per-trial profile (seconds):")
    print(" ".join(f"{h:>10}" for h in head))
    for r in prof["rows"]:
        print(" ".join(f"{fmt(r.get(h), '.2f') if isinstance(r.get(h), float) else fmt(r.get(h), 'd' if isinstance(r.get(h), int) else ''):>10}"
                       for h in ["number", "state", "batch_size", "epochs"] + keys))
    print(" ".join(f"{x:>10}" for x in ["sum", "", "", ""] + [fmt(prof["sum"][k], ".1f") for k in keys]))
    if prof["other_keys"]:
        print(f"(other profile keys, not in the table: {', '.join(prof['other_keys'])})")
    print(f"overhead = (wall - training - evaluation) / wall = {fmt(prof['overhead_pct'], '.1f')}%")
    once = prof.get("once_per_process") or {}
    print(f"data preparation, once per process (not per trial): reading and sub-sampling "
          f"{fmt(once.get('last_run_data_s'), '.1f')} s; tokenization (or its cache), base weights and Trainer "
          f"{fmt(once.get('last_run_search_setup_s'), '.1f')} s")


def print_throughput(tp: dict[str, Any], bare: dict[str, Any] | None) -> None:
    print(f"\ntraining throughput (hpo: examples trained / profile.training s; bare loop: {tp['precision']}, "
          f"{tp['grouping']}-ordered batches):")
    for bs, d in sorted(tp.get("per_batch_size", {}).items()):
        print(f"  batch {bs:>3}: hpo {fmt(d['hpo_examples_per_s'])} ex/s, bare loop "
              f"{fmt(d['bare_examples_per_s'])} ex/s -> hpo/bare {fmt(d['hpo_vs_bare'], '.2f')}")
    print(f"  all trials: hpo {fmt(tp['hpo_examples_per_s'])} ex/s; hpo/bare at the same batch sizes "
          f"{fmt(tp.get('hpo_vs_bare'), '.2f')} (target >= 0.95)")
    if bare:
        for r in bare["results"]:
            print(f"  bare loop batch {r['batch_size']} {r['grouping']:>6} {r['precision']}: "
                  f"{r['examples_per_s']:.1f} ex/s")


# -- main ---------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="4 trials x 1 epoch x 400 sentences, about 2.5 min")
    ap.add_argument("--study", type=Path, default=None, help="hpo study file (default: bench/studies/sst2-*.yaml)")
    ap.add_argument("--skip-bare", action="store_true", help="do not run the bare-loop throughput reference")
    ap.add_argument("--online", action="store_true",
                    help="leave HF_HUB_OFFLINE alone (default: set it to 1 for the children; everything is local)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (storages, logs, models)")
    args = ap.parse_args(argv)

    started = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    study_file = (args.study or STUDIES[args.quick]).resolve()
    spec = read_study_file(study_file)
    work = Path(tempfile.mkdtemp(prefix="hpo-bench-"))
    logs = work / "logs"
    env = dict(os.environ)
    if not args.online:
        # Both sides load everything from disk; without this, hpo's Hub look-up retries for ~25 s offline.
        env["HF_HUB_OFFLINE"] = "1"
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    record: dict[str, Any] = {
        "started": started, "quick": args.quick, "study_file": str(study_file), "work_dir": str(work),
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                    "load_avg_at_start": load_avg()},
    }
    la = load_avg()
    if la and record["machine"]["cpus"] and la[0] > record["machine"]["cpus"] + 0.5:
        print(f"[bench] warning: load average {la[0]} on {record['machine']['cpus']} cores: other work is "
              f"running, the times will be slower and noisier than on an idle machine", flush=True)

    # (a) the notebook way
    nb_json = work / "notebook.json"
    cmd = [sys.executable, str(BENCH / "notebook_baseline.py"), "--out", str(nb_json)] + (["--quick"] if args.quick else [])
    child = run_child("notebook", cmd, logs, env)
    record["notebook_run"] = child
    if child["rc"] != 0 or not nb_json.is_file():
        return fail("notebook baseline", child, record, f"exit code {child['rc']}")
    nb = json.loads(nb_json.read_text())
    record["notebook"] = nb

    # (b) hpo run, fresh storage and output folder
    storage = f"sqlite:///{work / 'hpo' / 'study.db'}"
    out_dir = work / "hpo" / "out"
    hpo_env = dict(env, HPO_STORAGE=storage, HPO_OUTPUT_DIR=str(out_dir))
    try:
        shown_study = str(study_file.relative_to(REPO))
    except ValueError:
        shown_study = str(study_file)
    child = run_child("hpo", [sys.executable, "-m", "hpo", "run", shown_study], logs, hpo_env)
    record["hpo_run"] = child
    results_file = out_dir / "results.json"
    if child["rc"] != 0:
        return fail("hpo run", child, record, f"exit code {child['rc']}")
    if not results_file.is_file():
        return fail("hpo run", child, record, f"no {results_file}")
    results = json.loads(results_file.read_text())
    record["hpo_results"] = results
    study_name = (results.get("final") or {}).get("study_name") or spec["name"]
    try:
        trials = hpo_trials(storage, study_name)
    except Exception as e:  # noqa: BLE001 - report whatever the storage says and stop
        return fail("hpo run", child, record, f"cannot read study {study_name!r} from {storage}: {e}")
    record["hpo_trials"] = trials

    # (c) the bare loop, at the batch sizes hpo's trials used, with the batch order hpo uses
    grouping = "length" if (spec.get("training") or {}).get("train_sampling_strategy",
                                                            "group_by_length") == "group_by_length" else "random"
    precision = (results.get("search") or {}).get("precision") or (
        "bf16" if (spec.get("training") or {}).get("bf16") else "fp32")
    used_bs = sorted({t["params"].get("per_device_train_batch_size") for t in trials
                      if t["params"].get("per_device_train_batch_size")}) or [32]
    bare = None
    if not args.skip_bare:
        bare_json = work / "bare.json"
        # a whole epoch in full mode: the length mix of a sample of shuffled batches varies by ±5 %
        examples = 256 if args.quick else int(spec["dataset"].get("train_samples") or 2000)
        cmd = [sys.executable, str(BENCH / "bare_loop.py"), "--batch-sizes", *map(str, used_bs), "--grouping",
               grouping, "--precision", precision if args.quick else "both", "--examples", str(examples),
               "--warmup", "2", "--out", str(bare_json)]
        child = run_child("bare_loop", cmd, logs, env)
        record["bare_run"] = child
        if child["rc"] == 0 and bare_json.is_file():
            bare = json.loads(bare_json.read_text())
        else:
            print(f"[bench] bare loop failed (exit {child['rc']}); stderr tail:\n{tail(child['stderr_log'])}",
                  file=sys.stderr)
    record["bare"] = bare

    # -- figures --------------------------------------------------------------------------------------
    t_nb = nb["times"]
    target = nb["best_val_accuracy"] - TARGET_MARGIN
    nb_hit = first_reaching(nb["trials"], target)
    nb_best, nb_best_t = best_of(nb["trials"])
    nb_fig = {
        "search_wall_s": nb["search_wall_s"], "total_wall_s": record["notebook_run"]["wall_s"],
        "best_val_accuracy": nb_best, "test_accuracy": nb["final"]["test_accuracy"],
        "best_at_search_s": nb_best_t["end"] - t_nb["search_start"] if nb_best_t else None,
        "best_at_launch_s": nb_best_t["end"] - record["notebook_run"]["launch"] if nb_best_t else None,
        "target_at_search_s": nb_hit["end"] - t_nb["search_start"] if nb_hit else None,
        "target_at_launch_s": nb_hit["end"] - record["notebook_run"]["launch"] if nb_hit else None,
        "complete": nb["trials_complete"], "pruned": nb["trials_pruned"],
    }
    starts = [t["start"] for t in trials if t["start"] is not None]
    ends = [t["end"] for t in trials if t["end"] is not None]
    hpo_search_start = min(starts) if starts else None  # hpo's search begins with its first trial
    hp_best, hp_best_t = best_of(trials)
    hp_hit = first_reaching(trials, target)
    launch = record["hpo_run"]["launch"]
    hp_fig = {
        "search_wall_s": (max(ends) - hpo_search_start) if ends and hpo_search_start else None,
        "total_wall_s": record["hpo_run"]["wall_s"], "best_val_accuracy": hp_best,
        "test_accuracy": ((results.get("final") or {}).get("test_metrics") or {}).get("accuracy"),
        "best_at_search_s": hp_best_t["end"] - hpo_search_start if hp_best_t else None,
        "best_at_launch_s": hp_best_t["end"] - launch if hp_best_t else None,
        "target": target,
        "target_at_search_s": hp_hit["end"] - hpo_search_start if hp_hit else None,
        "target_at_launch_s": hp_hit["end"] - launch if hp_hit else None,
        "complete": sum(t["state"] == "COMPLETE" for t in trials),
        "pruned": sum(t["state"] == "PRUNED" for t in trials),
        "search_start_offset_s": hpo_search_start - launch if hpo_search_start else None,
        **noise_figures(nb, trials, t_nb["search_start"], hpo_search_start),
    }
    epochs = float((spec.get("training") or {}).get("num_train_epochs", 3.0))
    train_rows = int((results.get("data") or {}).get("train") or spec["dataset"].get("train_samples") or 0)
    prof = profile_table(trials, train_rows, epochs)
    prof["once_per_process"] = {k: (results.get("timings") or {}).get(k)
                                for k in ("last_run_data_s", "last_run_search_setup_s")}
    tp = throughput(prof, bare, precision, grouping)
    record["figures"] = {
        "notebook": nb_fig, "hpo": hp_fig, "profile": prof, "throughput": tp,
        "ratio_time_to_target_from_search_start": ratio(hp_fig["target_at_search_s"], nb_fig["target_at_search_s"]),
        "ratio_time_to_target_from_launch": ratio(hp_fig["target_at_launch_s"], nb_fig["target_at_launch_s"]),
        "ratio_total_wall": ratio(hp_fig["total_wall_s"], nb_fig["total_wall_s"]),
    }
    print_table(nb_fig, hp_fig)
    print_profile(prof)
    print_throughput(tp, bare)
    record["machine"]["load_avg_at_end"] = load_avg()
    save(record)
    if not args.keep:
        import shutil
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"[bench] kept {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
