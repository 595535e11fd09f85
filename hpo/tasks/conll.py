"""CoNLL-style files: one token per line with its tag in the last column, a blank line between sentences.

`-DOCSTART-` lines (document boundaries in CoNLL-2003) are skipped. Columns are split on whitespace, so
tab- and space-separated files both read; the token is the first column, the tag the last.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hpo.errors import DataError

CONLL_SUFFIXES = {".conll", ".conllu", ".iob", ".iob2", ".bio", ".txt", ".tsv"}


def parse_conll(text: str, *, name: str = "file") -> tuple[list[list[str]], list[list[str]], list[int]]:
    """Sentences' tokens and tags, and the line (1-based) each sentence starts on."""
    tokens: list[list[str]] = []
    tags: list[list[str]] = []
    lines: list[int] = []
    words: list[str] = []
    labels: list[str] = []
    start = 0
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0] == "-DOCSTART-":
            if words:
                tokens.append(words)
                tags.append(labels)
                lines.append(start)
            words, labels = [], []
            continue
        if len(fields) < 2:
            raise DataError(f"{name} line {number}: {line.strip()!r} has a token but no tag",
                            hint="give each token its tag in the last column (token TAB tag)")
        if not words:
            start = number
        words.append(fields[0])
        labels.append(fields[-1])
    if words:
        tokens.append(words)
        tags.append(labels)
        lines.append(start)
    return tokens, tags, lines


def read_conll(path: Path, *, tokens_column: str, tags_column: str, name: str | None = None) -> Any:
    """A Dataset with the tokens and tags columns (named as the study names them) and `_line`."""
    import datasets

    name = name or str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as e:
        raise DataError(f"cannot read {name}: {e.strerror or e}", hint="check the path") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{name} is not UTF-8 (byte {e.start})", hint="re-save the file as UTF-8") from None
    tokens, tags, lines = parse_conll(text, name=name)
    if not tokens:
        raise DataError(f"{name} has no sentences", hint="one token and its tag per line, blank line between "
                                                         "sentences")
    features = datasets.Features({tokens_column: datasets.Sequence(datasets.Value("string")),
                                  tags_column: datasets.Sequence(datasets.Value("string")),
                                  "_line": datasets.Value("int64")})
    return datasets.Dataset.from_dict({tokens_column: tokens, tags_column: tags, "_line": lines},
                                      features=features)

