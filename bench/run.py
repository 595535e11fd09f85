"""The benchmark harness: the notebook way vs `hpo run`, one after the other, in one sitting.

    python bench/run.py            # full: 8 trials x 2 epochs x 2,000 SST-2 sentences (about 23 min here)
    python bench/run.py --quick    # smoke run: 4 trials x 1 epoch x 400 sentences (about 2½ min here)
    python bench/run.py --data ../shared/data/goemotions --text-column text --label-column labels
                                   # both sides on other data, 3 sampler seeds (--seeds 0,1,2): mean ± spread
    python bench/run.py --budget 5m,10m,20m
                                   # hpo run --budget vs the notebook with Optuna's timeout, per budget

Runs, each as a child process of this one, one after the other (never two at once: they would share the cores):
  (a) bench/notebook_baseline.py         plain transformers, Trainer.hyperparameter_search(backend="optuna")
  (b) python -m hpo run <study file>     with a fresh storage and output folder (HPO_STORAGE, HPO_OUTPUT_DIR)
  (c) bench/bare_loop.py                 a bare PyTorch loop on the same batches: the throughput reference
                                         (the classic mode only)
then prints its tables and writes everything to bench/results/<timestamp>.json.

Time stamps are wall clock (Unix seconds); Optuna's datetime_start/datetime_complete are local wall clock
too, so trial end times line up with each process's launch time measured here.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from figures import (TARGET_MARGIN, best_of, first_reaching, noise_figures, print_profile, print_table,
                     print_throughput, profile_table, ratio, throughput)
from harness import BENCH, REPO, child_env, fail, finish, hpo_trials, machine, read_study_file, run_child, tail, \
    warn_if_busy

STUDIES = {False: BENCH / "studies" / "sst2-bench.yaml", True: BENCH / "studies" / "sst2-quick.yaml"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="4 trials x 1 epoch x 400 sentences, about 2.5 min")
    ap.add_argument("--study", type=Path, default=None, help="hpo study file (default: bench/studies/sst2-*.yaml)")
    ap.add_argument("--skip-bare", action="store_true", help="do not run the bare-loop throughput reference")
    ap.add_argument("--online", action="store_true",
                    help="leave HF_HUB_OFFLINE alone (default: set it to 1 for the children; everything is local)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (storages, logs, models)")
    new = ap.add_argument_group("other data, several seeds, budgets (bench/repeat.py)")
    new.add_argument("--data", type=Path, default=None,
                     help="a text-classification csv/jsonl/json/parquet file, or a folder with train/validation/test "
                          "files (missing splits are carved from train, seeded)")
    new.add_argument("--text-column", default="text", help="--data: column with the text (default: text)")
    new.add_argument("--text-pair-column", default=None, help="--data: column with the second text of a pair")
    new.add_argument("--label-column", default="label",
                     help="--data: column with the label; a column of label lists keeps the rows with one label")
    new.add_argument("--seeds", default=None,
                     help="sampler seeds, comma-separated, each a run of both sides (default with --data: 0,1,2; "
                          "with --budget: 0)")
    new.add_argument("--budget", default=None,
                     help="comma-separated budgets, e.g. 5m,10m,20m: hpo run --budget vs the notebook way with "
                          "Optuna's timeout set to the budget")
    return ap.parse_args(argv)


# -- main ---------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.data is not None or args.seeds is not None or args.budget is not None:
        from repeat import run_repeated

        return run_repeated(args, STUDIES[args.quick] if args.study is None else args.study.resolve())
    return classic(args)


def classic(args: argparse.Namespace) -> int:
    """One sitting on the bench study: notebook, hpo, bare loop; time to the notebook's best, throughput."""
    started = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    study_file = (args.study or STUDIES[args.quick]).resolve()
    spec = read_study_file(study_file)
    work = Path(tempfile.mkdtemp(prefix="hpo-bench-"))
    logs = work / "logs"
    env = child_env(args.online)
    record: dict[str, Any] = {
        "started": started, "quick": args.quick, "study_file": str(study_file), "work_dir": str(work),
        "machine": machine(),
    }
    warn_if_busy(record)

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
    return finish(record, work, args.keep)


if __name__ == "__main__":
    sys.exit(main())
