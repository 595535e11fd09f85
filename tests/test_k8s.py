"""docker/k8s: the Kubernetes manifests, checked by parsing (no cluster, no kubectl): their structure, and that
they run what docker/compose.yaml runs (image, storage secret, commands); and `hpo finalize --wait`."""

from __future__ import annotations

import re
import shlex
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import optuna
import pytest
import typer
import yaml

from hpo.cli import app

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "docker" / "k8s"
API = {"Service": "v1", "PersistentVolumeClaim": "v1", "StatefulSet": "apps/v1", "Deployment": "apps/v1",
       "Job": "batch/v1"}
DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SECRET = "hpo-storage"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            out += [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    return out


def by(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}"
    return found[0]


def pod(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]


def containers(doc: dict) -> Iterator[dict]:
    spec = pod(doc)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def workloads(docs: list[dict]) -> list[dict]:
    return [d for d in docs if d["kind"] in ("StatefulSet", "Deployment", "Job")]


def hpo_containers(docs: list[dict], compose: dict) -> list[dict]:
    image = compose["services"]["worker"]["image"]
    return [c for d in workloads(docs) for c in containers(d) if c["image"] == image]


# -- structure ---------------------------------------------------------------------------------------------

def test_every_manifest_is_a_known_kind_with_a_valid_name(docs: list[dict]) -> None:
    assert {d["kind"] for d in docs} == set(API)
    for d in docs:
        assert d["apiVersion"] == API[d["kind"]], d["kind"]
        assert DNS_1123.match(d["metadata"]["name"]) and len(d["metadata"]["name"]) <= 63
        assert "namespace" not in d["metadata"]  # kubectl -n / kustomize namespace decide
    assert not [d for d in docs if d["kind"] == "Secret"], "passwords never live in the repository"


def test_the_kustomization_lists_every_manifest_and_the_image(compose: dict) -> None:
    k = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert k["kind"] == "Kustomization"
    assert sorted(k["resources"]) == sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    name, tag = compose["services"]["worker"]["image"].split(":")
    assert [(i["name"], i["newTag"]) for i in k["images"]] == [(name, tag)]


def test_workloads_are_well_formed(docs: list[dict]) -> None:
    claims = {d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"}
    for d in workloads(docs):
        spec, labels = pod(d), d["spec"]["template"]["metadata"]["labels"]
        if d["kind"] != "Job":
            assert d["spec"]["selector"]["matchLabels"].items() <= labels.items(), d["metadata"]["name"]
        else:
            assert spec["restartPolicy"] in ("Never", "OnFailure")
        templates = {t["metadata"]["name"] for t in d["spec"].get("volumeClaimTemplates", [])}
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for v in volumes.values():
            if "persistentVolumeClaim" in v:
                assert v["persistentVolumeClaim"]["claimName"] in claims
        for c in containers(d):
            assert DNS_1123.match(c["name"]) and c["image"]
            assert all(isinstance(a, str) for a in c.get("command", []) + c.get("args", []))
            for m in c.get("volumeMounts", []):
                assert m["name"] in volumes or m["name"] in templates, (c["name"], m["name"])
            for e in c.get("env", []):
                assert ("value" in e) != ("valueFrom" in e), e["name"]
            resources = c.get("resources", {})
            for key, value in resources.get("requests", {}).items():
                if key in resources.get("limits", {}) and key in ("memory", "nvidia.com/gpu"):
                    assert resources["limits"][key] == value  # extended resources must be equal


def test_services_reach_their_pods(docs: list[dict]) -> None:
    for svc in (d for d in docs if d["kind"] == "Service"):
        targets = [w for w in workloads(docs)
                   if svc["spec"]["selector"].items() <= w["spec"]["template"]["metadata"]["labels"].items()]
        assert len(targets) == 1, svc["metadata"]["name"]
        ports = {p["name"]: p["containerPort"] for c in pod(targets[0])["containers"] for p in c.get("ports", [])}
        for p in svc["spec"]["ports"]:
            assert p["targetPort"] in ports or p["targetPort"] in ports.values()


def test_workers_are_an_indexed_job_with_one_gpu_each(docs: list[dict]) -> None:
    job = by(docs, "Job", "hpo-workers")
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] >= 1
    (worker,) = pod(job)["containers"]
    assert worker["resources"]["requests"]["nvidia.com/gpu"] == worker["resources"]["limits"]["nvidia.com/gpu"] == 1


# -- the same as docker/compose.yaml -------------------------------------------------------------------------

def test_hpo_pods_use_the_compose_image_and_commands(docs: list[dict], compose: dict) -> None:
    services = compose["services"]
    image = services["worker"]["image"]
    assert services["coordinator"]["image"] == services["dashboard"]["image"] == image
    worker = pod(by(docs, "Job", "hpo-workers"))["containers"][0]
    assert worker["image"] == image and "command" not in worker  # the image's ENTRYPOINT, hpo, stays
    assert worker["args"] == services["worker"]["command"]
    final = pod(by(docs, "Job", "hpo-finalize"))["containers"][0]
    assert final["image"] == image and "command" not in final
    commands = typer.main.get_command(app).commands
    subcommand, *options, study = final["args"]
    assert subcommand == "finalize" and study == services["worker"]["command"][-1]
    known = {o for p in commands[subcommand].params for o in p.opts}
    assert set(options) <= known, options
    board = pod(by(docs, "Deployment", "hpo-dashboard"))["containers"][0]
    assert board["image"] == image and board["command"] == services["dashboard"]["entrypoint"]
    storage = compose["x-storage"]
    assert board["args"] == ["$(HPO_STORAGE)" if a == storage else a for a in services["dashboard"]["command"]]


def test_hpo_pods_read_the_storage_from_one_secret(docs: list[dict], compose: dict) -> None:
    want = compose["services"]["worker"]["environment"]
    found = hpo_containers(docs, compose)
    assert len(found) == 3  # worker, finalizer, dashboard
    for c in found:
        env = {e["name"]: e for e in c["env"]}
        assert set(env) <= set(want), set(env) - set(want)
        for key in ("HPO_STORAGE", "PGPASSWORD"):
            assert env[key]["valueFrom"]["secretKeyRef"] == {"name": SECRET, "key": key}, (c["name"], key)
        if "HPO_OUTPUT_DIR" in env:
            assert env["HPO_OUTPUT_DIR"]["value"] == want["HPO_OUTPUT_DIR"]
        if "HF_TOKEN" in env:  # passed through when set, as compose does
            assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["optional"] is True


def test_hpo_pods_mount_the_study_and_the_results_as_compose_does(docs: list[dict], compose: dict) -> None:
    for c in hpo_containers(docs, compose):
        if c["name"] == "dashboard":
            continue
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        assert mounts["/study"]["readOnly"] is True
        assert "/runs" in mounts


def test_the_database_matches_compose(docs: list[dict], compose: dict) -> None:
    db = compose["services"]["db"]
    svc, sts = by(docs, "Service", "db"), by(docs, "StatefulSet", "db")
    url = re.match(r"postgresql\+psycopg://(?P<user>\w+)@(?P<host>[\w.-]+):(?P<port>\d+)/(?P<db>\w+)$",
                   compose["x-storage"])
    assert url and url["host"] == svc["metadata"]["name"] and int(url["port"]) == svc["spec"]["ports"][0]["port"]
    (postgres,) = pod(sts)["containers"]
    assert postgres["image"] == db["image"]
    env = {e["name"]: e for e in postgres["env"]}
    assert env["POSTGRES_USER"]["value"] == db["environment"]["POSTGRES_USER"] == url["user"]
    assert env["POSTGRES_DB"]["value"] == db["environment"]["POSTGRES_DB"] == url["db"]
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": SECRET, "key": "PGPASSWORD"}
    assert postgres["readinessProbe"]["exec"]["command"] == shlex.split(db["healthcheck"]["test"][1])
    for d in workloads(docs):  # every hpo pod waits for it, as compose's depends_on: service_healthy
        if d is not sts:
            (wait,) = pod(d)["initContainers"]
            assert f"pg_isready -h {url['host']} -U {url['user']} -d {url['db']}" in wait["command"][-1]


def test_the_documented_secret_holds_the_compose_storage_url(compose: dict) -> None:
    for doc in (ROOT / "docker" / "README.md", K8S / "kustomization.yaml"):
        text = doc.read_text()
        assert f"kubectl create secret generic {SECRET}" in text, doc
        assert f"--from-literal=HPO_STORAGE={compose['x-storage']}" in text, doc
        assert '--from-literal=PGPASSWORD="$POSTGRES_PASSWORD"' in text, doc


# -- hpo finalize --wait -----------------------------------------------------------------------------------------

def _later(seconds: float, action: Any) -> threading.Thread:
    def run() -> None:
        time.sleep(seconds)
        action()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_the_finalizer_waits_for_the_workers(make_study: Any) -> None:
    from hpo.spec import load_study
    from hpo.study.factory import load_or_create, open_storage
    from hpo.study.waiting import wait_for_workers

    study = load_study(make_study(search__n_trials=2))
    url = study.paths.storage_url
    said: list[str] = []

    def workers() -> None:  # they open the fresh store as the finalizer does, create the study, run two trials
        s = load_or_create(study, study.spec.models[0], open_storage(study))
        for value in (0.6, 0.7):
            trial = s.ask()
            time.sleep(0.3)
            s.tell(trial, value)

    thread = _later(0.0, workers)  # at once: both create the store's tables (the loser retries)
    began = time.monotonic()
    wait_for_workers(study, say=said.append, poll=0.05, quiet=30)
    assert time.monotonic() - began < 20  # returned when they were done, not after the quiet period
    thread.join()
    done = optuna.load_study(study_name="tiny", storage=url).get_trials()
    assert [t.state.name for t in done] == ["COMPLETE", "COMPLETE"]
    assert said[-1].startswith("waiting for the workers: ") and "running" in said[-1]


def test_the_finalizer_stops_waiting_when_the_workers_stopped_short(make_study: Any) -> None:
    from hpo.spec import load_study
    from hpo.study.waiting import wait_for_workers

    study = load_study(make_study(search__n_trials=5))
    s = optuna.create_study(study_name="tiny", storage=study.paths.storage_url, direction="maximize")
    s.tell(s.ask(), 0.5)
    s.tell(s.ask(), state=optuna.trial.TrialState.FAIL)  # e.g. stopped by a bound on failed trials
    said: list[str] = []
    wait_for_workers(study, say=said.append, poll=0.05, quiet=0.3)
    assert said[-1] == "no trial has run for 0s: finalizing the 1 finished trial(s)"


def test_the_finalizer_of_a_budgeted_study_waits_for_the_plan_to_close_the_search(
        make_study: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from hpo.spec import load_study
    from hpo.study.budget import CLOSED
    from hpo.study.waiting import wait_for_workers

    monkeypatch.setenv("HPO_BUDGET", "10m")
    study = load_study(make_study(search={"space": {}}))  # no n_trials: the budget plans them, no count to reach
    assert study.spec.search.planned_trials
    url = study.paths.storage_url
    s = optuna.create_study(study_name="tiny", storage=url, direction="maximize")
    s.tell(s.ask(), 0.5)
    said: list[str] = []
    _later(0.5, lambda: s.set_user_attr(CLOSED, 600.0))  # the coordinator's plan ends the search
    began = time.monotonic()
    wait_for_workers(study, say=said.append, poll=0.05, quiet=30)
    assert time.monotonic() - began < 20  # returned when the search closed, not after the quiet period
    assert said == ["waiting for the workers: 1 finished, 0 running"]
