"""The GPU check (run through bench/gpu_check.sh, which finds the GPUs first).

On the first GPU: `hpo run` on the benchmark study (fresh SQLite storage and output folder), then the bare
PyTorch loop on the same batch sizes, batch order and precision; prints the throughput ratio, the precision,
each trial's peak GPU memory and the memory already held when it started, and whether that stays flat (it
would grow by a model and its optimizer per trial if trials leaked). With 2+ GPUs: `hpo run --workers auto`
on a fresh PostgreSQL database, the trials per device and the search time against one GPU.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(BENCH), str(REPO)]

import figures  # noqa: E402  (bench/figures.py: the profile and the throughput figures)
import harness  # noqa: E402  (bench/harness.py: the children, their logs, the results file, hpo's trials)
from run import STUDIES  # noqa: E402

BUDGET_S = 8 * 60
FLAT_SHARE = 0.5  # memory held at a trial's start may vary by less than half the model's weights


def trials_of(storage: str, study_name: str) -> list[dict[str, Any]]:
    """harness.hpo_trials plus what hpo records per trial about its device and memory."""
    import optuna

    rows = harness.hpo_trials(storage, study_name)
    attrs = {t.number: t.user_attrs for t in optuna.load_study(study_name=study_name, storage=storage).trials}
    for r in rows:
        a = attrs[r["number"]]
        r.update({k: a.get(k) for k in ("device", "gpu_name", "gpu_memory_total_mb", "precision", "peak_memory_mb",
                                        "memory_at_start_mb", "worker", "fail_reason")})
    return rows


def memory_flat(trials: list[dict[str, Any]], model_mb: float) -> dict[str, Any]:
    """Memory held at each trial's start (after the last one was freed): flat if its spread over the trials is
    under half the model's weights; a leak adds a model and its optimizer states, 3x the weights, per trial."""
    starts = [t["memory_at_start_mb"] for t in sorted(trials, key=lambda t: t["number"])
              if t.get("memory_at_start_mb") is not None]
    if len(starts) < 2:
        return {"flat": None, "starts_mb": starts}
    spread = max(starts) - min(starts)
    return {"flat": spread < FLAT_SHARE * model_mb, "spread_mb": round(spread, 1), "starts_mb": starts,
            "bound_mb": round(FLAT_SHARE * model_mb, 1), "growth_mb": round(starts[-1] - starts[0], 1)}


