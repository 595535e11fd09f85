"""Data preparation: label maps, carved splits, sentence pairs, BBC News, and the tokenization cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import SHARED

from hpo.data import prepare_splits, tokenize_splits
from hpo.errors import DataError
from hpo.models import load_tokenizer
from hpo.spec import load_study


def _study(tmp_path: Path, model: Path, dataset: dict, **extra: object) -> Path:
    doc = {"name": "d", "model": str(model), "dataset": dataset, **extra}
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


def test_string_labels_keep_their_names_and_splits_are_carved(tmp_path: Path, tiny_model: Path) -> None:
    rows = [{"q": f"text number {i}", "a": "spam" if i % 3 == 0 else "ham"} for i in range(90)]
    (tmp_path / "all.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    study = load_study(_study(tmp_path, tiny_model, {"train": "all.jsonl", "text_column": "q", "label_column": "a",
                                                     "validation_fraction": 0.2, "test_fraction": 0.2}))
    splits = prepare_splits(study)
    assert splits.label_names == ["ham", "spam"]
    assert splits.carved == ["test", "validation"]
    assert len(splits.train) + len(splits.validation) + len(splits.test) == 90
    assert len(splits.test) == 18
    texts = [set(s["text"]) for s in (splits.train, splits.validation, splits.test)]
    assert not (texts[0] & texts[1]) and not (texts[0] & texts[2]) and not (texts[1] & texts[2])
    # stratified: both classes in every split
    assert all(len(set(s["label"])) == 2 for s in (splits.train, splits.validation, splits.test))
    # seeded: the same carving twice
    assert prepare_splits(study).test["text"] == splits.test["text"]


def test_sentence_pairs_from_rte(tmp_path: Path, tiny_model: Path) -> None:
    rte = SHARED / "rte"
    study = load_study(_study(tmp_path, tiny_model, {
        "train": str(rte / "train.jsonl"), "test": str(rte / "validation.jsonl"), "text_column": "premise",
        "text_pair_column": "hypothesis", "train_samples": 100, "max_length": 32}))
    splits = prepare_splits(study)
    assert splits.label_names == ["entailment", "not_entailment"]
    assert splits.train.column_names == ["text", "text_pair", "label"]
    tok = tokenize_splits(splits, load_tokenizer(str(tiny_model)), max_length=32, cache_dir=tmp_path / "c")
    ids = tok["train"][0]["input_ids"]
    assert ids.count(3) == 2  # [SEP] after each of the two texts
    assert max(tok["train"]["length"]) <= 32


def test_bbc_news_corpus_is_read_from_the_package(tmp_path: Path, tiny_model: Path) -> None:
    study = load_study(_study(tmp_path, tiny_model, {"source": "bbc_news", "label_column": "topic",
                                                     "train_samples": 50}))
    splits = prepare_splits(study)
    assert splits.label_names == ["business", "entertainment", "politics", "sports", "tech"]
    total = len(splits.train) + len(splits.validation) + len(splits.test)
    assert len(splits.train) == 50 and total < 2225
    assert len(splits.test) == round(2225 * 0.2)


def test_tokenization_is_cached_and_reused(tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    study = load_study(_study(tmp_path, tiny_model, {
        "train": str(SHARED / "sst2" / "train.csv"), "validation": str(SHARED / "sst2" / "validation.csv"),
        "test": str(SHARED / "sst2" / "test.csv"), "text_column": "sentence", "train_samples": 200}))
    splits = prepare_splits(study)
    tokenizer = load_tokenizer(str(tiny_model))
    first = tokenize_splits(splits, tokenizer, max_length=32, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("tokenized-*"))) == 1

    calls = []
    original = type(tokenizer).__call__
    monkeypatch.setattr(type(tokenizer), "__call__", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    again = tokenize_splits(prepare_splits(study), tokenizer, max_length=32, cache_dir=tmp_path / "cache")
    assert calls == []  # nothing tokenized the second time
    assert again["train"]["input_ids"] == first["train"]["input_ids"]
    other = tokenize_splits(splits, tokenizer, max_length=16, cache_dir=tmp_path / "cache")
    assert calls and len(list((tmp_path / "cache").glob("tokenized-*"))) == 2
    assert max(other["train"]["length"]) <= 16


def test_integer_labels_need_names_for_every_class(tmp_path: Path, tiny_model: Path) -> None:
    (tmp_path / "t.csv").write_text("text,label\na,0\nb,1\nc,2\nd,0\ne,1\nf,2\ng,0\nh,1\ni,2\nj,0\n")
    study = load_study(_study(tmp_path, tiny_model, {"train": "t.csv", "label_names": ["x", "y"]}))
    with pytest.raises(DataError, match="label 2 has no name"):
        prepare_splits(study)


def _sst2_relabelled(tmp_path: Path, mapping: dict[str, int], n: int = 60) -> dict[str, str]:
    """SST-2 slices with labels 0/1 rewritten by `mapping` (e.g. to 1/2), as csv files; their dataset keys."""
    import csv

    from conftest import sst2_rows

    out = {}
    for split in ("train", "validation", "test"):
        with open(tmp_path / f"{split}.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["sentence", "label"])
            w.writerows([r["sentence"], mapping[r["label"]]] for r in sst2_rows(split, n))
        out[split] = f"{split}.csv"
    return {**out, "text_column": "sentence"}


def test_integer_labels_are_the_values_present(tmp_path: Path, tiny_model: Path) -> None:
    """Labels 1/2 make two classes "1" and "2": no empty class "0"."""
    study = load_study(_study(tmp_path, tiny_model, _sst2_relabelled(tmp_path, {"0": 1, "1": 2})))
    splits = prepare_splits(study)
    assert splits.label_names == ["1", "2"]
    assert splits.train.features["label"].num_classes == 2
    from conftest import sst2_rows

    truth = {r["sentence"]: int(r["label"]) + 1 for r in sst2_rows("train", 60)}
    assert [splits.label_names[i] for i in splits.train["label"]] == [str(truth[t]) for t in splits.train["text"]]
    assert set(splits.test["label"]) == {0, 1}


def _ag_news_like(tmp_path: Path) -> Path:
    topics = {1: ("Leaders meet", "talks on trade and war"), 2: ("Team wins", "the final match ended 3-1"),
              3: ("Stocks rise", "markets and profits grew"), 4: ("New chip", "a faster processor and software")}
    rows = [{"title": f"{topics[k][0]} {i}", "description": topics[k][1] if i % 5 else "", "class": k}
            for i in range(12) for k in topics]
    path = tmp_path / "news.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


AG_NAMES = {1: "World", 2: "Sports", 3: "Business", 4: "Sci/Tech"}


def test_label_names_mapping_and_joined_text_columns(tmp_path: Path, tiny_model: Path) -> None:
    """AG News style: labels 1..4 named by a mapping, title and description joined into one text."""
    _ag_news_like(tmp_path)
    study = load_study(_study(tmp_path, tiny_model, {
        "train": "news.jsonl", "text_column": ["title", "description"], "text_separator": ". ",
        "label_column": "class", "label_names": AG_NAMES}))
    splits = prepare_splits(study)
    assert splits.label_names == ["World", "Sports", "Business", "Sci/Tech"]
    rows = {f"{r['title']}. {r['description']}" if r["description"] else r["title"]: AG_NAMES[r["class"]]
            for r in map(json.loads, (tmp_path / "news.jsonl").read_text().splitlines())}
    for split in (splits.train, splits.validation, splits.test):
        assert [splits.label_names[i] for i in split["label"]] == [rows[t] for t in split["text"]]
    every = [t for split in (splits.train, splits.validation, splits.test) for t in split["text"]]
    assert "Leaders meet 0" in every and "Leaders meet 1. talks on trade and war" in every  # empty part skipped
    assert len(set(splits.train["label"])) == 4


def test_a_named_class_without_training_rows_is_an_error(tmp_path: Path, tiny_model: Path) -> None:
    keys = _sst2_relabelled(tmp_path, {"0": 0, "1": 1})
    study = load_study(_study(tmp_path, tiny_model, {**keys, "label_names": ["negative", "positive", "neutral"]}))
    with pytest.raises(DataError) as e:
        prepare_splits(study)
    line = e.value.one_line()
    assert "dataset.label_names: class 'neutral' (label 2) has no training row" in line
    assert "remove 'neutral' from label_names" in line
    ag = {**AG_NAMES, 5: "Weather"}
    _ag_news_like(tmp_path)
    study = load_study(_study(tmp_path, tiny_model, {"train": "news.jsonl", "text_column": "title",
                                                     "label_column": "class", "label_names": ag}))
    with pytest.raises(DataError, match="class 'Weather' \\(label 5\\) has no training row"):
        prepare_splits(study)
    study = load_study(_study(tmp_path, tiny_model, {"train": "news.jsonl", "text_column": "title",
                                                     "label_column": "class", "label_names": {1: "World"}}))
    with pytest.raises(DataError, match="label 2 has no name in label_names"):
        prepare_splits(study)


def test_validate_data_refuses_an_empty_named_class(tmp_path: Path, tiny_model: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """`hpo validate --data` on labels 1..4 with names for 0..4: one line naming the empty class, exit 2."""
    from hpo.cli import main

    _ag_news_like(tmp_path)
    study = _study(tmp_path, tiny_model, {"train": "news.jsonl", "text_column": "title", "label_column": "class",
                                          "label_names": ["Unused", "World", "Sports", "Business", "Sci/Tech"]})
    assert main(["validate", "--data", str(study)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [err.strip()] and "class 'Unused' (label 0) has no training row" in err
    study = _study(tmp_path, tiny_model, {"train": "news.jsonl", "text_column": "title", "label_column": "class"})
    assert main(["validate", "--data", str(study)]) == 0
    assert '"labels": ["1", "2", "3", "4"]' in capsys.readouterr().out


def test_text_column_lists_are_checked(tmp_path: Path, tiny_model: Path) -> None:
    from hpo.errors import SpecError

    _ag_news_like(tmp_path)
    base = {"train": "news.jsonl", "label_column": "class"}
    study = load_study(_study(tmp_path, tiny_model, {**base, "text_column": ["title", "summary"]}))
    with pytest.raises(DataError) as e:
        prepare_splits(study)
    assert "dataset.text_column: the train split has no column 'summary'" in e.value.one_line()
    for bad, expected in (([], "dataset.text_column: a list of text columns needs one or more"),
                          (["title", "title"], "dataset.text_column: text_column lists the same column twice"),
                          (["title", "class"], "dataset.label_column: column 'class' is both the label")):
        with pytest.raises(SpecError) as e:
            load_study(_study(tmp_path, tiny_model, {**base, "text_column": bad}))
        assert expected in e.value.one_line()
    with pytest.raises(SpecError, match="dataset.label_names: label_names gives two classes the name 'x'"):
        load_study(_study(tmp_path, tiny_model, {**base, "label_names": {1: "x", 2: "x"}}))


def test_test_and_validation_are_carved_before_train_is_sub_sampled(tmp_path: Path, tiny_model: Path) -> None:
    rows = [{"text": f"text number {i}", "label": "ab"[i % 2]} for i in range(100)]
    (tmp_path / "all.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    full = prepare_splits(load_study(_study(tmp_path, tiny_model, {"train": "all.jsonl"})))
    small = prepare_splits(load_study(_study(tmp_path, tiny_model, {"train": "all.jsonl", "train_samples": 10})))
    assert len(small.train) == 10 and set(small.train["text"]) <= set(full.train["text"])
    assert small.test["text"] == full.test["text"] and small.validation["text"] == full.validation["text"]


def test_the_tokenizer_keeps_the_trained_length(tmp_path: Path, tiny_model: Path) -> None:
    """Saved with a model, the tokenizer says how long the training inputs were (hpo predict reads it)."""
    from transformers import AutoTokenizer

    study = load_study(_study(tmp_path, tiny_model, {
        "train": str(SHARED / "sst2" / "train.csv"), "text_column": "sentence", "train_samples": 40}))
    tokenizer = load_tokenizer(str(tiny_model))
    tokenize_splits(prepare_splits(study), tokenizer, max_length=24, cache_dir=tmp_path / "cache")
    tokenizer.save_pretrained(tmp_path / "saved")
    assert AutoTokenizer.from_pretrained(tmp_path / "saved").model_max_length == 24
