"""Hostile and broken input: every case exits 2 with one line naming the file, the key and the fix.

The table runs in-process through `hpo.cli.main` (fast); a few cases also run as a user runs them.
Data-level cases go through `hpo validate --data`, which reads the rows without training anything.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from conftest import run_cli, sst2_rows
from hpo.cli import main

STUDY = "bad-study.yaml"
NAMES = {"0": "negative", "1": "positive"}


class Case:
    """A valid study in a temp folder that a row then breaks."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.study = root / STUDY
        (root / "data").mkdir()
        for split, n in (("train", 40), ("validation", 16), ("test", 16)):
            self.write_csv(f"data/{split}.csv", [(r["sentence"], NAMES[r["label"]]) for r in sst2_rows(split, n)])
        model = root / "model"
        model.mkdir()
        (model / "config.json").write_text(json.dumps({"model_type": "bert"}))
        self.doc: dict[str, Any] = {
            "name": "bad",
            "model": "./model",
            "dataset": {"train": "data/train.csv", "validation": "data/validation.csv", "test": "data/test.csv",
                        "text_column": "review", "label_column": "sentiment"},
            "search": {"n_trials": 2, "space": {
                "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-3, "log": True},
                "per_device_train_batch_size": {"type": "categorical", "choices": [8, 16]}}},
            "training": {"num_train_epochs": 1},
        }
        self.text: str | None = None  # raw study text instead of `doc`

    def write_csv(self, rel: str, rows: list[tuple[Any, ...]], header: tuple[str, ...] = ("review", "sentiment")
                  ) -> None:
        with open(self.root / rel, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            w.writerows(rows)

    def set(self, dotted: str, value: Any) -> None:
        *parents, last = dotted.split(".")
        node = self.doc
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value

    def drop(self, dotted: str) -> None:
        *parents, last = dotted.split(".")
        node = self.doc
        for p in parents:
            node = node[p]
        del node[last]

    def write(self) -> Path:
        if self.study.is_symlink() or self.study.exists():
            return self.study
        self.study.write_text(self.text if self.text is not None else yaml.safe_dump(self.doc, sort_keys=False))
        return self.study


def raw(text: str) -> Callable[[Case], None]:
    def act(c: Case) -> None:
        c.text = text
    return act


def setting(dotted: str, value: Any) -> Callable[[Case], None]:
    return lambda c: c.set(dotted, value)


def space(key: str, param: dict[str, Any]) -> Callable[[Case], None]:
    return lambda c: c.set(f"search.space.{key}", param)


def dropping(dotted: str) -> Callable[[Case], None]:
    return lambda c: c.drop(dotted)


def both(*acts: Callable[[Case], None]) -> Callable[[Case], None]:
    def act(c: Case) -> None:
        for a in acts:
            a(c)
    return act


def data_file(rel: str, content: bytes) -> Callable[[Case], None]:
    return lambda c: (c.root / rel).write_bytes(content)


def csv_rows(rel: str, rows: list[tuple[Any, ...]], header: tuple[str, ...] = ("review", "sentiment")
             ) -> Callable[[Case], None]:
    return lambda c: c.write_csv(rel, rows, header)


def billion_laughs() -> str:
    levels = ["k0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    levels += [f"k{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    body = "\n".join("    " + line for line in levels)
    return f"name: bomb\nmodel: m\ndataset: {{train: t.csv}}\ntraining:\n  fsdp_config:\n{body}\n"


def study_is_directory(c: Case) -> None:
    c.study.mkdir()


def symlink_loop(c: Case) -> None:
    other = c.root / "loop.yaml"
    c.study.symlink_to(other)
    other.symlink_to(c.study)


def model_without_config(c: Case) -> None:
    (c.root / "model" / "config.json").unlink()
    (c.root / "model" / "weights.bin").write_bytes(b"\0" * 8)


def output_under_file(c: Case) -> None:
    (c.root / "plain-file").write_text("not a folder")
    c.set("output_dir", "plain-file/out")


def train_is_directory(c: Case) -> None:
    (c.root / "data" / "dir.csv").mkdir()
    c.set("dataset.train", "data/dir.csv")


def unseen_label_in_test(c: Case) -> None:
    rows = [(r["sentence"], NAMES[r["label"]]) for r in sst2_rows("test", 15)] + [("so so", "neutral")]
    c.write_csv("data/test.csv", rows)


def single_class(c: Case) -> None:
    c.write_csv("data/train.csv", [(r["sentence"], "positive") for r in sst2_rows("train", 30)])
    c.write_csv("data/validation.csv", [(r["sentence"], "positive") for r in sst2_rows("validation", 8)])
    c.write_csv("data/test.csv", [(r["sentence"], "positive") for r in sst2_rows("test", 8)])


def int_labels(c: Case) -> None:
    for split, n in (("train", 40), ("validation", 16), ("test", 16)):
        c.write_csv(f"data/{split}.csv", [(r["sentence"], int(r["label"])) for r in sst2_rows(split, n)])


def too_few_rows_to_carve(c: Case) -> None:
    c.write_csv("data/train.csv", [("good", "positive"), ("bad", "negative")])
    c.drop("dataset.validation")
    c.drop("dataset.test")


V, D = ("validate",), ("validate", "--data")

# id, what breaks the study, text the one line must contain (the key path or column), command
CASES: list[tuple[str, Callable[[Case], None], str, tuple[str, ...]]] = [
    # the file itself
    ("malformed-yaml", raw("name: [bad\nmodel: m\n"), "malformed YAML", V),
    ("tab-indentation", raw("name: x\ndataset:\n\ttrain: a.csv\n"), "line 3", V),
    ("empty-file", raw(""), "mapping", V),
    ("comments-only", raw("# nothing here\n"), "mapping", V),
    ("list-document", raw("- name: x\n- model: m\n"), "got list", V),
    ("scalar-document", raw("just a sentence\n"), "got str", V),
    ("directory-study", study_is_directory, "directory", V),
    ("symlink-loop", symlink_loop, "cannot read", V),
    ("non-utf8-study", data_file(STUDY, b"name: caf\xe9\nmodel: m\n"), "not UTF-8", V),
    ("too-big-study", raw("name: x\n" + "# padding\n" * 120_000), "limit", V),
    ("alias-bomb", raw(billion_laughs()), "expands to", V),
    ("recursive-anchor", raw("name: x\nmodel: m\ndataset: {train: t.csv}\ntraining: &t {fsdp_config: *t}\n"),
     "refers to itself", V),
    ("python-object-tag", raw("name: !!python/object/apply:os.system ['echo pwned']\n"), "tag not allowed", V),
    ("python-name-tag", raw("!!python/name:os.system\n"), "tag not allowed", V),
    # schema: types, unknown keys, ranges
    ("missing-name", dropping("name"), "name: required", V),
    ("bad-name", setting("name", "has spaces/and slashes"), "name: invalid name", V),
    ("missing-dataset", dropping("dataset"), "dataset: required", V),
    ("unknown-top-key", setting("serach", {"n_trials": 3}), "serach: unknown key (did you mean 'search'?)", V),
    ("unknown-dataset-key", setting("dataset.trian", "data/train.csv"), "dataset.trian: unknown key (did you mean 'train'?)", V),
    ("unknown-param-key", space("learning_rate", {"type": "float", "low": 1e-5, "hihg": 1e-3}),
     "search.space.learning_rate.hihg: unknown key (did you mean 'high'?)", V),
    ("n-trials-string", setting("search.n_trials", "many"), "search.n_trials", V),
    ("n-trials-zero", setting("search.n_trials", 0), "search.n_trials", V),
    ("n-trials-negative", setting("search.n_trials", -3), "search.n_trials", V),
    ("timeout-negative", setting("search.timeout", -1), "search.timeout", V),
    ("nan-bound", space("learning_rate", {"type": "float", "low": float("nan"), "high": 1e-3}),
     "search.space.learning_rate.low: Input should be a finite number", V),
    ("infinite-timeout", setting("search.timeout", float("inf")), "search.timeout", V),
    ("nan-training-value", setting("training.learning_rate", float("nan")), "training.learning_rate", V),
    ("max-length-tiny", setting("dataset.max_length", 2), "dataset.max_length", V),
    ("dataset-not-mapping", setting("dataset", "data/train.csv"), "dataset", V),
    ("inverted-bounds", space("learning_rate", {"type": "float", "low": 1e-2, "high": 1e-4}),
     "search.space.learning_rate: low", V),
    ("inverted-int-bounds", space("num_train_epochs", {"type": "int", "low": 5, "high": 1}),
     "search.space.num_train_epochs", V),
    ("log-zero-low", space("learning_rate", {"type": "float", "low": 0, "high": 1e-3, "log": True}),
     "search.space.learning_rate: log scale", V),
    ("log-negative-low", space("weight_decay", {"type": "float", "low": -1, "high": 1, "log": True}),
     "search.space.weight_decay: log scale", V),
    ("log-with-step", space("learning_rate", {"type": "float", "low": 1e-5, "high": 1e-3, "log": True, "step": 1e-5}),
     "search.space.learning_rate", V),
    ("empty-choices", space("per_device_train_batch_size", {"type": "categorical", "choices": []}),
     "search.space.per_device_train_batch_size.choices", V),
    ("unknown-param-type", space("learning_rate", {"type": "uniform", "low": 0, "high": 1}),
     "search.space.learning_rate", V),
    ("unknown-sampler", setting("search.sampler", {"name": "bayes"}), "search.sampler.name", V),
    ("unknown-pruner", setting("search.pruner", {"name": "asha"}), "search.pruner.name", V),
    ("percentile-out-of-range", setting("search.pruner", {"name": "percentile", "percentile": 150}),
     "search.pruner.percentile", V),
    ("unknown-task", setting("task", "token-classification"), "task", V),
    ("unknown-metric", setting("objective", {"metric": "acuracy"}), "objective.metric: unknown metric 'acuracy' (did you mean 'accuracy'?)", V),
    ("bad-direction", setting("objective", {"metric": "f1", "direction": "up"}), "objective.direction", V),
    ("grid-continuous", setting("search.sampler", {"name": "grid"}), "search.space.learning_rate: grid", V),
    ("int-field-float-range", space("per_device_train_batch_size", {"type": "float", "low": 8, "high": 32}),
     "search.space.per_device_train_batch_size: per_device_train_batch_size is an integer field", V),
    # TrainingArguments keys
    ("training-unknown-key", setting("training.learnin_rate", 1e-4),
     "training.learnin_rate: not a TrainingArguments field (did you mean 'learning_rate'?)", V),
    ("space-unknown-key", space("warmup_ratio", {"type": "float", "low": 0, "high": 0.2}),
     "search.space.warmup_ratio: not a TrainingArguments field", V),
    ("training-wrong-type", setting("training.learning_rate", "fast"), "training.learning_rate", V),
    ("training-float-for-int", setting("training.seed", 1.5), "training.seed", V),
    ("choices-wrong-type", space("per_device_train_batch_size", {"type": "categorical", "choices": ["big", 8]}),
     "search.space.per_device_train_batch_size", V),
    ("reserved-output-dir", setting("training.output_dir", "/tmp/x"), "training.output_dir: hpo sets this field itself", V),
    ("reserved-push-to-hub", setting("training.push_to_hub", True), "training.push_to_hub: hpo sets this field itself", V),
    ("reserved-hub-token", setting("training.hub_token", "hf_x"), "training.hub_token", V),
    ("training-not-mapping", setting("training", ["learning_rate"]), "training", V),
    ("training-conflicting-fields", setting("training", {"num_train_epochs": 1, "fp16": True, "bf16": True}),
     "training: TrainingArguments refuses these settings", V),
    # storage, model, hub, output
    ("storage-malformed", setting("storage", "postgresql+psycopg://u:p@host:notaport/db"), "storage: malformed", V),
    ("storage-unknown-backend", setting("storage", "mongodb://127.0.0.1/x"), "storage: unsupported storage backend", V),
    ("storage-unknown-env", setting("storage", "postgresql+psycopg://u:${HPO_TEST_NOT_SET}@127.0.0.1/db"),
     "storage: storage refers to ${HPO_TEST_NOT_SET}", V),
    ("storage-not-string", setting("storage", {"url": "sqlite://"}), "storage", V),
    ("model-missing-folder", setting("model", "./no-such-model"), "model: model folder ./no-such-model does not exist", V),
    ("model-not-a-model", model_without_config, "model: ./model is not a model folder", V),
    ("model-garbage-config", data_file("model/config.json", b"{not json"), "model: ./model/config.json", V),
    ("model-empty-list", setting("model", []), "model", V),
    ("model-duplicates", setting("model", ["./model", "./model"]), "model", V),
    ("hub-repo-id-invalid", setting("hub", {"repo_id": "no slash here"}), "hub.repo_id: invalid repo_id", V),
    ("hub-repo-id-traversal", setting("hub", {"repo_id": "user/../../etc"}), "hub.repo_id", V),
    ("hub-repo-id-three-parts", setting("hub", {"repo_id": "a/b/c"}), "hub.repo_id", V),
    ("hub-missing-repo-id", setting("hub", {"private": True}), "hub.repo_id: required", V),
    ("output-dir-under-file", output_under_file, "output_dir: cannot write", V),
    # data files named in the study
    ("train-missing", setting("dataset.train", "data/nope.csv"), "dataset.train: data file data/nope.csv does not exist", V),
    ("test-missing", setting("dataset.test", "data/nope.jsonl"), "dataset.test", V),
    ("train-is-directory", train_is_directory, "dataset.train: data/dir.csv is a directory", V),
    ("unknown-extension", both(data_file("data/train.xlsx", b"x"), setting("dataset.train", "data/train.xlsx")),
     "dataset.train: unknown file type", V),
    ("no-train-for-files", dropping("dataset.train"), "dataset.train", V),
    ("hub-source-without-name", both(setting("dataset.source", "hub"), dropping("dataset.train"),
                                     dropping("dataset.validation"), dropping("dataset.test")), "dataset.name", V),
    # the rows (validate --data reads them, trains nothing)
    ("non-utf8-data", data_file("data/train.csv", b"review,sentiment\ncaf\xe9 ok,positive\nbad,negative\n"),
     "dataset.train: data/train.csv is not UTF-8", D),
    ("missing-text-column", setting("dataset.text_column", "sentence"), "dataset.text_column", D),
    ("missing-label-column", setting("dataset.label_column", "label"), "dataset.label_column", D),
    ("missing-column-in-test", csv_rows("data/test.csv", [("fine", "positive")], ("text", "sentiment")),
     "dataset.text_column", D),
    ("empty-train", csv_rows("data/train.csv", []), "dataset.train: data/train.csv has no rows", D),
    ("empty-test-file", data_file("data/test.csv", b""), "dataset.test: data/test.csv has no rows", D),
    ("single-class", single_class, "single class", D),
    ("unseen-label-in-test", unseen_label_in_test, "dataset.test: labels in test that train never has: neutral", D),
    ("empty-text", csv_rows("data/validation.csv", [("fine", "positive"), ("", "negative")]), "dataset.validation", D),
    ("missing-label-value", csv_rows("data/train.csv", [("fine", "positive"), ("bad", "")]), "no label", D),
    ("ragged-csv", data_file("data/train.csv", b"review,sentiment\na,positive\nb,negative,extra,cols\n"),
     "dataset.train", D),
    ("malformed-jsonl", both(data_file("data/train.jsonl", b'{"review": "a", "sentiment": "positive"}\n{oops\n'),
                             setting("dataset.train", "data/train.jsonl")), "dataset.train", D),
    ("too-few-rows-to-carve", too_few_rows_to_carve, "dataset.", D),
    ("negative-int-label", csv_rows("data/train.csv", [("good", 1), ("bad", 0), ("unlabelled", -1)]),
     "dataset.sentiment", D),
    ("named-class-without-rows", both(int_labels, setting("dataset.label_names", ["negative", "positive", "neutral"])),
     "dataset.label_names: class 'neutral' (label 2) has no training row", D),
    ("label-without-name", both(int_labels, setting("dataset.label_names", {0: "negative"})),
     "dataset.label_names: label 1 has no name", D),
    ("label-names-twice", setting("dataset.label_names", ["same", "same"]), "dataset.label_names: label_names gives", V),
    ("label-names-not-names", setting("dataset.label_names", "negative"), "dataset.label_names", V),
    ("joined-text-missing-column", setting("dataset.text_column", ["review", "summary"]),
     "dataset.text_column: the train split has no column 'summary'", D),
    ("label-is-a-text-column", setting("dataset.text_column", ["review", "sentiment"]),
     "dataset.label_column: column 'sentiment' is both the label and a text column", V),
]


@pytest.mark.parametrize("action,expected,command", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch, action: Callable[[Case], None],
                                             expected: str, command: tuple[str, ...]) -> None:
    monkeypatch.delenv("HPO_STORAGE", raising=False)
    monkeypatch.delenv("HPO_OUTPUT_DIR", raising=False)
    case = Case(tmp_path)
    action(case)
    study = case.write()
    code = main([*command, str(study)])
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert code == 2, (out, err)
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith(f"error: {study}"), lines[0]
    assert expected in lines[0], lines[0]
    assert "(" in lines[0] or ";" in lines[0], f"no fix offered: {lines[0]}"  # hint in parentheses or after ';'


def test_the_unbroken_study_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every case above breaks this study in one place: untouched, it passes `validate --data`."""
    study = Case(tmp_path).write()
    assert main(["validate", "--data", str(study)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert f"{study}: data ok" in out and '"labels": ["negative", "positive"]' in out


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a mode-000 file; unreadability is covered by "
                                               "directory-study, train-is-directory and symlink-loop")
def test_unreadable_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    case = Case(tmp_path)
    study = case.write()
    (tmp_path / "data" / "train.csv").chmod(0)
    assert main(["validate", "--data", str(study)]) == 2
    assert "dataset.train: cannot read" in capsys.readouterr().err
    study.chmod(0)
    assert main(["validate", str(study)]) == 2
    assert "cannot read the study file" in capsys.readouterr().err


def test_unreachable_storage_is_exit_2_naming_the_study(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A closed port on 127.0.0.1: the run-time StorageError gets the study file and key in front."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends
    case = Case(tmp_path)
    case.set("storage", f"postgresql+psycopg://hpo:s3cretPW@127.0.0.1:{port}/hpo")
    study = case.write()
    assert main(["validate", str(study)]) == 0  # validate checks the URL's form, not the server
    capsys.readouterr()
    assert main(["status", str(study)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {study}: storage: cannot open storage") and len(err.splitlines()) == 1, err
    assert "s3cretPW" not in err and "***" in err


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def test_bad_data_fails_before_any_training_and_leaves_nothing(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """`hpo run` checks the rows before it creates the store, its lock or the output folder."""
    case = Case(tmp_path)
    unseen_label_in_test(case)
    study = case.write()
    before = _files(tmp_path)
    assert main(["run", str(study)]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith(f"error: {study}: dataset.test: labels in test")
    assert _files(tmp_path) == before  # no bad.db, bad.db.lock or runs/bad
    case.set("storage", f"sqlite:///{tmp_path / 'store' / 'nested' / 'bad.db'}")  # its folders go too
    study.unlink()
    case.write()
    assert main(["run", str(study)]) == 2
    assert _files(tmp_path) == before


def test_a_failed_run_keeps_an_existing_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import optuna

    case = Case(tmp_path)
    unseen_label_in_test(case)
    study = case.write()
    url = f"sqlite:///{tmp_path / 'bad.db'}"
    optuna.create_study(study_name="bad", storage=url).enqueue_trial({"learning_rate": 1e-4})
    assert main(["run", str(study)]) == 2
    assert "labels in test" in capsys.readouterr().err
    assert len(optuna.load_study(study_name="bad", storage=url).trials) == 1
    assert not (tmp_path / "bad.db.lock").exists()


def test_a_second_process_is_refused_before_the_data_is_read(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """The SQLite lock comes first: a busy study answers exit 3 at once, whatever its data."""
    from hpo.study.storage import SqliteLock

    case = Case(tmp_path)
    unseen_label_in_test(case)
    study = case.write()
    with SqliteLock(f"sqlite:///{tmp_path / 'bad.db'}"):
        assert main(["run", str(study)]) == 3
        assert "another hpo process is using the SQLite study" in capsys.readouterr().err
        assert (tmp_path / "bad.db.lock").exists()
    assert not (tmp_path / "bad.db.lock").exists() and not (tmp_path / "bad.db").exists()


def test_as_a_user_runs_it(tmp_path: Path) -> None:
    """A subprocess: the real stderr holds one line; HPO_DEBUG=1 shows the traceback instead."""
    study = tmp_path / STUDY
    study.write_text("name: [unclosed\n")
    r = run_cli("validate", STUDY, cwd=tmp_path, env={"HPO_DEBUG": ""})
    assert r.returncode == 2
    assert r.stderr.splitlines() == [r.stderr.strip()] and r.stderr.startswith(f"error: {STUDY}: line 2")
    debug = run_cli("validate", STUDY, cwd=tmp_path, env={"HPO_DEBUG": "1"})
    assert "Traceback" in debug.stderr and debug.returncode != 0
