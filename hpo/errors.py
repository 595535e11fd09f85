"""Every error hpo raises on purpose. The CLI maps each to one line and an exit code."""

from __future__ import annotations


class HpoError(Exception):
    """Base class: a message a person can act on, and the exit code the CLI uses."""

    exit_code = 1
    hint: str | None = None
    file: str | None = None
    key: str | None = None  # the study-file key this kind of error is about, when the message lacks one

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    def one_line(self, *, study_file: str | None = None) -> str:
        """The message on one line; errors raised without a file get `study_file` (and their key) in front."""
        text = " ".join(str(self).split())
        if study_file and self.file is None:
            where = ": ".join(p for p in (study_file, None if isinstance(self, SpecError) else self.key) if p)
            text = f"{where}: {text}"
        return f"{text} ({self.hint})" if self.hint else text


class SpecError(HpoError):
    """The study file is invalid: names the file, the key path, what is wrong and what is allowed."""

    exit_code = 2

    def __init__(self, message: str, *, file: str | None = None, path: str | None = None,
                 hint: str | None = None) -> None:
        where = ": ".join(p for p in (file, path) if p)
        super().__init__(f"{where}: {message}" if where else message, hint=hint)
        self.file, self.path = file, path


class DataError(SpecError):
    """The data the study file points at cannot be used (missing files, columns, labels)."""


class StorageError(HpoError):
    """The study storage cannot be reached or used."""

    exit_code = 2
    key = "storage"


class ConcurrencyError(StorageError):
    """Another process holds what this one needs (a SQLite study, the final stage)."""

    exit_code = 3


class HubError(HpoError):
    """A push to or download from the Hub failed; what is on disk is untouched."""

    exit_code = 4
    key = "hub"


class StageError(HpoError):
    """A stage was asked for before what it needs exists (e.g. push before the final model)."""

    exit_code = 2


class DeviceError(HpoError):
    """A device option cannot be met on this machine (--device, --workers, a distributed launch)."""

    exit_code = 2


class SearchError(HpoError):
    """The search stopped: its trials keep failing with an error (the message quotes it)."""

    exit_code = 1
