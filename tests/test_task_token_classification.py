"""token-classification: CoNLL and list-column reading, sub-word alignment, seqeval scores, training and the
pipeline round trip on unseen words."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from task_helpers import shared_rows, tiny_base, to_dataset, train_briefly, write_jsonl

from hpo.errors import DataError, SpecError
from hpo.tasks import Where, get_task
from hpo.tasks.conll import parse_conll
from hpo.tasks.ner_metrics import entities_to_tags, ner_scores
from hpo.tasks.token_classification import align_labels

CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC

Peter\tB-PER
Blackburn\tI-PER
-DOCSTART- -X- O
London B-LOC
"""


def test_conll_sentences_tags_in_last_column_and_docstart_skipped() -> None:
    tokens, tags, lines = parse_conll(CONLL)
    assert tokens == [["EU", "rejects", "German"], ["Peter", "Blackburn"], ["London"]]
    assert tags == [["B-ORG", "O", "B-MISC"], ["B-PER", "I-PER"], ["B-LOC"]]
    assert lines == [3, 7, 10]


def test_conll_file_read_by_suffix_and_rows_named_by_line(tmp_path: Path) -> None:
    path = tmp_path / "train.conll"
    path.write_text(CONLL)
    task = get_task("token-classification")
    ds = task.read_file(path, where=Where(), split="train")
    prepared = task.prepare({"train": ds}, where=Where())
    assert prepared.splits["train"]["tokens"][1] == ["Peter", "Blackburn"]
    assert prepared.label_names == ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    assert task.read_file(tmp_path / "train.jsonl", where=Where(), split="train") is None  # generic readers

    bad = tmp_path / "bad.conll"
    bad.write_text("Peter B-PER\nBlackburn B-ORG I-PER\n\nParis B-LOC\nis OK O\nnice\n")
    with pytest.raises(DataError, match=r"line 6: 'nice' has a token but no tag"):
        task.read_file(bad, where=Where(file="study.yaml"), split="train")
    bad.write_text("Peter B-PER\n\nParis B-LOC\nis PER\n")  # not BIO, in the sentence starting on line 3
    with pytest.raises(DataError, match=r"train row 2 \(line 3\) has tag 'PER'; tags must be O, B-TYPE or I-TYPE"):
        task.prepare({"train": task.read_file(bad, where=Where(), split="train")}, where=Where())


def test_jsonl_list_columns_with_study_column_names(tmp_path: Path) -> None:
    import datasets

    rows = [{"words": ["Ada", "lives", "in", "Paris"], "labels": ["B-PER", "O", "O", "B-LOC"]},
            {"words": ["Paris"], "labels": ["B-LOC"]}]
    ds = datasets.load_dataset("json", data_files=str(write_jsonl(tmp_path / "t.jsonl", rows)), split="train")
    task = get_task("token-classification", {"tokens_column": "words", "tags_column": "labels"})
    prepared = task.prepare({"train": ds, "validation": ds}, where=Where())
    assert prepared.label_names == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    assert prepared.splits["validation"]["tags"] == [[3, 0, 0, 1], [1]]
    assert prepared.splits["train"].features["tags"].feature.names == prepared.label_names


def test_integer_tags_take_names_from_the_data_or_tag_names() -> None:
    import datasets

    names = ["O", "B-PER", "I-PER"]
    features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                  "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names))})
    hub_like = datasets.Dataset.from_dict({"tokens": [["Ada", "Lovelace", "wrote"]], "ner_tags": [[1, 2, 0]]},
                                          features=features)
    task = get_task("token-classification")
    assert task.prepare({"train": hub_like}, where=Where()).label_names == names
    plain = to_dataset([{"tokens": ["Ada", "wrote"], "ner_tags": [1, 0]}])
    with pytest.raises(DataError, match="train row 1 has integer tags and no tag names"):
        task.prepare({"train": plain}, where=Where())
    named = get_task("token-classification", {"tag_names": names}).prepare({"train": plain}, where=Where())
    assert named.splits["train"]["tags"] == [[1, 0]] and named.label_names == names


def test_bad_rows_are_named() -> None:
    task = get_task("token-classification")
    good = {"tokens": ["Ada", "wrote"], "ner_tags": ["B-PER", "O"]}
    uneven = to_dataset([good, good, {"tokens": ["Ada", "Lovelace", "wrote"], "ner_tags": ["B-PER", "O"]}])
    with pytest.raises(DataError, match=r"study.yaml: dataset.train: train row 4 has 3 tokens but 2 tags"):
        task.prepare({"train": uneven}, where=Where(file="study.yaml", header={"train": 1}))
    unseen = to_dataset([good, {"tokens": ["Paris"], "ner_tags": ["B-LOC"]}])
    with pytest.raises(DataError, match=r"dataset.test: test row 2 has tag 'B-LOC', which train never has"):
        task.prepare({"train": to_dataset([good]), "test": unseen}, where=Where(file="study.yaml"))
    with pytest.raises(DataError, match="has no column 'ner_tags'"):
        task.prepare({"train": to_dataset([{"tokens": ["a"], "tags": ["O"]}])}, where=Where())


