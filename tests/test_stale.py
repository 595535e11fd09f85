"""Nothing made from other data or another store is reported as this study's: the final model, its test
scores and the held-out gate's scores are redone when the test rows change or the store is a fresh one."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import run_cli


def confusion_total(evaluation: dict[str, Any]) -> int:
    return sum(map(sum, evaluation["confusion_matrix"]))


@pytest.mark.slow
@pytest.mark.parametrize("change", ["test file", "test_samples"])
def test_new_test_rows_are_scored_again(make_study: Any, change: str) -> None:
    study_file = make_study(search__n_trials=2, selection={"top_k": 2})
    r = run_cli("run", str(study_file))
    assert r.returncode == 0, r.stderr[-3000:]
    out = study_file.parent / "runs" / "tiny"
    assert confusion_total(json.loads((out / "results.json").read_text())["final"]) == 80

    if change == "test file":
        test_csv = study_file.parent / "data" / "test.csv"
        with open(test_csv, newline="") as fh:
            rows = list(csv.reader(fh))
        with open(test_csv, "w", newline="") as fh:
            csv.writer(fh).writerows(rows[:41])  # header and 40 of the 80 rows
    else:
        make_study(search__n_trials=2, selection={"top_k": 2}, dataset__test_samples=40)
    again = run_cli("run", str(study_file))
    assert again.returncode == 0, again.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert confusion_total(results["final"]) == 40  # the final model scored on the new rows, not the old scores
    gate = json.loads((out / "selection" / "tiny" / "gate.json").read_text())
    assert [confusion_total(e["evaluation"]) for e in gate.values()] == [40, 40]
    assert results["data"]["test"] == 40


@pytest.mark.slow
def test_a_fresh_store_with_the_same_output_folder_gets_its_own_final_model(make_study: Any) -> None:
    from safetensors.torch import load_file

    def study(config: dict[str, Any]) -> Path:
        return make_study(selection={"top_k": 1}, search={
            "n_trials": 1, "baseline": False, "sampler": {"name": "random", "seed": 0}, "pruner": {"name": "none"},
            "space": {"learning_rate": {"type": "float", "low": 1e-3, "high": 5e-2, "log": True},
                      "per_device_train_batch_size": {"type": "categorical", "choices": [16, 32]}},
            "enqueue": [config]})

    first = {"learning_rate": 0.001, "per_device_train_batch_size": 16}
    second = {"learning_rate": 0.05, "per_device_train_batch_size": 32}
    study_file = study(first)
    r = run_cli("run", str(study_file))
    assert r.returncode == 0, r.stderr[-3000:]
    out = study_file.parent / "runs" / "tiny"
    old_weights = load_file(out / "best-model" / "model.safetensors")

    study(second)  # trial 0 of a fresh store: same study name, same trial number, other values
    fresh = f"sqlite:///{study_file.parent / 'fresh.db'}"
    r = run_cli("run", str(study_file), "--storage", fresh)
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    marker = json.loads((out / "best-model" / "hpo-final.json").read_text())
    assert results["final"]["trial"] == marker["trial"] == 0
    assert results["final"]["params"] == marker["params"] == second
    weights = load_file(out / "best-model" / "model.safetensors")
    kept = load_file(out / "trials" / "tiny" / "trial-0" / "model.safetensors")  # the fresh store's trial 0
    assert all((weights[k] == kept[k]).all() for k in kept)
    assert any((weights[k] != old_weights[k]).any() for k in kept)


def test_another_stores_kept_model_is_not_promoted(make_study: Any, tiny_model: Path, tmp_path: Path) -> None:
    """A trial folder of the same name written by another store's trial is retrained, not copied."""
    import shutil

    import optuna

    from hpo.data import prepare_splits
    from hpo.final import promote
    from hpo.spec import load_study

    study = load_study(make_study())
    folder = tmp_path / "trials" / "tiny" / "trial-0"
    shutil.copytree(tiny_model, folder)
    (folder / "hpo-trial.json").write_text(json.dumps({"study_id": "another-store", "trial": 0}))
    s = optuna.create_study(direction="maximize")
    s.add_trial(optuna.trial.create_trial(
        params={"learning_rate": 0.02}, value=0.9, user_attrs={"checkpoint": str(folder)},
        distributions={"learning_rate": optuna.distributions.FloatDistribution(1e-3, 5e-2, log=True)}))
    info = promote(study, study.spec.models[0], s, prepare_splits(study), tmp_path / "best-model")
    assert info["how"] == "retrained"


def test_the_bbc_news_key_follows_the_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hpo.data import sources

    for topic in ("sport", "tech"):
        (tmp_path / topic).mkdir()
        (tmp_path / topic / "001.txt").write_text(f"a {topic} story")
    monkeypatch.setattr(sources, "bbc_news_root", lambda: tmp_path)
    study = SimpleNamespace(spec=SimpleNamespace(dataset=SimpleNamespace(text_columns=["text"], label_column="label")))
    _, before = sources._from_bbc_news(study)
    (tmp_path / "tech" / "001.txt").write_text("another tech story")  # as many files, other text
    raw, after = sources._from_bbc_news(study)
    assert raw["train"]["text"] == ["a sport story", "another tech story"]
    assert after != before
    assert sources._from_bbc_news(study)[1] == after


def test_a_study_has_one_id_in_its_store_and_another_in_a_fresh_one(tmp_path: Path) -> None:
    import optuna

    from hpo.study.workers import study_uid

    url = f"sqlite:///{tmp_path / 'a.db'}"
    first = optuna.create_study(study_name="tiny", storage=url)
    same = optuna.load_study(study_name="tiny", storage=url)  # another process's view of the same study
    assert study_uid(same) == study_uid(first) == study_uid(first)
    fresh = optuna.create_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'b.db'}")
    assert study_uid(fresh) != study_uid(first)
