"""The only writer to the Hugging Face Hub: one commit with the final model, its card and the study report.

The token comes from HF_TOKEN or the huggingface_hub login and is handed to `HfApi` only: it is never
logged, written to results.json or put in an error message. A failed push changes nothing on disk.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo.errors import HubError, SpecError, StageError
from hpo.results import read_json, results_path, write_json

if TYPE_CHECKING:
    from hpo.spec import LoadedStudy

DEFAULT_ENDPOINT = "https://huggingface.co"
SKIP_IN_MODEL = {"README.md", "hpo-final.json"}  # the card is rebuilt; the marker is internal bookkeeping
REPORT_FILES = ("report.md", "report.html")


def resolve_token() -> str | None:
    token = os.environ.get("HF_TOKEN")
    if token:
        return token
    from huggingface_hub import get_token

    return get_token()


def resolve_endpoint(hub_endpoint: str | None) -> str:
    return (hub_endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def _model_files(model_dir: Path) -> list[tuple[str, Path]]:
    return [(p.relative_to(model_dir).as_posix(), p) for p in sorted(model_dir.rglob("*"))
            if p.is_file() and p.name not in SKIP_IN_MODEL and not p.name.startswith(".")]


def _report_files(out: Path) -> list[tuple[str, Path]]:
    files = [(f"report/{name}", out / name) for name in REPORT_FILES if (out / name).is_file()]
    plots = out / "plots"
    if plots.is_dir():
        files += [(f"report/plots/{p.name}", p) for p in sorted(plots.glob("*.png"))]
    return files


def _explain(exc: BaseException, *, endpoint: str, repo_id: str, token: str) -> str:
    """One line saying what went wrong, without the token."""
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    status = None
    for e in (exc, exc.__cause__, exc.__context__):
        response = getattr(e, "response", None)
        if response is not None and getattr(response, "status_code", None):
            status = response.status_code
            break
    if isinstance(exc, RepositoryNotFoundError) or status == 404:
        text = f"repository {repo_id} not found or not writable with this token (404)"
    elif status == 401:
        text = "the Hub rejected the token (401)"
    elif status == 403:
        text = f"the token may not write to {repo_id} (403)"
    elif status is not None and status >= 500:
        text = f"the Hub answered {status} (server error) in the middle of the upload"
    elif status is not None:
        text = f"the Hub answered {status}"
    elif isinstance(exc, (OSError, ConnectionError)) or "connect" in type(exc).__name__.lower() \
            or "connect" in str(exc).lower():
        text = f"cannot reach {endpoint} ({type(exc).__name__})"
    elif isinstance(exc, HfHubHTTPError):
        text = "the Hub refused the request"
    else:
        text = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
    return text.replace(token, "***") if token else text


def push_outputs(study: "LoadedStudy") -> dict[str, Any]:
    """Push best-model/ (with the card as README.md) and, if asked, the report under report/; one commit."""
    spec, out = study.spec, study.paths.output_dir
    hub = spec.hub
    if hub is None:
        raise SpecError("the study has no hub section, so there is nowhere to push", file=study.file, path="hub",
                        hint="add 'hub: {repo_id: user/name}' to the study file")
    results = read_json(results_path(out))
    model_dir = Path(results["final"]["path"]) if results else out / "best-model"
    if not results or not (model_dir / "config.json").is_file():
        raise StageError(f"no final model in {out} yet", hint=f"run 'hpo run {study.file}' first")
    token = resolve_token()
    endpoint = resolve_endpoint(hub.endpoint)
    retry = f"nothing on disk changed; rerun: hpo push {study.file}"
    if not token:
        raise HubError(f"no Hugging Face token to push to {hub.repo_id}",
                       hint="set HF_TOKEN or run 'hf auth login', then rerun: hpo push " + study.file)

    from huggingface_hub import CommitOperationAdd, HfApi

    from hpo.report.card import build_card

    card = str(build_card(study, results)).encode()
    files = _model_files(model_dir) + (_report_files(out) if hub.push_report else [])
    ops = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(path)) for name, path in files]
    ops.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card))
    api = HfApi(endpoint=endpoint, token=token)
    trial = results["final"]["trial"]
    try:
        repo_url = api.create_repo(hub.repo_id, private=hub.private, exist_ok=True)
        if hub.revision and hub.revision != "main":
            api.create_branch(hub.repo_id, branch=hub.revision, exist_ok=True)
        commit = api.create_commit(hub.repo_id, ops, revision=hub.revision,
                                   commit_message=f"hpo: final model of study {spec.name} (trial {trial})",
                                   commit_description=f"Best trial {trial} of study {spec.name}, "
                                                      f"test metrics {results['final']['test_metrics']}.")
    except Exception as exc:  # every client failure is a push failure; the message says which
        raise HubError(f"push to {hub.repo_id} on {endpoint} failed: "
                       f"{_explain(exc, endpoint=endpoint, repo_id=hub.repo_id, token=token)}", hint=retry) from None
    record = {"repo_id": hub.repo_id, "url": str(repo_url), "revision": hub.revision or "main",
              "commit": commit.oid, "commit_url": commit.commit_url, "endpoint": endpoint, "trial": trial,
              "files": len(ops), "pushed_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    latest = read_json(results_path(out)) or results
    latest["hub"] = record
    write_json(results_path(out), latest)
    return record
