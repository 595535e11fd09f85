"""Random study documents through the whole loader: it accepts them or raises an `HpoError`, nothing else;
and mutations known to make the study invalid are refused with a `SpecError` that names the broken key."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpo.errors import HpoError, SpecError
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


def _set(doc: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for p in parents:
        doc = doc[p]
    doc[last] = value


NOT_A_FIELD = st.from_regex(r"[a-z][a-z_]{0,14}", fullmatch=True)
# (key path the error must name, values that are invalid there), each known to break the study on its own
BREAKERS: list[tuple[str, st.SearchStrategy[Any]]] = [
    ("name", st.text(min_size=1, max_size=12).filter(lambda t: any(c in t for c in " /\\:*?")) | st.just("")),
    ("model", st.just("") | st.just([]) | st.integers()),
    ("search.n_trials", st.integers(max_value=0) | st.integers(min_value=100_001)
     | st.from_regex(r"[a-z]{1,5}", fullmatch=True)),
    ("search.timeout", st.floats(max_value=0) | st.just(float("inf"))),
    ("search.sampler.name", st.text(max_size=10).filter(lambda t: t not in ("tpe", "random", "cmaes", "gp", "grid",
                                                                               "nsga2"))),
    ("search.pruner.percentile", st.floats(min_value=100, exclude_min=True, allow_infinity=False)),
    ("objective.direction", st.text(max_size=10).filter(lambda t: t not in ("maximize", "minimize"))),
    ("dataset.max_length", st.integers(max_value=7) | st.integers(min_value=8193)),
    ("dataset.validation_fraction", st.floats(max_value=0) | st.floats(min_value=1)),
    ("dataset.text_column", st.just([]) | st.lists(st.sampled_from(["a", "b"]), min_size=2).filter(
        lambda cols: len(set(cols)) < len(cols)) | st.just("label")),
    ("dataset.label_names", st.lists(st.sampled_from(["x", "y"]), min_size=3) | st.integers()),
    ("search.space.learning_rate", st.floats(min_value=2e-3, max_value=1e3)),  # low above high
    ("hub.repo_id", st.text(max_size=20).filter(lambda t: "/" not in t)),
    ("final.strategy", st.text(max_size=10).filter(lambda t: t not in ("reuse", "retrain"))),
]
SECTIONS = ["", "dataset", "search", "search.sampler", "search.pruner", "objective", "final", "hub"]


@SETTINGS
@given(data=st.data())
def test_invalid_mutations_are_refused_naming_the_key(data: st.DataObject) -> None:
    doc = copy.deepcopy(VALID)
    if data.draw(st.booleans()):
        key, values = data.draw(st.sampled_from(BREAKERS))
        value = data.draw(values)
        if key == "search.space.learning_rate":
            _set(doc, "search.space.learning_rate.low", value)
        else:
            _set(doc, key, value)
        if key == "dataset.text_column" and value == "label":
            key = "dataset.label_column"  # the label column also named as the text
    else:  # an unknown key in any section, or a training key that is no TrainingArguments field
        section = data.draw(st.sampled_from([*SECTIONS, "training"]))
        name = data.draw(NOT_A_FIELD)
        node = doc
        for part in filter(None, section.split(".")):
            node = node[part]
        assume_unknown = name not in node and name not in _fields(section)
        if not assume_unknown:
            return
        node[name] = 1
        key = f"{section}.{name}".lstrip(".")
    path = FOLDER / "study.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    try:
        load_study(path)
    except SpecError as e:
        line = e.one_line()
        assert line.startswith(f"{path}: {key}:") or line.startswith(f"{path}: {key} "), (key, line)
    else:
        raise AssertionError(f"accepted an invalid {key}: {doc}")


def _fields(section: str) -> set[str]:
    from hpo.spec.checks import _model_at, training_fields

    if section == "training":
        return set(training_fields())
    model = _model_at(tuple(filter(None, section.split("."))))
    return set(model.model_fields)


def test_the_valid_study_loads() -> None:
    load(VALID)  # the mutations start from a study that loads
    assert load_study(FOLDER / "study.yaml").spec.name == "fuzz"
