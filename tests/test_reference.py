"""The README's study file reference is the schema's own, so the two never drift apart."""

from conftest import REPO

from hpo.spec import reference


def test_readme_reference_matches_the_schema() -> None:
    text = (REPO / "README.md").read_text()
    start, end = text.index(reference.BEGIN) + len(reference.BEGIN), text.index(reference.END)
    assert text[start:end].strip() == reference.markdown().strip(), "run: python -m hpo.spec.reference --write README.md"


def test_every_field_has_a_description() -> None:
    for title, model in reference._sections(reference.StudySpec):
        for name, field in model.model_fields.items():
            assert field.description, f"{title}.{name} has no description"
