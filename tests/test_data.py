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
