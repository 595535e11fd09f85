"""LoRA against full fine-tuning on the benchmark study: training throughput in one process, and each study's
final test accuracy.

- **throughput**: the Trainers hpo builds for `bench/studies/sst2-bench.yaml` (full) and
  `bench/studies/sst2-bench-lora.yaml` (the same study with a LoRA adapter, `all-linear`, r 8) train one
  epoch each on the same length-grouped batches, in alternation (which goes first swaps each pair), a fresh
  model each epoch as in a trial; examples per second of the training loop (evaluation excluded).
- **accuracy** (`--studies`): `hpo run` of both study files, one after the other, on fresh storages; each
  final model's test accuracy (1,821 sentences), wall time, and the size of a kept trial's model.

    python bench/lora_vs_full.py                      # throughput: batch 32, 2 pairs (~4 min idle)
    python bench/lora_vs_full.py --studies            # and both studies (~12 min idle)
    python bench/lora_vs_full.py --peft '{"target_modules": ["query", "value"], "lora_dropout": 0}'
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
STUDIES = {"full": BENCH / "studies" / "sst2-bench.yaml", "lora": BENCH / "studies" / "sst2-bench-lora.yaml"}


def with_peft(changes: dict, folder: Path) -> Path:
    """A copy of the LoRA study with its peft section updated (data paths made absolute, so it runs anywhere)."""
    import yaml

    doc = yaml.safe_load(STUDIES["lora"].read_text())
    doc["peft"] = {**doc["peft"], **changes}
    for split in ("train", "validation", "test"):
        doc["dataset"][split] = str((STUDIES["lora"].parent / doc["dataset"][split]).resolve())
    path = folder / "sst2-bench-lora.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def search_trainer(study_file: Path, workdir: Path):
    """The search Trainer exactly as `hpo run` builds it for the study file."""
    os.environ["HPO_STORAGE"] = f"sqlite:///{workdir / (study_file.stem + '.db')}"
    os.environ["HPO_OUTPUT_DIR"] = str(workdir / study_file.stem)
    from hpo.data import prepare_splits
    from hpo.search.runner import build_context
    from hpo.spec import load_study
    from hpo.study.factory import open_storage

    study = load_study(study_file)
    return build_context(study, study.spec.models[0], prepare_splits(study), open_storage(study)).trainer


def throughput(batch_size: int, pairs: int) -> dict:
    """Examples per second of one epoch, each side's Trainer built afresh for each epoch (accelerate keeps one
    state per process, which the Trainer built last owns) after two untimed warm-up steps."""
    import gc

    from trainer_vs_bare import LoopClock, hpo_epoch

    def epoch(name: str, tmp: Path) -> tuple[float, object]:
        trainer = search_trainer(STUDIES[name], tmp)
        clock = LoopClock(trainer)
        trainer.args.max_steps = 2
        hpo_epoch(trainer, clock, batch_size)
        trainer.args.max_steps = -1
        speed = hpo_epoch(trainer, clock, batch_size)
        counts = (sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
                  sum(p.numel() for p in trainer.model.parameters()))
        del trainer, clock
        gc.collect()
        return speed, counts

    rows, counts = [], {}
    with tempfile.TemporaryDirectory(prefix="hpo-lora-") as tmp:
        for i in range(pairs):
            speed = {}
            for name in (["full", "lora"] if i % 2 == 0 else ["lora", "full"]):
                speed[name], counts[name] = epoch(name, Path(tmp))
            rows.append({k: round(v, 2) for k, v in speed.items()} | {"lora_vs_full": round(speed["lora"] / speed["full"], 3)})
            print(f"batch {batch_size} pair {i + 1}: full {speed['full']:.1f} ex/s, lora {speed['lora']:.1f} ex/s "
                  f"-> {speed['lora'] / speed['full']:.3f}", flush=True)
    ratios = [r["lora_vs_full"] for r in rows]
    return {"batch_size": batch_size, "pairs": rows, "median_lora_vs_full": statistics.median(ratios),
            "lora_trainable_parameters": counts["lora"][0], "lora_total_parameters": counts["lora"][1]}


def run_study(name: str, workdir: Path) -> dict:
    out = workdir / name
    env = {**os.environ, "HPO_STORAGE": f"sqlite:///{workdir / (name + '.db')}", "HPO_OUTPUT_DIR": str(out),
           "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "hpo", "run", str(STUDIES[name]), "--no-push"], env=env,
                       capture_output=True, text=True)
    wall = time.perf_counter() - start
    if r.returncode != 0:
        raise SystemExit(f"{name} study failed:\n{r.stderr[-3000:]}")
    results = json.loads((out / "results.json").read_text())
    kept = [p for p in (out / "trials").rglob("*.safetensors")]
    sizes = {}
    for p in kept:
        sizes[p.parent.name] = sizes.get(p.parent.name, 0) + p.stat().st_size
    return {"wall_s": round(wall, 1), "test_accuracy": results["final"]["test_metrics"]["accuracy"],
            "best_trial": results["final"]["trial"], "params": results["final"]["params"],
            "kept_model_bytes": max(sizes.values()) if sizes else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--studies", action="store_true", help="also run both studies and compare test accuracy")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--peft", type=json.loads, default=None,
                    help="JSON object of peft fields that replace the LoRA study's (e.g. another target_modules)")
    ap.add_argument("--out", type=Path, default=None, help="also write the figures as JSON here")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(BENCH))
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    report: dict = {"load_before": os.getloadavg()[0]}
    if args.peft:
        STUDIES["lora"] = with_peft(args.peft, Path(tempfile.mkdtemp(prefix="hpo-lora-study-")))
        report["peft"] = args.peft
    if not args.skip_throughput:
        report["throughput"] = throughput(args.batch_size, args.pairs)
        print(f"lora/full throughput median {report['throughput']['median_lora_vs_full']:.3f} (target >= 1)")
    if args.studies:
        with tempfile.TemporaryDirectory(prefix="hpo-lora-studies-") as tmp:
            for name in STUDIES:
                report[name] = run_study(name, Path(tmp))
                print(f"{name}: test accuracy {report[name]['test_accuracy']:.4f}, {report[name]['wall_s']} s, "
                      f"kept model {report[name]['kept_model_bytes']:,} bytes", flush=True)
        gap = report["full"]["test_accuracy"] - report["lora"]["test_accuracy"]
        share = report["lora"]["kept_model_bytes"] / report["full"]["kept_model_bytes"]
        report["accuracy_gap_points"], report["kept_size_share"] = round(100 * gap, 2), round(share, 4)
        print(f"full - lora test accuracy: {100 * gap:.2f} points (target <= 2); kept LoRA model "
              f"{100 * share:.2f} % of a full one (target <= 5 %)")
    report["load_after"] = os.getloadavg()[0]
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