@pytest.fixture(scope="module")
def wordpiece(tmp_path_factory: pytest.TempPathFactory):
    """A real WordPiece tokenizer with a hand-written vocabulary, so the pieces are known."""
    from transformers import BertTokenizerFast

    folder = tmp_path_factory.mktemp("wordpiece")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "new", "york", "is", "lon", "##don", "play", "##ing", "-"]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return BertTokenizerFast(vocab=str(folder / "vocab.txt"), do_lower_case=True)


def test_labels_on_first_piece_only(wordpiece) -> None:
    task = get_task("token-classification")
    rows = to_dataset([{"tokens": ["London", "is", "playing", "New", "York", "x-new"],
                        "ner_tags": ["B-LOC", "O", "O", "B-LOC", "I-LOC", "B-MISC"]}])
    prepared = task.prepare({"train": rows}, where=Where())
    names = prepared.label_names  # O, B-LOC, I-LOC, B-MISC, I-MISC
    enc = task.encode_fn(wordpiece, max_length=64, label_names=names)(prepared.splits["train"][:1])
    pieces = wordpiece.convert_ids_to_tokens(enc["input_ids"][0])
    # worked by hand: [CLS] lon ##don is play ##ing new york [UNK] - new [SEP]
    assert pieces == ["[CLS]", "lon", "##don", "is", "play", "##ing", "new", "york", "[UNK]", "-", "new", "[SEP]"]
    assert enc["labels"][0] == [-100, 1, -100, 0, 0, -100, 1, 2, 3, -100, -100, -100]
    assert enc["length"] == [12]
    cut = task.encode_fn(wordpiece, max_length=5, label_names=names)(prepared.splits["train"][:1])
    assert cut["labels"][0] == [-100, 1, -100, 0, -100]  # truncated: [CLS] lon ##don is [SEP]
    assert align_labels([None, 0, 1, 1, None, None], [4, 2]) == [-100, 4, 2, -100, -100, -100]


def test_entity_scores_as_seqeval_computes_them() -> None:
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O"]]
    metrics, per_type = ner_scores(gold, pred)
    # gold entities: PER(0-1), LOC(3), ORG(row 2); predicted: PER(0-1), ORG(3), ORG(row 2): 2 of 3 right
    assert metrics == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "accuracy": 5 / 6})
    assert per_type["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert per_type["ORG"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert per_type["PER"]["f1"] == 1.0


def test_compute_metrics_skips_ignored_positions() -> None:
    from transformers import EvalPrediction

    names = ["O", "B-PER", "I-PER"]
    compute = get_task("token-classification").compute_metrics_fn(names)
    # one row, 5 positions: [CLS] Ada Love ##lace [SEP]; predicted ids 2,1,2,0,0 (the ignored ones do not count)
    logits = np.eye(3)[[[2, 1, 2, 0, 0]]] * 5.0
    labels = np.array([[-100, 1, 2, -100, -100]])
    assert compute(EvalPrediction(logits, labels)) == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "accuracy": 1.0}
    labels = np.array([[-100, 1, 0, -100, -100]])  # gold: "Ada" alone is PER, predicted "Ada Love"
    assert compute(EvalPrediction(logits, labels)) == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "accuracy": 0.5}


def test_pipeline_entities_map_back_to_words() -> None:
    words = ["Grace", "Hopper", "visited", "New", "York"]  # chars: 0-5, 6-12, 13-20, 21-24, 25-29
    grouped = [{"entity_group": "PER", "score": 0.9, "start": 0, "end": 12},
               {"entity_group": "LOC", "score": 0.7, "start": 21, "end": 29}]
    tags, spans = entities_to_tags(words, grouped)
    assert tags == ["B-PER", "I-PER", "O", "B-LOC", "I-LOC"]
    assert spans == [{"entity": "PER", "start": 0, "end": 2, "text": "Grace Hopper", "score": 0.9},
                     {"entity": "LOC", "start": 3, "end": 5, "text": "New York", "score": pytest.approx(0.7)}]
    # ungrouped (aggregation none): a word takes its first piece's tag; a later piece (start 2) does not count
    pieces = [{"entity": "B-PER", "score": 0.8, "start": 0, "end": 2}, {"entity": "B-LOC", "score": 0.8, "start": 2,
                                                                         "end": 5},
              {"entity": "I-PER", "score": 0.6, "start": 6, "end": 12}]
    assert entities_to_tags(words, pieces)[0] == ["B-PER", "I-PER", "O", "O", "O"]


