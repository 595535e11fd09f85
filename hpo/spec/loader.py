"""Read a study file safely and turn pydantic's findings into one-line `SpecError`s.

Precedence for settings that can come from several places, stated once:
command line > environment (HPO_STORAGE, HPO_OUTPUT_DIR) > study file > default.
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
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class LoadedStudy:
    """A validated spec plus where it lives: what every stage receives."""

    def __init__(self, spec: StudySpec, paths: ResolvedPaths) -> None:
        self.spec, self.paths = spec, paths

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
            raise SpecError(f"study file is {size} bytes; the limit is {MAX_BYTES}", file=shown)
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SpecError("no such study file", file=shown, hint="check the path") from None
    except OSError as e:  # symlink loops, permissions
        raise SpecError(f"cannot read the study file: {e.strerror or e}", file=shown) from None
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
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SpecError(f"{where}malformed YAML: {problem}", file=shown,
                        hint="fix the YAML syntax") from None
    if not isinstance(doc, dict):
        kind = "empty" if doc is None else type(doc).__name__
        raise SpecError(f"the study file must be a mapping of keys, got {kind}", file=shown,
                        hint="start with 'name: ...', 'model: ...', 'dataset: ...'")
    return doc


def format_validation_error(err: ValidationError, shown: str) -> SpecError:
    first = err.errors()[0]
    path = ".".join(str(p) for p in first["loc"] if not str(p).startswith("function-after"))
    # drop the discriminator tag pydantic inserts in unions ("space.lr.float.low" -> "space.lr.low")
    path = re.sub(r"\.(float|int|categorical|str|list\[str\])(?=\.|$)", "", path)
    kind, msg = first["type"], first["msg"].removeprefix("Value error, ")
    if kind == "extra_forbidden":
        from hpo.spec.checks import suggest_key
        msg = f"unknown key{suggest_key(first['loc'])}"
    elif kind in ("literal_error", "union_tag_invalid"):
        msg = f"{msg} (got {first.get('input')!r})"
    elif kind == "missing":
        msg = "required key is missing"
    return SpecError(msg, file=shown, path=path or None)


def load_study(path: str | os.PathLike[str], *, storage: str | None = None,
               output_dir: str | None = None) -> LoadedStudy:
    """Load and fully validate a study file. Raises `SpecError` with one line for any problem."""
    from hpo.spec import checks

    study_file = Path(path)
    shown = str(study_file)
    doc = read_document(study_file)
    try:
        spec = StudySpec.model_validate(doc)
    except ValidationError as e:
        raise format_validation_error(e, shown) from None
    base = study_file.resolve().parent
    storage_url = storage or os.environ.get("HPO_STORAGE") or spec.storage
    storage_url = expand_env(storage_url, shown) if storage_url else f"sqlite:///{base / (spec.name + '.db')}"
    out = output_dir or os.environ.get("HPO_OUTPUT_DIR") or spec.output_dir or f"runs/{spec.name}"
    out_path = Path(os.path.expanduser(out))
    paths = ResolvedPaths(study_file=study_file, base_dir=base,
                          output_dir=out_path if out_path.is_absolute() else base / out_path,
                          storage_url=storage_url)
    loaded = LoadedStudy(spec, paths)
    checks.run_all(loaded)
    return loaded


def expand_env(value: str, shown: str) -> str:
    """`${VAR}` in the storage URL comes from the environment, so passwords stay out of files."""
    def sub(m: re.Match[str]) -> str:
        if m.group(1) not in os.environ:
            raise SpecError(f"storage refers to ${{{m.group(1)}}} but it is not set", file=shown,
                            path="storage", hint=f"export {m.group(1)}=...")
        return os.environ[m.group(1)]
    return _ENV_REF.sub(sub, value)
