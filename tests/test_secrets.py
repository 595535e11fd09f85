"""Secrets stay secret: an HF token and a database password never reach output, files, the store or reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from conftest import run_cli
from hpo.study.storage import redact

TOKEN = "hf_SECRETtokenDoNotLeak0123456789abcdef"


def test_redact_hides_passwords() -> None:
    assert redact("postgresql+psycopg://hpo:pa55word@db:5432/s") == "postgresql+psycopg://hpo:***@db:5432/s"
    assert "pa55" not in redact("mysql://u:pa55@h/d")
    assert redact("sqlite:///x.db") == "sqlite:///x.db"
    assert "pa55" not in redact("postgresql://u:pa55@[bad")


def _secret_storage(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str | None]:
    """A password-bearing PostgreSQL URL when the machine has a server, else SQLite (the token is still tested)."""
    from sqlalchemy.engine import make_url

    try:
        url = request.getfixturevalue("pg_server").create_db("secrets")
    except (pytest.FixtureLookupError, RuntimeError, pytest.skip.Exception):
        return f"sqlite:///{tmp_path / 'secret.db'}", None
    return url, make_url(url).password


def _stored_text(url: str) -> str:
    """Everything the store holds about the study, as text: study and trial attributes, params, names."""
    import optuna

    storage = optuna.storages.RDBStorage(url)
    parts = []
    for summary in optuna.get_all_study_summaries(storage):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        parts += [summary.study_name, repr(study.user_attrs), repr(storage.get_study_system_attrs(study._study_id))]
        for t in study.get_trials(deepcopy=False):
            parts += [repr(t.params), repr(t.user_attrs), repr(t.system_attrs), repr(t.intermediate_values)]
    return "\n".join(parts)


@pytest.mark.slow
def test_a_full_run_leaks_nothing(request: pytest.FixtureRequest, tmp_path: Path,
                                  make_study: Callable[..., Path]) -> None:
    url, password = _secret_storage(request, tmp_path)
    secrets = [TOKEN] + ([password] if password else [])
    study = make_study(search__n_trials=2, training={"num_train_epochs": 1, "seed": 0})
    env = {"HF_TOKEN": TOKEN, "HUGGING_FACE_HUB_TOKEN": TOKEN, "HPO_STORAGE": url}
    runs = [run_cli("run", str(study), env=env),
            run_cli("status", str(study), env=env), run_cli("best", str(study), env=env),
            run_cli("status", str(study), "--storage", url.replace("@127.0.0.1:", "@127.0.0.1:1"), env=env)]
    assert runs[0].returncode == 0, runs[0].stderr[-2000:]
    printed = "\n".join(r.stdout + r.stderr for r in runs)
    written = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.name != study.name}
    assert any(p.name == "results.json" for p in written), sorted(map(str, written))
    for secret in secrets:
        assert secret not in printed
        leaks = [str(p) for p, data in written.items() if secret.encode() in data]
        assert leaks == [], f"secret found in {leaks}"
        assert secret not in _stored_text(url)
    if password:
        assert "***" in printed  # the URL was shown, redacted