def test_metrics_and_directions() -> None:
    task = get_task("token-classification")
    assert task.default_metric == "f1" and task.metric_direction("f1") == "maximize"
    assert task.metric_direction("loss") == "minimize"
    with pytest.raises(SpecError, match="token-classification has no metric 'pearson'"):
        task.check_objective("pearson")
    task.check_source("hub")  # list columns from the Hub are fine
    with pytest.raises(SpecError, match="dataset.format: format: conll reads local files, but the data source is hub"):
        get_task("token-classification", {"format": "conll"}).check_source("hub")
    meta = task.card_metadata([{"tokens": ["Ada", "wrote"], "tags": [1, 0]}])
    assert meta["pipeline_tag"] == "token-classification" and meta["widget"] == [{"text": "Ada wrote"}]


def test_wikiann_training_lowers_the_loss_and_unseen_scores_match_the_trainer(tmp_path: Path) -> None:
    train, val = shared_rows("wikiann", "train", 320), shared_rows("wikiann", "validation", 80)
    base = tiny_base(tmp_path / "base", [" ".join(r["tokens"]) for r in train], vocab_size=600)
    task = get_task("token-classification", {"aggregation_strategy": "none"})
    prepared = task.prepare({"train": to_dataset(train), "validation": to_dataset(val)}, where=Where())
    trainer, before, after = train_briefly(task, base, prepared, tmp_path / "model", max_steps=40,
                                           max_length=128)
    assert after < 0.8 * before
    # aggregation none maps each word to its first piece's tag: the pipeline scores equal the Trainer's
    result = task.evaluate(str(tmp_path / "model"), prepared.splits["validation"], prepared.label_names,
                           max_length=128)
    trainer_metrics = {k: trainer.last_metrics[f"eval_{k}"] for k in task.metrics}
    assert result["metrics"] == pytest.approx(trainer_metrics)
    assert result["examples"] == 80 and set(result["per_type"]) <= {"LOC", "ORG", "PER"}


def test_saved_model_finds_entities_as_word_spans(tmp_path: Path) -> None:
    people = [("Ada", "Lovelace"), ("Alan", "Turing"), ("Grace", "Hopper"), ("Marie", "Curie")]
    cities = ["London", "Paris", "Berlin", "Rome"]
    rows = []
    for (first, last), city in itertools.product(people, cities):
        rows.append({"tokens": [first, last, "lives", "in", city], "ner_tags": ["B-PER", "I-PER", "O", "O", "B-LOC"]})
        rows.append({"tokens": [city, "welcomed", first, last], "ner_tags": ["B-LOC", "O", "B-PER", "I-PER"]})
    base = tiny_base(tmp_path / "base", [" ".join(r["tokens"]) for r in rows], vocab_size=100)
    task = get_task("token-classification")
    prepared = task.prepare({"train": to_dataset(rows), "validation": to_dataset(rows[:8])}, where=Where())
    train_briefly(task, base, prepared, tmp_path / "model", max_steps=60, learning_rate=2e-2)

    from transformers import pipeline

    plain = pipeline("token-classification", model=str(tmp_path / "model"), aggregation_strategy="first")
    assert [(e["entity_group"], e["start"], e["end"]) for e in plain("Grace Hopper lives in Rome")] == [
        ("PER", 0, 12), ("LOC", 22, 26)]
    out = task.predict(str(tmp_path / "model"),
                       [{"tokens": ["Paris", "welcomed", "Alan", "Turing"], "ner_tags": ["B-LOC", "O", "B-PER", "I-PER"]},
                        {"text": "Marie Curie lives in Berlin"}], max_length=32)
    assert [(e["entity"], e["start"], e["end"], e["text"]) for e in out["rows"][0]["entities"]] == [
        ("LOC", 0, 1, "Paris"), ("PER", 2, 4, "Alan Turing")]
    assert out["rows"][1]["predicted"] == ["B-PER", "I-PER", "O", "O", "B-LOC"]
    assert "metrics" not in out  # the second row has no tags: no gold for the file
    scored = task.predict(str(tmp_path / "model"), [
        {"tokens": ["Paris", "welcomed", "Alan", "Turing"], "ner_tags": ["B-LOC", "O", "B-PER", "I-PER"]}],
        max_length=32)
    assert scored["metrics"]["f1"] == 1.0 and json.dumps(scored["rows"])  # rows are JSON-ready
