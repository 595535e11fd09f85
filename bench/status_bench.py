"""Time `hpo status` on a large study: N finished trials (default 5,000) in SQLite, shaped like hpo's.

    python bench/status_bench.py [--trials 5000] [--runs 3]

Builds the study with Optuna directly (params, values, intermediate values and the user attrs hpo's
trainer writes, a few running trials with a worker), then runs `python -m hpo status study.yaml` as a
user would and prints the wall time of each run. Target: under 2 s.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STUDY_YAML = """name: bench
model: sentence-transformers/all-MiniLM-L6-v2
dataset: {{train: train.csv, validation: validation.csv, test: test.csv, text_column: text, label_column: label}}
objective: {{metric: accuracy}}
search:
  n_trials: {n}
  space:
    learning_rate: {{type: float, low: 1.0e-5, high: 1.0e-3, log: true}}
    per_device_train_batch_size: {{type: categorical, choices: [16, 32]}}
    weight_decay: {{type: float, low: 0.0, high: 0.1}}
"""


def build(folder: Path, n: int) -> Path:
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.trial import TrialState, create_trial

    for split in ("train", "validation", "test"):
        (folder / f"{split}.csv").write_text("text,label\n" + "".join(f"text {i},{i % 2}\n" for i in range(20)))
    study_file = folder / "study.yaml"
    study_file.write_text(STUDY_YAML.format(n=n))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else folder  # no fsync per trial while building
    scratch = Path(tempfile.mkdtemp(dir=shm)) / "bench.db"
    study = optuna.create_study(study_name="bench", storage=f"sqlite:///{scratch}", direction="maximize")
    dists = {"learning_rate": FloatDistribution(1e-5, 1e-3, log=True),
             "per_device_train_batch_size": CategoricalDistribution([16, 32]),
             "weight_decay": FloatDistribution(0.0, 0.1)}
    rng = random.Random(0)
    trials = []
    for i in range(n):
        state = TrialState.PRUNED if i % 5 == 0 else TrialState.COMPLETE
        if i >= n - 3:
            state = TrialState.RUNNING
        value = rng.random()
        trials.append(create_trial(
            state=state, value=value if state == TrialState.COMPLETE else None,
            params={"learning_rate": 10 ** rng.uniform(-5, -3), "per_device_train_batch_size": rng.choice([16, 32]),
                    "weight_decay": rng.uniform(0, 0.1)},
            distributions=dists, intermediate_values={s: value * s / 100 for s in (25, 50, 75, 100)},
            user_attrs={"worker": f"host{i % 4}:{1000 + i % 4}", "duration_s": rng.uniform(20, 90),
                        "progress": 100, "metrics": {"eval_accuracy": value, "eval_loss": 1 - value},
                        "profile": {"model_load": 0.4, "training": 30.0, "evaluation": 3.0, "reporting": 0.01,
                                    "checkpoint": 0.0, "wall": 33.4}}))
    study.add_trials(trials)
    del study
    shutil.move(str(scratch), folder / "bench.db")
    scratch.parent.rmdir()
    return study_file


def _child_cpu() -> float:
    """CPU seconds of finished children: the figure that a busy machine does not inflate."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        study_file = build(Path(tmp), args.trials)
        print(f"built a {args.trials}-trial SQLite study in {time.perf_counter() - t0:.1f}s")
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        for run in range(args.runs):
            start, cpu0 = time.perf_counter(), _child_cpu()
            proc = subprocess.run([sys.executable, "-m", "hpo", "status", str(study_file)], capture_output=True,
                                  text=True, env=env)
            took = time.perf_counter() - start
            if proc.returncode != 0:
                sys.exit(f"hpo status failed: {proc.stderr.strip()}")
            print(f"run {run + 1}: hpo status took {took:.2f}s wall, {_child_cpu() - cpu0:.2f}s CPU "
                  f"({len(proc.stdout.splitlines())} lines)")
        print(proc.stdout.splitlines()[0])
        print("\n".join(proc.stdout.splitlines()[-4:]))


if __name__ == "__main__":
    main()
