"""The study file: schema, safe loading and cross-field checks."""

from hpo.spec.loader import LoadedStudy, load_study
from hpo.spec.schema import StudySpec

__all__ = ["LoadedStudy", "StudySpec", "load_study"]
