"""Both sides on any data and over several sampler seeds, or against a time budget: mean ± spread.

`--data`/`--seeds`: for each seed s, the notebook way (TPE seed s) and `hpo run` (the bench study, sampler seed
s) on the same rows; per seed: wall time to the final model (launch to exit), its unseen-test accuracy, and
hpo/notebook time; then mean ± sample standard deviation over the seeds.
`--budget 5m,10m,20m`: for each budget (and seed), `hpo run --budget B` on the bench study without its n_trials
(the budget plans them) and the notebook way with Optuna's `timeout=B` (its search stops starting trials at B,
then it retrains the best and tests): test accuracy, wall time and wall time / budget of each side.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from data import prepare, study_for
from harness import BENCH, child_env, fail, finish, machine, read_study_file, run_child, save, warn_if_busy

QUICK_SIZES = {"train": 400, "validation": 200, "test": 300}  # as sst2-quick.yaml and the notebook's QUICK
FULL_SIZES = {"train": 2000, "validation": None, "test": None}


class SideFailed(Exception):
    def __init__(self, label: str, child: dict[str, Any], why: str) -> None:
        super().__init__(why)
        self.label, self.child, self.why = label, child, why


def seconds(text: str) -> float:
    sys.path.insert(0, str(BENCH.parent))
    from hpo.spec.duration import parse_duration

    return parse_duration(text)


def mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def show(values: list[float], spec: str = ".4f") -> str:
    mean, sd = mean_sd(values)
    return "-" if mean is None else f"{mean:{spec}} ± {sd:{spec}}"


def hpo_study(template: Path, *, seed: int, planned: bool, prepared: Path | None, pair: bool) -> dict[str, Any]:
    """The bench study with sampler seed `seed`, its data paths absolute (it is written elsewhere)."""
    doc = read_study_file(template)
    if prepared is not None:
        doc = study_for(doc, prepared, pair=pair)
    else:
        for split in ("train", "validation", "test"):
            if doc["dataset"].get(split):
                doc["dataset"][split] = str((template.parent / doc["dataset"][split]).resolve())
    doc["name"] = f"{doc['name']}-s{seed}"
    doc["search"]["sampler"] = {**doc["search"].get("sampler", {}), "seed": seed}
    if planned:
        doc["search"].pop("n_trials", None)  # the budget plans the trials
    return doc


def run_notebook(work: Path, env: dict[str, str], *, label: str, seed: int, quick: bool, data: Path | None,
                 timeout: float | None) -> dict[str, Any]:
    out = work / f"{label}.json"
    cmd = [sys.executable, str(BENCH / "notebook_baseline.py"), "--out", str(out), "--seed", str(seed)]
    cmd += (["--quick"] if quick else []) + (["--data", str(data)] if data else [])
    cmd += ["--timeout", str(timeout)] if timeout else []
    child = run_child(label, cmd, work / "logs", env)
    if child["rc"] != 0 or not out.is_file():
        raise SideFailed(label, child, f"exit code {child['rc']}")
    nb = json.loads(out.read_text())
    return {"wall_s": child["wall_s"], "test_accuracy": nb["final"]["test_accuracy"],
            "complete": nb["trials_complete"], "pruned": nb["trials_pruned"], "run": child, "notebook": nb}


def run_hpo(work: Path, env: dict[str, str], doc: dict[str, Any], *, label: str,
            budget: str | None) -> dict[str, Any]:
    folder = work / label
    folder.mkdir(parents=True, exist_ok=True)
    study_file = folder / "study.yaml"
    study_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    hpo_env = dict(env, HPO_STORAGE=f"sqlite:///{folder / 'study.db'}", HPO_OUTPUT_DIR=str(folder / "out"))
    cmd = [sys.executable, "-m", "hpo", "run", str(study_file)] + (["--budget", budget] if budget else [])
    child = run_child(label, cmd, work / "logs", hpo_env)
    results_file = folder / "out" / "results.json"
    if child["rc"] != 0 or not results_file.is_file():
        raise SideFailed(label, child, f"exit code {child['rc']}")
    results = json.loads(results_file.read_text())
    model = results["models"][0]
    counts = model["counts"]
    return {"wall_s": child["wall_s"], "test_accuracy": results["final"]["test_metrics"]["accuracy"],
            "complete": counts["complete"], "pruned": counts["pruned"], "budget": results.get("budget"),
            "final_trial": model["best_trial"], "final_val_accuracy": model["best_value"],
            "final_params": model["best_params"], "trials": results.get("trials"), "run": child}


def run_repeated(args: argparse.Namespace, template: Path) -> int:
    budgets = [b.strip() for b in args.budget.split(",")] if args.budget else [None]
    seeds = [int(s) for s in (args.seeds or ("0" if args.budget else "0,1,2")).split(",")]
    started = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    work = Path(tempfile.mkdtemp(prefix="hpo-bench-"))
    env = child_env(args.online)
    record: dict[str, Any] = {"started": started, "mode": "budget" if args.budget else "seeds", "quick": args.quick,
                              "study_file": str(template), "seeds": seeds, "budgets": budgets,
                              "work_dir": str(work), "machine": machine(), "runs": []}
    warn_if_busy(record)
    prepared = None
    if args.data is not None:
        prepared = work / "data"
        record["data"] = prepare(args.data.resolve(), prepared, text_column=args.text_column,
                                 label_column=args.label_column, text_pair_column=args.text_pair_column,
                                 sizes=QUICK_SIZES if args.quick else FULL_SIZES)
        print(f"[bench] data: {json.dumps(record['data'])}", flush=True)
    for budget in budgets:
        limit = seconds(budget) if budget else None
        for seed in seeds:
            tag = f"s{seed}" + (f"-{budget}" if budget else "")
            doc = hpo_study(template, seed=seed, planned=budget is not None, prepared=prepared,
                            pair=args.text_pair_column is not None)
            try:
                nb = run_notebook(work, env, label=f"notebook-{tag}", seed=seed, quick=args.quick, data=prepared,
                                  timeout=limit)
                hp = run_hpo(work, env, doc, label=f"hpo-{tag}", budget=budget)
            except SideFailed as e:
                return fail(e.label, e.child, record, e.why)
            record["runs"].append({"budget": budget, "budget_s": limit, "seed": seed, "notebook": nb, "hpo": hp})
            save(record)  # after every pair: a stop keeps what was measured
    record["summary"] = summarize(record["runs"], budgets)
    print_summary(record, budgets)
    return finish(record, work, args.keep)


def summarize(runs: list[dict[str, Any]], budgets: list[str | None]) -> dict[str, Any]:
    out = {}
    for budget in budgets:
        rows = [r for r in runs if r["budget"] == budget]
        figures: dict[str, Any] = {}
        for side in ("notebook", "hpo"):
            walls = [r[side]["wall_s"] for r in rows]
            figures[side] = {"test_accuracy": mean_sd([r[side]["test_accuracy"] for r in rows]),
                             "wall_s": mean_sd(walls)}
            if budget:
                figures[side]["wall_vs_budget"] = mean_sd([w / r["budget_s"] for w, r in zip(walls, rows)])
        figures["time_ratio"] = mean_sd([r["hpo"]["wall_s"] / r["notebook"]["wall_s"] for r in rows])
        figures["n"] = len(rows)
        out[budget or "no budget"] = figures
    return out


def print_summary(record: dict[str, Any], budgets: list[str | None]) -> None:
    data = record.get("data")
    if data:
        print(f"\ndata: {data['source']} ({data['rows']['train']} train / {data['rows']['validation']} validation / "
              f"{data['rows']['test']} test rows, {len(data['labels'])} labels"
              + (f"; {data['multi_label_rows_dropped']} multi-label rows left out" if data['multi_label_rows_dropped']
                 else "") + ")")
    for budget in budgets:
        rows = [r for r in record["runs"] if r["budget"] == budget]
        print(f"\n{'budget ' + budget if budget else 'no budget'}, seeds {', '.join(str(r['seed']) for r in rows)}:")
        head = f"{'seed':>6} {'notebook test':>14} {'wall s':>8} {'hpo test':>10} {'wall s':>8} {'hpo/notebook':>13}"
        print(head + (f" {'nb wall/budget':>15} {'hpo wall/budget':>16}" if budget else ""))
        for r in rows:
            nb, hp = r["notebook"], r["hpo"]
            line = (f"{r['seed']:>6} {nb['test_accuracy']:>14.4f} {nb['wall_s']:>8.0f} {hp['test_accuracy']:>10.4f} "
                    f"{hp['wall_s']:>8.0f} {hp['wall_s'] / nb['wall_s']:>13.2f}")
            if budget:
                line += f" {nb['wall_s'] / r['budget_s']:>15.2f} {hp['wall_s'] / r['budget_s']:>16.2f}"
            print(line)
        print(f"  mean ± sd: notebook test {show([r['notebook']['test_accuracy'] for r in rows])}, wall "
              f"{show([r['notebook']['wall_s'] for r in rows], '.0f')} s; hpo test "
              f"{show([r['hpo']['test_accuracy'] for r in rows])}, wall {show([r['hpo']['wall_s'] for r in rows], '.0f')}"
              f" s; hpo/notebook time {show([r['hpo']['wall_s'] / r['notebook']['wall_s'] for r in rows], '.2f')}")
        if budget:
            print(f"  wall / budget: notebook {show([r['notebook']['wall_s'] / r['budget_s'] for r in rows], '.2f')}, "
                  f"hpo {show([r['hpo']['wall_s'] / r['budget_s'] for r in rows], '.2f')} (target 0.90-1.10)")
