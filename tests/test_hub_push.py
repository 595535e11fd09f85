"""Publishing end to end: a tiny study with a hub section against the local Hub server, real clients in
subprocesses. One study run is shared by every test of the module (its first push is made to fail)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import run_cli, sst2_rows
from hpo.testing.hub_server import LocalHub

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("hub-push")]  # one worker: one shared run

TOKEN = "hf_secretTOKEN4hpoTests9x7Qz"
REPO_ID = "user/tiny-sst2"


def hub_env(hub: LocalHub, home: Path, token: str = TOKEN) -> dict[str, str]:
    return {"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": token, "HF_HUB_OFFLINE": "0",
            "HF_HOME": str(home)}


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Any:
    base = tmp_path_factory.mktemp("publish")
    names = {"0": "negative", "1": "positive"}
    for split, n in (("train", 160), ("validation", 60), ("test", 60)):
        with open(base / f"{split}.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["review", "sentiment"])
            w.writerows([r["sentence"], names[r["label"]]] for r in sst2_rows(split, n))
    study = base / "study.yaml"
    study.write_text(yaml.safe_dump({
        "name": "pub", "model": str(tiny_model),
        "dataset": {"train": "train.csv", "validation": "validation.csv", "test": "test.csv",
                    "text_column": "review", "label_column": "sentiment", "max_length": 32},
        "search": {"n_trials": 2, "evals_per_epoch": 2, "sampler": {"name": "random", "seed": 0},
                   "pruner": {"name": "none"},
                   "space": {"learning_rate": {"type": "float", "low": 1e-3, "high": 5e-2, "log": True}}},
        "training": {"num_train_epochs": 1, "seed": 0},
        "hub": {"repo_id": REPO_ID, "license": "mit"},
    }, sort_keys=False))
    with LocalHub(base / "hub", tokens={TOKEN}) as hub:
        hub.fail_next("commit", status=500)  # the upload's last step: files are sent, the commit fails
        failed = run_cli("run", str(study), env=hub_env(hub, base / "hf"))
        out = base / "runs" / "pub"
        before_retry = json.loads((out / "results.json").read_text())
        pushed = run_cli("push", str(study), env=hub_env(hub, base / "hf"))
        yield {"base": base, "study": study, "out": out, "hub": hub, "failed": failed, "pushed": pushed,
               "before_retry": before_retry, "captured": [failed, pushed]}


def test_failed_push_keeps_outputs_and_push_retries(published: Any) -> None:
    failed, out = published["failed"], published["out"]
    assert failed.returncode == 4, failed.stderr[-3000:]
    error = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "500" in error[0] and "rerun: hpo push" in error[0], failed.stderr[-2000:]
    assert published["before_retry"]["hub"] is None  # nothing recorded for the failed push
    for name in ("best-model/config.json", "best-model/model.safetensors", "best-model/README.md",
                 "report.md", "report.html", "results.json"):
        assert (out / name).is_file(), name
    pushed = published["pushed"]
    assert pushed.returncode == 0, pushed.stderr[-3000:]
    assert f"/{REPO_ID}" in pushed.stdout
    record = json.loads((out / "results.json").read_text())["hub"]
    assert record["repo_id"] == REPO_ID and record["revision"] == "main" and len(record["commit"]) == 40
    tree = published["base"] / "hub" / "user" / "tiny-sst2" / "tree" / "main"
    assert {"config.json", "model.safetensors", "README.md", "report/report.html"} <= {
        p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file()}
    assert not (tree / "hpo-final.json").exists()
    card = (tree / "README.md").read_text()
    assert "license: mit" in card and f'model="{REPO_ID}"' in card and "model-index" in card


def test_pipeline_from_hub_matches_local_model(published: Any, tmp_path: Path) -> None:
    texts = [r["sentence"] for r in sst2_rows("test", 12)]
    code = textwrap.dedent(f"""
        import json, sys
        from transformers import pipeline
        model, task = sys.argv[1], sys.argv[2]
        pipe = pipeline(model=model) if task == "infer" else pipeline(task, model=model)
        out = pipe({texts!r})
        print(json.dumps([[o["label"], o["score"]] for o in out]))
    """)
    env = {**os.environ, **hub_env(published["hub"], tmp_path / "fresh")}

    def run(model: str, task: str) -> list[list[Any]]:
        r = subprocess.run([sys.executable, "-c", code, model, task], capture_output=True, text=True, env=env,
                           timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        published["captured"].append(r)
        return json.loads(r.stdout.strip().splitlines()[-1])

    # the Hub repo is used as users do (task from the card's pipeline_tag); a folder needs the task
    remote, local = run(REPO_ID, "infer"), run(str(published["out"] / "best-model"), "text-classification")
    assert [x[0] for x in remote] == [x[0] for x in local]
    assert [x[1] for x in remote] == pytest.approx([x[1] for x in local], abs=1e-6)


def test_predict_by_repo_id_with_string_labels(published: Any, tmp_path: Path) -> None:
    data = published["base"] / "test.csv"
    out = tmp_path / "pred.csv"
    r = run_cli("predict", REPO_ID, str(data), "--text-column", "review", "--label-column", "sentiment",
                "--out", str(out), env=hub_env(published["hub"], tmp_path / "hf"))
    published["captured"].append(r)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout)
    results = json.loads((published["out"] / "results.json").read_text())
    assert summary["rows"] == 60 and summary["labels"][:2] == ["negative", "positive"]
    assert summary["metrics"]["accuracy"] == pytest.approx(results["final"]["test_metrics"]["accuracy"])
    assert summary["confusion_matrix"] == results["final"]["confusion_matrix"]
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 60 and {"text", "label", "predicted", "score"} <= set(rows[0])
    assert {r["label"] for r in rows} == {"negative", "positive"}


def test_push_errors_are_one_line(published: Any, tmp_path: Path) -> None:
    hub, study = published["hub"], published["study"]
    bad = run_cli("push", str(study), env=hub_env(hub, tmp_path / "hf", token="hf_wrong"))
    published["captured"].append(bad)
    assert bad.returncode == 4 and "401" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    unfinished = tmp_path / "other.yaml"
    unfinished.write_text(study.read_text().replace("name: pub", "name: other"))
    for split in ("train", "validation", "test"):
        (tmp_path / f"{split}.csv").write_text((published["base"] / f"{split}.csv").read_text())
    r = run_cli("push", str(unfinished), env=hub_env(hub, tmp_path / "hf"))
    assert r.returncode == 2 and "no final model" in r.stderr and "hpo run" in r.stderr, r.stderr


def test_a_finished_study_is_pushed_later(published: Any, tmp_path: Path) -> None:
    """A study that ran without a hub section (or with --no-push): add one, then `hpo push` publishes what is on
    disk, with the card rebuilt for the new repo."""
    import shutil

    out = tmp_path / "out"
    shutil.copytree(published["out"], out, ignore=shutil.ignore_patterns("trials", "cache", "scratch"))
    doc = yaml.safe_load(published["study"].read_text())
    doc["dataset"].update({k: str(published["base"] / doc["dataset"][k]) for k in ("train", "validation", "test")})
    doc.update(output_dir=str(out), hub={"repo_id": "user/later"})
    study = tmp_path / "later.yaml"
    study.write_text(yaml.safe_dump(doc, sort_keys=False))
    r = run_cli("push", str(study), env=hub_env(published["hub"], tmp_path / "hf"))
    published["captured"].append(r)
    assert r.returncode == 0 and "/user/later" in r.stdout, r.stderr[-2000:]
    tree = published["base"] / "hub" / "user" / "later" / "tree" / "main"
    assert (tree / "model.safetensors").is_file() and (tree / "report" / "report.html").is_file()
    card = (tree / "README.md").read_text()
    assert 'model="user/later"' in card and "user/tiny-sst2" not in card
    assert json.loads((out / "results.json").read_text())["hub"]["repo_id"] == "user/later"


def test_token_is_nowhere(published: Any) -> None:
    """Last in the module: every file written and every captured stream, searched for the token."""
    roots = [published["base"]]
    secret = TOKEN.encode()
    leaks = [str(p) for root in roots for p in root.rglob("*") if p.is_file() and secret in p.read_bytes()]
    leaks += [f"captured output {i}" for i, r in enumerate(published["captured"])
              if TOKEN in (r.stdout or "") + (r.stderr or "")]
    assert not leaks
    files = sum(1 for p in published["base"].rglob("*") if p.is_file())
    assert files > 20 and (published["base"] / "pub.db").is_file()  # the search covered store, outputs, hub
