"""Read a study file safely and turn pydantic's findings into one-line `SpecError`s.

Precedence for settings that can come from several places, stated once:
command line > environment (HPO_STORAGE, HPO_OUTPUT_DIR, HPO_BUDGET) > study file > default.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from hpo.errors import SpecError
from hpo.spec.schema import ResolvedPaths, StudySpec

MAX_BYTES = 1_000_000
MAX_ALIASES = 100
MAX_NODES = 100_000
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class LoadedStudy:
    """A validated spec plus where it lives: what every stage receives."""

    def __init__(self, spec: StudySpec, paths: ResolvedPaths) -> None:
        self.spec, self.paths = spec, paths
        self._task: Any = None

    @property
    def task(self) -> Any:
        """The study's Task (hpo/tasks): everything that differs between tasks goes through it."""
        if self._task is None:
            from hpo.tasks import study_task

            self._task = study_task(self.spec)
        return self._task

    @property
    def file(self) -> str:
        return str(self.paths.study_file)

    def resolve(self, given: str) -> Path:
        """A path from the study file, relative to the study file's folder."""
        p = Path(os.path.expanduser(given))
        return p if p.is_absolute() else self.paths.base_dir / p


def read_document(path: Path) -> dict[str, Any]:
    shown = str(path)
    try:
        if path.is_dir():
            raise SpecError("is a directory, not a study file", file=shown, hint="pass the .yaml file inside it")
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise SpecError(f"study file is {size} bytes; the limit is {MAX_BYTES}", file=shown,
                            hint="a study file is a few dozen lines; put data in data files")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SpecError("no such study file", file=shown, hint="check the path") from None
    except OSError as e:  # symlink loops, permissions
        raise SpecError(f"cannot read the study file: {e.strerror or e}", file=shown,
                        hint="check the path, its links and its permissions") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(f"not UTF-8 text (byte {e.start})", file=shown, hint="save the file as UTF-8") from None
    return parse_yaml(text, shown)


def parse_yaml(text: str, shown: str) -> dict[str, Any]:
    try:
        aliases = sum(isinstance(ev, yaml.AliasEvent) for ev in yaml.parse(text, Loader=yaml.SafeLoader))
        if aliases > MAX_ALIASES:
            raise SpecError(f"{aliases} YAML aliases; at most {MAX_ALIASES} are allowed", file=shown,
                            hint="write the values out instead of referencing anchors")
        doc = yaml.safe_load(text)
    except yaml.constructor.ConstructorError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise SpecError(f"{where}YAML tag not allowed: {e.problem}", file=shown,
                        hint="hpo reads plain data only; remove the '!!' tag") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SpecError(f"{where}malformed YAML: {problem}", file=shown,
                        hint="fix the YAML syntax") from None
    nodes = expanded_size(doc, shown)
    if nodes > MAX_NODES:
        raise SpecError(f"the document expands to {nodes} values; at most {MAX_NODES} are allowed", file=shown,
                        hint="write the values out instead of nesting anchors")
    if not isinstance(doc, dict):
        kind = "empty" if doc is None else type(doc).__name__
        raise SpecError(f"the study file must be a mapping of keys, got {kind}", file=shown,
                        hint="start with 'name: ...', 'model: ...', 'dataset: ...'")
    return doc


def expanded_size(doc: Any, shown: str) -> int:
    """Values in `doc` with every alias expanded (a few nested anchors make billions); recursion is refused."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Any) -> int:
        if not isinstance(node, (dict, list)):
            return 1
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in active:
            raise SpecError("a YAML anchor refers to itself", file=shown, hint="remove the recursive alias")
        active.add(id(node))
        children = [*node.keys(), *node.values()] if isinstance(node, dict) else node
        total = 1 + sum(size(c) for c in children)
        active.discard(id(node))
        sizes[id(node)] = total
        return total

    return size(doc)


def format_validation_error(err: ValidationError, shown: str) -> SpecError:
    errors = err.errors()
    # an unknown key explains a "missing" one next to it (a typo): report it first
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    path = ".".join(str(p) for p in first["loc"] if not str(p).startswith("function-after"))
    # drop the discriminator tag pydantic inserts in unions ("space.lr.float.low" -> "space.lr.low")
    path = re.sub(r"\.(float|int|bool|none|categorical|str|list\[str\])(?=\.|$)", "", path)
    kind, msg = first["type"], first["msg"].removeprefix("Value error, ")
    from hpo.spec.checks import describe_key, suggest_key

    about = describe_key(first["loc"])
    hint = None
    if kind == "extra_forbidden":
        msg = f"unknown key{suggest_key(first['loc'])}"
        hint = "remove it or fix its spelling" if "did you mean" not in msg else None
    elif kind in ("literal_error", "union_tag_invalid"):
        msg = f"{msg} (got {_short(first.get('input'))})"
    elif kind == "missing":
        msg = "required key is missing"
        hint = f"add it: {about}" if about else "add it"
    elif kind != "value_error":  # pydantic's wording says what is allowed; show what was given
        hint = f"got {_short(first.get('input'))}" + (f"; {about}" if about else "")
    return SpecError(msg, file=shown, path=path or None, hint=hint)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def load_study(path: str | os.PathLike[str], *, storage: str | None = None,
               output_dir: str | None = None, budget: str | None = None, read_only: bool = False) -> LoadedStudy:
    """Load and fully validate a study file (read_only: all but the training checks, for commands that
    train nothing). Raises `SpecError` with one line for any problem."""
    from hpo.spec import checks

    study_file = Path(path)
    shown = str(study_file)
    doc = read_document(study_file)
    try:
        spec = StudySpec.model_validate(doc)
    except ValidationError as e:
        raise format_validation_error(e, shown) from None
    spec = override_budget(spec, budget)
    base = study_file.resolve().parent
    storage_url = storage or os.environ.get("HPO_STORAGE") or spec.storage
    storage_url = expand_env(storage_url, shown) if storage_url else f"sqlite:///{base / (spec.name + '.db')}"
    out = output_dir or os.environ.get("HPO_OUTPUT_DIR") or spec.output_dir or f"runs/{spec.name}"
    out_path = Path(os.path.expanduser(out))
    paths = ResolvedPaths(study_file=study_file, base_dir=base,
                          output_dir=out_path if out_path.is_absolute() else base / out_path,
                          storage_url=storage_url)
    loaded = LoadedStudy(spec, paths)
    checks.run_all(loaded, read_only=read_only)
    return loaded


def override_budget(spec: StudySpec, given: str | None) -> StudySpec:
    """`--budget` (or HPO_BUDGET) replaces search.budget; a bad value is named by where it came from."""
    from hpo.spec.duration import parse_duration

    where = ("command line", "--budget") if given else ("environment", "HPO_BUDGET")
    raw = given or os.environ.get("HPO_BUDGET")
    if not raw:
        return spec
    try:
        seconds = parse_duration(raw)
    except ValueError as e:
        raise SpecError(str(e), file=where[0], path=where[1]) from None
    return spec.model_copy(update={"search": spec.search.model_copy(update={"budget": seconds})})


def expand_env(value: str, shown: str) -> str:
    """`${VAR}` in the storage URL comes from the environment, so passwords stay out of files."""
    def sub(m: re.Match[str]) -> str:
        if m.group(1) not in os.environ:
            raise SpecError(f"storage refers to ${{{m.group(1)}}} but it is not set", file=shown,
                            path="storage", hint=f"export {m.group(1)}=...")
        return os.environ[m.group(1)]
    return _ENV_REF.sub(sub, value)
