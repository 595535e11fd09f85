"""Random study documents through the whole loader: it accepts them or raises an `HpoError`, nothing else."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpo.errors import HpoError
from hpo.spec.loader import load_study, parse_yaml

FOLDER = Path(tempfile.mkdtemp(prefix="hpo-fuzz-"))
(FOLDER / "train.csv").write_text("text,label\na,x\nb,y\n")

VALID: dict[str, Any] = {
    "name": "fuzz",
    "model": "sentence-transformers/all-MiniLM-L6-v2",
    "dataset": {"train": "train.csv", "text_column": "text", "label_column": "label", "max_length": 64},
    "objective": {"metric": "f1", "direction": "maximize"},
    "search": {"n_trials": 3, "sampler": {"name": "tpe", "seed": 1}, "pruner": {"name": "median"},
               "space": {"learning_rate": {"type": "float", "low": 1e-5, "high": 1e-3, "log": True},
                         "num_train_epochs": {"type": "int", "low": 1, "high": 3},
                         "per_device_train_batch_size": {"type": "categorical", "choices": [8, 16]}}},
    "training": {"weight_decay": 0.01, "seed": 0},
    "final": {"strategy": "retrain"},
    "hub": {"repo_id": "user/model"},
}
KEYS = st.sampled_from(["name", "model", "dataset", "search", "space", "type", "low", "high", "log", "step",
                        "choices", "training", "learning_rate", "warmup_steps", "storage", "output_dir", "hub",
                        "repo_id", "sampler", "pruner", "metric", "n_trials", "train", "seed", "x"]) | st.text(max_size=8)
SCALARS = (st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True)
           | st.text(max_size=20) | st.sampled_from(["float", "int", "categorical", "grid", "1e-5", "${X}",
                                                    "sqlite://", "postgresql://u:p@h/d", "../..", "~", "/"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
                      max_leaves=20)


def load(doc: Any) -> None:
    path = FOLDER / "study.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    try:
        load_study(path)
    except HpoError as e:
        assert e.one_line(), "an error needs a message"


def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += paths(v, prefix + (k,))
    return out


SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(doc=VALUES)
def test_random_documents(doc: Any) -> None:
    load(doc)


@SETTINGS
@given(data=st.data())
def test_mutations_of_a_valid_study(data: st.DataObject) -> None:
    doc = copy.deepcopy(VALID)
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.sampled_from(paths(doc)[1:]))
        parent = doc
        for k in where[:-1]:
            parent = parent[k]
        action = data.draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[where[-1]] = data.draw(VALUES)
        elif action == "delete":
            del parent[where[-1]]
        elif isinstance(parent.get(where[-1]), dict):
            parent[where[-1]][data.draw(KEYS)] = data.draw(VALUES)
    load(doc)


@SETTINGS
@given(text=st.text(max_size=200) | st.sampled_from(["&a [*a]", "a: !!binary xx", "? [a]\n: b", "%YAML 9.9\n---",
                                                     "a: &x 1\nb: *y", "{", "- - - -", "!!set {a}"]))
def test_random_yaml_text(text: str) -> None:
    try:
        doc = parse_yaml(text, "fuzz.yaml")
    except HpoError:
        return
    assert isinstance(doc, dict)


def test_the_valid_study_loads() -> None:
    load(VALID)  # the mutations start from a study that loads
    assert load_study(FOLDER / "study.yaml").spec.name == "fuzz"
