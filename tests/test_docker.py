"""The container files: docker/Dockerfile, docker/compose.yaml and .dockerignore, checked without an engine."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import typer
import yaml

from hpo.cli import app

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
DOCKERFILE = DOCKER / "Dockerfile"
HPO_SERVICES = ("coordinator", "worker", "dashboard")
STUDY = "/study/study.yaml"
# ${VAR} or ${VAR:?message} / ${VAR?message}: taken from the caller, with no default value.
REQUIRED_VAR = re.compile(r"^\$\{(?P<name>[A-Z_][A-Z0-9_]*)(?::?\?[^}]*)?\}$")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def final(name: str) -> str:
    found = [args for word, args in instructions() if word == name]
    assert found, f"Dockerfile has no {name}"
    return found[-1]


def pyproject() -> dict:
    path = ROOT / "pyproject.toml"
    if not path.exists():
        pytest.skip("pyproject.toml is not there yet")
    return tomllib.loads(path.read_text())


# -- compose.yaml ---------------------------------------------------------------------------------

def test_compose_names_the_services(services: dict) -> None:
    assert set(services) == {"db", "coordinator", "worker", "dashboard"}


@pytest.mark.parametrize("name", HPO_SERVICES)
def test_hpo_services_use_the_image_built_from_the_dockerfile(services: dict, name: str) -> None:
    build = services[name]["build"]
    assert (DOCKER / build["context"]).resolve() == ROOT
    assert (ROOT / build["dockerfile"]).resolve() == DOCKERFILE
    assert services[name]["image"] == services["coordinator"]["image"]


@pytest.mark.parametrize(("name", "subcommand"), [("coordinator", "run"), ("worker", "worker")])
def test_hpo_services_run_a_subcommand_on_the_study(services: dict, name: str, subcommand: str) -> None:
    service = services[name]
    assert "entrypoint" not in service, "the image's ENTRYPOINT (hpo) must stay"
    command = service["command"]
    assert isinstance(command, list)
    assert command[0] == subcommand and subcommand in typer.main.get_command(app).commands
    assert command[1] == STUDY


@pytest.mark.parametrize("name", HPO_SERVICES)
def test_study_is_mounted_read_only_and_results_go_to_a_volume(compose: dict, services: dict, name: str) -> None:
    service = services[name]
    mounts = {}  # target -> (source, mode); the source may hold ${VAR:-default}
    for volume in service["volumes"]:
        source, target, mode = re.fullmatch(r"(.+):(/[^:]*)(?::(ro|rw))?", volume).groups()
        mounts[target] = (source, mode)
    assert mounts["/study"][1] == "ro"
    assert service["environment"]["HPO_OUTPUT_DIR"] == "/runs"
    assert mounts["/runs"][0] in compose["volumes"]
    hf_home = re.search(r"HF_HOME=(\S+)", final("ENV")).group(1)
    assert mounts[hf_home][0] in compose["volumes"]


def test_services_share_one_storage_url_without_password(services: dict) -> None:
    urls = {services[name]["environment"]["HPO_STORAGE"] for name in HPO_SERVICES}
    assert len(urls) == 1
    url = urls.pop()
    parts = urlsplit(url)
    assert parts.scheme == "postgresql+psycopg"
    assert parts.hostname == "db" and parts.username and parts.password is None
    assert url in services["dashboard"]["command"], "the dashboard reads the same storage"


def test_secrets_come_from_the_callers_environment(compose: dict, services: dict) -> None:
    assert REQUIRED_VAR.match(services["db"]["environment"]["POSTGRES_PASSWORD"]).group("name") == "POSTGRES_PASSWORD"
    for name in HPO_SERVICES:
        env = services[name]["environment"]
        assert REQUIRED_VAR.match(env["PGPASSWORD"]).group("name") == "POSTGRES_PASSWORD"
        token = env.get("HF_TOKEN")
        assert token is None or REQUIRED_VAR.match(token).group("name") == "HF_TOKEN"
    for service in services.values():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|TOKEN|SECRET", key):
                assert value is None or REQUIRED_VAR.match(value), f"{key} must come from ${{...}}, not a literal"


def test_db_is_healthchecked_and_awaited(services: dict) -> None:
    test = services["db"]["healthcheck"]["test"]
    assert "pg_isready" in " ".join(test if isinstance(test, list) else [test])
    for name in HPO_SERVICES:
        assert services[name]["depends_on"]["db"]["condition"] == "service_healthy"


def test_workers_are_replicated(services: dict) -> None:
    assert re.fullmatch(r"\$\{WORKERS:-\d+\}", str(services["worker"]["deploy"]["replicas"]))


def test_ports_are_published_on_localhost_only(services: dict) -> None:
    assert services["dashboard"]["ports"] == ["127.0.0.1:8080:8080"]
    assert "--port" in services["dashboard"]["command"]
    for service in services.values():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:")


# -- Dockerfile -----------------------------------------------------------------------------------

def test_dockerfile_image_shape() -> None:
    assert final("FROM") == "python:3.11-slim"
    assert json.loads(final("ENTRYPOINT")) == ["hpo"]
    assert json.loads(final("CMD")) == ["--help"]
    assert final("WORKDIR") == "/work"
    assert final("USER") not in ("", "root", "0")


def test_dockerfile_installs_torch_from_an_index_argument_before_the_project() -> None:
    steps = instructions()
    assert ("ARG", "TORCH_INDEX=https://download.pytorch.org/whl/cpu") in steps
    runs = [i for i, (word, args) in enumerate(steps) if word == "RUN"]
    torch = next(i for i in runs if re.search(r"pip install torch\b.*--index-url \"?\$\{?TORCH_INDEX", steps[i][1]))
    project = next(i for i in runs if '".[postgres]"' in steps[i][1])
    copy_source = next(i for i, (word, args) in enumerate(steps) if word == "COPY" and args.startswith("hpo "))
    assert torch < copy_source < project


def test_entrypoint_is_the_declared_console_script() -> None:
    scripts = pyproject()["project"]["scripts"]
    assert json.loads(final("ENTRYPOINT"))[0] in scripts
    module = scripts["hpo"].split(":")[0].replace(".", "/")
    assert (ROOT / f"{module}.py").exists() or (ROOT / module / "__init__.py").exists()


def test_postgres_driver_and_dashboard_are_declared(services: dict) -> None:
    project = pyproject()["project"]
    assert any(req.startswith("psycopg") for req in project["optional-dependencies"]["postgres"])
    executable = services["dashboard"]["entrypoint"][0]
    assert any(re.match(rf"{executable}\b", req) for req in project["dependencies"])


def test_dockerignore_keeps_the_context_small_but_not_the_sources() -> None:
    patterns = [p for p in (ROOT / ".dockerignore").read_text().splitlines() if p and not p.startswith("#")]

    def ignored(path: str) -> bool:
        return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path, p.removeprefix("**/"))
                   or fnmatch.fnmatch(path, p + "/*") or fnmatch.fnmatch(path, p.removeprefix("**/") + "/*")
                   for p in patterns)

    for path in (".git", ".venv", "runs", "studies/runs", "study.db", "studies/demo.db",
                 "hpo/__pycache__", "hpo/search/__pycache__"):
        assert ignored(path), path
    for path in ("pyproject.toml", "hpo/models.py", "hpo/search/runner.py", "docker/Dockerfile"):
        assert not ignored(path), path


# -- docker compose itself, when the plugin is installed --------------------------------------------

def test_docker_compose_accepts_the_file() -> None:
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("the docker compose plugin is not installed here ('docker compose version' fails)")
    env = {k: v for k, v in os.environ.items() if k not in ("POSTGRES_PASSWORD", "WORKERS")}
    check = [docker, "compose", "-f", str(COMPOSE), "config", "-q"]
    ok = subprocess.run(check, env={**env, "POSTGRES_PASSWORD": "test-only"}, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    missing = subprocess.run(check, env=env, capture_output=True, text=True)
    assert missing.returncode != 0 and "POSTGRES_PASSWORD" in missing.stderr
