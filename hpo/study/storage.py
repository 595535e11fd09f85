"""Storage URLs: parsing, redaction, and the Optuna storage object with heartbeats and retries."""

from __future__ import annotations

import fcntl
import os
import time
import warnings
from pathlib import Path
from typing import IO, Any

from hpo.errors import ConcurrencyError, SpecError, StorageError
from hpo.study.retry import RetryStaleTrial

KNOWN_BACKENDS = ("sqlite", "postgresql", "mysql")


def parse_storage_url(url: str, *, file: str | None = None) -> Any:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise SpecError(f"malformed storage URL {redact(url)!r}", file=file, path="storage",
                        hint="use e.g. sqlite:///study.db or postgresql+psycopg://user@host/db") from None
    if parsed.get_backend_name() not in KNOWN_BACKENDS:
        raise SpecError(f"unsupported storage backend {parsed.get_backend_name()!r}", file=file, path="storage",
                        hint=f"use one of {', '.join(KNOWN_BACKENDS)}")
    return parsed


def redact(url: str) -> str:
    """The URL with any password replaced by ***, safe to print, log or store."""
    try:
        from sqlalchemy.engine import make_url
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable storage URL>"


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def sqlite_path(url: str) -> Path | None:
    from sqlalchemy.engine import make_url
    db = make_url(url).database
    return Path(db) if db and db != ":memory:" else None


class SqliteLock:
    """One process per SQLite study: SQLite has no safe concurrent writers over many processes.

    Holding the lock also proves that any RUNNING trial in the file belongs to a dead process. The lock file
    (and any folder made for it) is removed on exit, so a run that fails early leaves nothing behind; a
    process that locked a file removed meanwhile sees its inode gone and locks the new file instead.
    """

    def __init__(self, url: str) -> None:
        db = sqlite_path(url)
        self.path = db.with_name(db.name + ".lock") if db else None
        self._fh: IO[str] | None = None
        self._made: list[Path] = []

    def __enter__(self) -> "SqliteLock":
        if self.path is None:
            return self
        missing = [p for p in [self.path.parent, *self.path.parent.parents] if not p.exists()]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._made = missing  # deepest first
        while True:
            fh = open(self.path, "a+")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                raise ConcurrencyError(
                    f"another hpo process is using the SQLite study {self.path.with_suffix('')}",
                    hint="SQLite takes one process at a time: wait for it, or use a PostgreSQL storage "
                         "(postgresql+psycopg://...) to run several workers") from None
            if _same_file(fh, self.path):
                self._fh = fh
                return self
            fh.close()  # its holder removed it on exit after we opened it: lock the current file

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            assert self.path is not None
            self.path.unlink(missing_ok=True)  # while still locked: see the class docstring
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
            self._remove_made_folders()

    def _remove_made_folders(self) -> None:
        for folder in self._made:
            try:
                folder.rmdir()  # only when empty: a store or anything else written there stays
            except OSError:
                break
        self._made = []


def _same_file(fh: IO[str], path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fh.fileno()), os.stat(path))
    except FileNotFoundError:
        return False


def make_storage(url: str, *, heartbeat_interval: int | None = None, grace_period: int | None = None,
                 max_retries: int = 0) -> Any:
    """An Optuna RDB storage; with a heartbeat, stale trials are failed and re-queued up to max_retries."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    if is_sqlite(url) and (db := sqlite_path(url)) is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {"engine_kwargs": _engine_kwargs(url)}
    with warnings.catch_warnings():  # heartbeats are marked experimental but are Optuna's fault tolerance
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if heartbeat_interval:
            kwargs.update(heartbeat_interval=heartbeat_interval,
                          grace_period=grace_period or 3 * heartbeat_interval,
                          heartbeat_stale_trial_callback=RetryStaleTrial(max_retries) if max_retries else None)
        for attempt in range(3):
            try:
                return optuna.storages.RDBStorage(url, **kwargs)
            except (SQLAlchemyError, OSError) as e:
                reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
                # Processes opening a new store at once race to create its tables; the loser retries.
                if not any(m in reason for m in _CREATION_RACE) or attempt == 2:
                    break
                time.sleep(0.2 * (attempt + 1))
        raise StorageError(f"cannot open storage {redact(url)}: {_scrub(reason, url)}",
                           hint="check that the database server is running and the URL is right")


_CREATION_RACE = ("already exists", "UNIQUE constraint failed", "duplicate key")


def _engine_kwargs(url: str) -> dict[str, Any]:
    if is_sqlite(url):
        return {"connect_args": {"timeout": 60}}
    if url.startswith("postgresql"):
        return {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    return {"pool_pre_ping": True}


def _scrub(text: str, url: str) -> str:
    from sqlalchemy.engine import make_url
    try:
        pw = make_url(url).password
    except Exception:
        return text
    return text.replace(pw, "***") if pw else text

