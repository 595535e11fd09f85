"""Choosing the final model: held-out gate, multi-seed finalists, Pareto pick rule, warm start.

Two real tiny studies, run once each for the module: a single-objective one with the gate and two seeds,
then a multi-objective one warm-started from the first.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from conftest import run_cli, sst2_rows

from hpo.errors import SpecError
from hpo.selection.gate import summarize
from hpo.selection.stats import binomial_noise, mean_interval, rank_correlation, ranks

SHARED_RUNS = pytest.mark.xdist_group("selection-runs")  # one xdist worker makes the two study runs once


# -- pure pieces ----------------------------------------------------------------------------------------------
def test_ranks_and_rank_correlation() -> None:
    assert ranks([0.9, 0.7, 0.8], maximize=True) == [1.0, 3.0, 2.0]
    assert ranks([0.1, 0.3, 0.3], maximize=False) == [1.0, 2.5, 2.5]
    assert rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == {"spearman": 1.0, "kendall": 1.0}
    assert rank_correlation([1, 2, 3, 4], [4, 3, 2, 1])["spearman"] == pytest.approx(-1.0)
    assert rank_correlation([1, 2], [2, 1]) == {"spearman": None, "kendall": None}  # too few to say


def test_mean_interval_uses_the_t_distribution() -> None:
    r = mean_interval([0.80, 0.82, 0.84])
    assert r["mean"] == pytest.approx(0.82) and r["std"] == pytest.approx(0.02)
    assert r["half_width"] == pytest.approx(4.302653 * 0.02 / math.sqrt(3), rel=1e-5)  # t(0.975, 2 dof)
    assert mean_interval([0.8])["half_width"] is None


def test_gate_warns_only_when_the_gap_exceeds_the_noise() -> None:
    rows = [{"trial": 4, "validation": 0.90, "test": 0.80}, {"trial": 7, "validation": 0.88, "test": 0.86},
            {"trial": 1, "validation": 0.85, "test": 0.84}]
    small = summarize([dict(r) for r in rows], maximize=True, metric="accuracy", validation_metric="accuracy",
                      n_test=100, binomial=True)
    assert small["warning"] is None and small["unseen_winner"] == 7  # 0.06 < ±0.107 on 100 examples
    big = summarize([dict(r) for r in rows], maximize=True, metric="accuracy", validation_metric="accuracy",
                    n_test=5000, binomial=True)
    assert big["noise"] == pytest.approx(binomial_noise(0.80, 0.86, 5000))
    assert "#4" in big["warning"] and "#7" in big["warning"]
    assert [r["test_rank"] for r in big["rows"]] == [3.0, 1.0, 2.0]
    assert big["spearman"] == pytest.approx(-0.5)
    # a minimized validation loss that agrees with test accuracy correlates +1
    loss = summarize([{"trial": 1, "validation": 0.2, "test": 0.9}, {"trial": 2, "validation": 0.3, "test": 0.8},
                      {"trial": 3, "validation": 0.4, "test": 0.7}], maximize=False, metric="accuracy",
                     validation_metric="loss", n_test=100, binomial=True)
    assert loss["spearman"] == pytest.approx(1.0) and loss["warning"] is None


def test_pick_rule_on_a_multi_objective_study(make_study: Any) -> None:
    from hpo.selection.pareto import front, ranked
    from hpo.spec import load_study

    study = load_study(make_study(objective={"metric": "accuracy", "secondary": ["latency_ms"]},
                                  selection={"pick": {"budget": {"latency_ms": 2.0}}}))
    s = optuna.create_study(directions=["maximize", "minimize"])
    dist = {"learning_rate": optuna.distributions.FloatDistribution(1e-5, 1.0)}
    for acc, lat in ((0.9, 5.0), (0.8, 1.5), (0.7, 1.0), (0.6, 3.0), (0.8, 1.9)):
        s.add_trial(optuna.trial.create_trial(params={"learning_rate": 0.1}, distributions=dist, values=[acc, lat]))
    # within latency <= 2 first, front members before dominated ones (#4 ties #1 on accuracy but is slower)
    assert [t.number for t in ranked(s, study.spec)] == [1, 2, 4, 0, 3]
    f = front(s, study.spec)
    assert f["picked"] == 1 and {m["trial"] for m in f["front"]} == {0, 1, 2} and f["warning"] is None
    tight = load_study(make_study(objective={"metric": "accuracy", "secondary": ["latency_ms"]},
                                  selection={"pick": {"budget": {"latency_ms": 0.5}}}))
    assert "no trial meets the budget" in front(s, tight.spec)["warning"]


@pytest.mark.parametrize("overrides, path", [
    ({"selection": {"pick": {"budget": {"latency_ms": 5}}}}, "selection.pick"),
    ({"objective": {"secondary": ["latency_ms"]}, "selection": {"pick": {"budget": {"parameters": 5}}}},
     "selection.pick.budget.parameters"),
    ({"objective": {"secondary": ["latency_ms"]}, "selection": {"pick": {"best": "f1"}}}, "selection.pick.best"),
    ({"objective": {"secondary": ["latency_ms"]}, "search__pruner": {"name": "median"}}, "search.pruner.name"),
    ({"objective": {"secondary": ["latency_ms", "latency_ms"]}}, "objective.secondary"),
    ({"search__warm_start": {"study": "tiny"}}, "search.warm_start.study"),
    ({"selection": {"top_k": 0}}, "selection.top_k"),
    ({"selection": {"seeds": 2, "sedes": 1}}, "selection.sedes"),
])
def test_bad_selection_settings_name_the_key(make_study: Any, overrides: dict[str, Any], path: str) -> None:
    from hpo.spec import load_study

    with pytest.raises(SpecError) as e:
        load_study(make_study(**overrides))
    assert path in str(e.value)


# -- real studies -----------------------------------------------------------------------------------------
def _write_study(folder: Path, model: Path, **sections: Any) -> Path:
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 240), ("validation", 80), ("test", 80)):
        with open(data / f"{split}.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["review", "sentiment"])
            w.writerows([r["sentence"], ("negative", "positive")[int(r["label"])]] for r in sst2_rows(split, n))
    doc: dict[str, Any] = {
        "name": "tiny", "model": str(model),
        "dataset": {"train": "data/train.csv", "validation": "data/validation.csv", "test": "data/test.csv",
                    "text_column": "review", "label_column": "sentiment", "max_length": 32},
        "search": {"n_trials": 4, "evals_per_epoch": 1, "keep_checkpoints": 1,
                   "space": {"learning_rate": {"type": "float", "low": 1e-3, "high": 5e-2, "log": True},
                             "per_device_train_batch_size": {"type": "categorical", "choices": [16, 32]}},
                   "sampler": {"name": "random", "seed": 0}, "pruner": {"name": "none"}},
        "training": {"num_train_epochs": 2, "seed": 0},
    }
    for key, value in sections.items():
        section, _, sub = key.partition("__")
        if sub:
            doc[section][sub] = value
        else:
            doc[section] = value
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> dict[str, Any]:
    """A finished study with the gate on its 3 best trials and 2 seeds per finalist."""
    study_file = _write_study(tmp_path_factory.mktemp("gated"), tiny_model, selection={"top_k": 3, "seeds": 2})
    r = run_cli("run", str(study_file))
    assert r.returncode == 0, r.stderr[-3000:]
    out = study_file.parent / "runs" / "tiny"
    return {"file": study_file, "out": out, "log": r.stderr, "results": json.loads((out / "results.json").read_text())}


@pytest.mark.slow
@SHARED_RUNS
def test_gate_scores_the_top_trials_on_unseen_data(gated: dict[str, Any]) -> None:
    results = gated["results"]
    gate = results["selection"]["gate"]
    trials = {t["number"]: t for t in results["trials"]["tiny"]}
    best3 = sorted((t for t in trials.values() if t["value"] is not None), key=lambda t: -t["value"])[:3]
    assert [r["trial"] for r in gate["rows"]] == [t["number"] for t in best3]
    assert [r["validation"] for r in gate["rows"]] == [t["value"] for t in best3]
    # keep_checkpoints 1 was raised to top_k 3: every gated trial had its saved model
    assert [r["source"] for r in gate["rows"]] == ["checkpoint"] * 3
    cached = json.loads((gated["out"] / "selection" / "tiny" / "gate.json").read_text())
    for r in gate["rows"]:
        assert r["test"] == cached[str(r["trial"])]["test_metrics"]["accuracy"]
        assert 0 <= r["test"] <= 1 and 1 <= r["test_rank"] <= 3
    assert gate["noise"] == pytest.approx(binomial_noise(gate["rows"][0]["test"],
                                                         max(r["test"] for r in gate["rows"]), 80))
    assert "spearman" in gate and "kendall" in gate


@pytest.mark.slow
@SHARED_RUNS
def test_final_model_is_the_finalist_with_the_best_mean(gated: dict[str, Any]) -> None:
    results = gated["results"]
    seeds = results["selection"]["multi_seed"]
    assert seeds["seeds"] == [1, 2]  # fresh: the search trained with seed 0
    assert len(seeds["finalists"]) == 3
    for f in seeds["finalists"]:
        values = list(f["values"].values())
        assert len(values) == 2 and f["mean"] == pytest.approx(sum(values) / 2)
        assert f["low"] <= f["mean"] <= f["high"]
        assert f["best_seed"] == int(max(f["values"], key=f["values"].get))
    winner = max(seeds["finalists"], key=lambda f: f["mean"])
    assert results["final"]["trial"] == winner["trial"] == seeds["winner"] == results["selection"]["chosen"]
    assert results["final"]["how"] == f"best of 2 seeds (seed {winner['best_seed']})"
    # the promoted model is that seed's run: same weights as the finalist's saved model
    promoted = (gated["out"] / "best-model" / "model.safetensors").read_bytes()
    assert promoted == (Path(winner["model_path"]) / "model.safetensors").read_bytes()


@pytest.mark.slow
@SHARED_RUNS
def test_report_shows_gate_and_seeds(gated: dict[str, Any]) -> None:
    md = (gated["out"] / "report.md").read_text()
    html = (gated["out"] / "report.html").read_text()
    assert "## Choosing the final model" in md and "Held-out gate: top 3 trials on unseen data" in md
    assert "Finalists over 2 seeds" in md and "(chosen)" in md and "± (95%, t)" in md
    assert "Held-out gate" in html and "Finalists over 2 seeds" in html
    gate = gated["results"]["selection"]["gate"]
    assert ("Spearman" in md) == (gate["spearman"] is not None)


@pytest.fixture(scope="module")
def multi(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, gated: dict[str, Any]) -> dict[str, Any]:
    """A multi-objective study (accuracy, latency) warm-started from the gated study's two best trials."""
    source_db = gated["file"].parent / "tiny.db"
    study_file = _write_study(
        tmp_path_factory.mktemp("multi"), tiny_model,
        objective={"metric": "accuracy", "secondary": ["latency_ms", "parameters"]},
        search__n_trials=3, search__baseline=False,
        search__warm_start={"storage": f"sqlite:///{source_db}", "study": "tiny", "top": 2},
        selection={"top_k": 1, "pick": {"best": "accuracy", "budget": {"latency_ms": 1000}}})
    r = run_cli("run", str(study_file))
    assert r.returncode == 0, r.stderr[-3000:]
    out = study_file.parent / "runs" / "tiny"
    return {"file": study_file, "out": out, "log": r.stderr, "source_db": source_db,
            "results": json.loads((out / "results.json").read_text())}