def per_device(trials: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in trials:
        if t["state"] in ("COMPLETE", "PRUNED"):
            out[t.get("device") or "?"] = out.get(t.get("device") or "?", 0) + 1
    return dict(sorted(out.items()))


def search_wall(trials: list[dict[str, Any]]) -> float | None:
    starts = [t["start"] for t in trials if t["start"]]
    ends = [t["end"] for t in trials if t["end"]]
    return max(ends) - min(starts) if starts and ends else None


def hpo_side(label: str, study: Path, work: Path, env: dict[str, str], storage: str,
             extra: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    out = work / label
    child = harness.run_child(label, [sys.executable, "-m", "hpo", "run", str(study), "--no-push", *extra],
                              work / "logs", dict(env, HPO_STORAGE=storage, HPO_OUTPUT_DIR=str(out)))
    if child["rc"] != 0 or not (out / "results.json").is_file():
        print(f"[gpu_check] {label} failed (exit {child['rc']}):\n{harness.tail(child['stderr_log'])}",
              file=sys.stderr)
        return None
    results = json.loads((out / "results.json").read_text())
    return results, trials_of(storage, results["final"]["study_name"])


def postgres(args: argparse.Namespace) -> tuple[str | None, Any]:
    if args.storage:
        return args.storage, None
    sys.path.insert(0, str(REPO / "tests"))
    from pg_server import find_bindir, start_server

    bindir = find_bindir()
    if bindir is None or not (bindir / "pg_ctl").exists():
        return None, None
    server = start_server(bindir)
    return server.create_db("gpu_check"), server


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gpus", type=int, required=True, help="GPUs torch sees (gpu_check.sh counts them)")
    ap.add_argument("--quick", action="store_true", help="the quick study (4 trials x 1 epoch x 400 sentences)")
    ap.add_argument("--storage", default=os.environ.get("GPU_CHECK_STORAGE"),
                    help="PostgreSQL URL with an empty database for the 2+ GPU run (default: a throwaway server)")
    args = ap.parse_args(argv)
    began = time.monotonic()
    study = STUDIES[args.quick]
    spec = harness.read_study_file(study)
    work = Path(tempfile.mkdtemp(prefix="hpo-gpu-check-"))
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    first = (env.get("CUDA_VISIBLE_DEVICES") or "0").split(",")[0].strip()
    record: dict[str, Any] = {"started": dt.datetime.now().strftime("gpu-%Y%m%d-%H%M%S"), "gpus": args.gpus,
                              "study": str(study), "work_dir": str(work)}

    # 1. one GPU: hpo, then the bare loop on the same batches
    one = hpo_side("hpo_one_gpu", study, work, dict(env, CUDA_VISIBLE_DEVICES=first),
                   f"sqlite:///{work / 'one.db'}", [])
    if one is None:
        return 1
    results, trials = one
    precision = results["search"]["precision"]
    used = sorted({t["params"]["per_device_train_batch_size"] for t in trials
                   if t["params"].get("per_device_train_batch_size")}) or [32]
    bare_json = work / "bare.json"
    rows = int(results["data"]["train"])
    child = harness.run_child("bare_loop", [sys.executable, str(BENCH / "bare_loop.py"), "--device", "cuda",
                                            "--batch-sizes", *map(str, used), "--grouping", "length", "--precision",
                                            precision, "--examples", str(rows), "--warmup", "3", "--out",
                                            str(bare_json)], work / "logs", dict(env, CUDA_VISIBLE_DEVICES=first))
    bare = json.loads(bare_json.read_text()) if child["rc"] == 0 and bare_json.is_file() else None
    epochs = float((spec.get("training") or {}).get("num_train_epochs", 3.0))
    prof = figures.profile_table(trials, rows, epochs)
    tp = figures.throughput(prof, bare, precision, "length")
    from hpo.report.facts import parameter_count

    params = parameter_count(results["final"]["path"]) or 0
    flat = memory_flat(trials, params * 4 / 2**20)
    gpu = next((t["gpu_name"] for t in trials if t.get("gpu_name")), "?")
    print(f"\nGPU {first}: {gpu}; hpo trained in {precision} (results.json: search.precision)")
    figures.print_throughput(tp, bare)
    print("\ntrial  state      batch  peak GPU memory MB  held at start MB")
    for t in trials:
        print(f"{t['number']:>5}  {t['state']:<9}  {t['params'].get('per_device_train_batch_size', ''):>5}  "
              f"{harness.fmt(t.get('peak_memory_mb')):>18}  {harness.fmt(t.get('memory_at_start_mb')):>16}")
    verdict = {True: "flat", False: "NOT flat", None: "unknown"}[flat["flat"]]
    print(f"memory held at trial start across trials: {verdict} (spread {harness.fmt(flat.get('spread_mb'))} MB, "
          f"bound {harness.fmt(flat.get('bound_mb'))} MB = half the model's {params:,} weights)")
    record.update(one_gpu={"results_search": results["search"], "trials": trials, "throughput": tp, "bare": bare,
                           "memory": flat, "search_wall_s": search_wall(trials)})

    # 2. every GPU: --workers auto on PostgreSQL
    if args.gpus >= 2:
        url, server = postgres(args)
        if url is None:
            print(f"\n{args.gpus} GPUs, but no PostgreSQL here for --workers auto: install postgresql (its binaries) "
                  "or set GPU_CHECK_STORAGE=postgresql+psycopg://user:pw@host/emptydb")
        else:
            try:
                many = hpo_side("hpo_workers_auto", study, work, env, url, ["--workers", "auto"])
            finally:
                if server is not None:
                    server.stop()
            if many is None:
                return 1
            trials_all = many[1]
            wall, one_wall = search_wall(trials_all), search_wall(trials)
            print(f"\n--workers auto on {args.gpus} GPUs: trials per device {per_device(trials_all)}; search "
                  f"{harness.fmt(wall)} s against {harness.fmt(one_wall)} s on one GPU "
                  f"({harness.fmt(harness.ratio(one_wall, wall), '.2f')}x)")
            record["workers_auto"] = {"trials": trials_all, "per_device": per_device(trials_all),
                                      "search_wall_s": wall}
    took = time.monotonic() - began
    print(f"\ngpu_check took {took:.0f} s" + ("" if took <= BUDGET_S or args.quick else
                                              f" (over the {BUDGET_S // 60}-minute budget)"))
    record["took_s"] = round(took, 1)
    harness.save(record)
    return 0 if flat["flat"] is not False else 1


if __name__ == "__main__":
    sys.exit(main())
