"""Data: raw sources, checked and labelled splits, cached tokenization."""

from hpo.data.prepare import Splits, prepare_splits
from hpo.data.tokenize import tokenize_splits

__all__ = ["Splits", "prepare_splits", "tokenize_splits"]