@pytest.mark.slow
@SHARED_RUNS
def test_warm_start_enqueues_the_other_studys_best(multi: dict[str, Any]) -> None:
    source = optuna.load_study(study_name="tiny", storage=f"sqlite:///{multi['source_db']}")
    done = [t for t in source.trials if t.value is not None]
    best2 = [t.params for t in sorted(done, key=lambda t: -t.value)[:2]]
    # values outside this study's space are dropped (the baseline's learning_rate 5e-05 is below 1e-3): the
    # sampler draws those
    expected = [{k: v for k, v in p.items() if k != "learning_rate" or 1e-3 <= v <= 5e-2} for p in best2]
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{multi['file'].parent / 'tiny.db'}")
    trials = study.trials
    for t, config in zip(trials[:2], expected):
        assert config and config.items() <= t.params.items()
    assert all(t.user_attrs.get("warm_start") == "tiny" for t in trials[:2])
    assert "warm_start" not in trials[2].user_attrs
    record = multi["results"]["selection"]["warm_start"]
    assert record["enqueued"] == 2 and record["study"] == "tiny"
    assert "Warm start" in (multi["out"] / "report.md").read_text()


@pytest.mark.slow
@SHARED_RUNS
def test_multi_objective_front_and_pick(multi: dict[str, Any]) -> None:
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{multi['file'].parent / 'tiny.db'}")
    assert study.metric_names == ["accuracy", "latency_ms", "parameters"]  # the dashboard's axis names
    assert all(len(t.values) == 3 and t.values[1] > 0 and t.values[2] > 1000 for t in study.trials)
    pareto = multi["results"]["selection"]["pareto"]
    assert {m["trial"] for m in pareto["front"]} == {t.number for t in study.best_trials}
    front = study.best_trials
    picked = max(front, key=lambda t: (t.values[0], -t.values[1], -t.values[2], -t.number))  # all within budget
    assert pareto["picked"] == picked.number == multi["results"]["final"]["trial"]
    assert multi["results"]["trials"]["tiny"][0]["values"] == list(study.trials[0].values)
    assert multi["results"]["selection"]["gate"] is None  # top_k 1: no gate

    md = (multi["out"] / "report.md").read_text()
    assert "### Pareto front" in md and "(picked)" in md
    status = run_cli("status", str(multi["file"]), env={"COLUMNS": "250"})
    assert status.returncode == 0, status.stderr
    header = next(line for line in status.stdout.splitlines() if "latency_ms" in line)
    assert "front" in header and "parameters" in header
    marked = [line for line in status.stdout.splitlines() if "│ *" in line and "COMPLETE" in line]
    assert len(marked) == len(study.best_trials)
    best = json.loads(run_cli("best", str(multi["file"])).stdout)
    assert best["number"] == picked.number and set(best["values"]) == {"accuracy", "latency_ms", "parameters"}
