"""LocalHub driven by the real huggingface_hub and transformers clients.

huggingface_hub reads HF_ENDPOINT and HF_HUB_DISABLE_XET when imported, so every
client runs in a fresh interpreter pointed at the server. Each client script prints
one JSON line last, which the test reads back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from hpo.testing.hub_server import KINDS, LocalHub
from hpo.testing.hub_store import DEFAULT_GITATTRIBUTES

TOKEN = "hf_test_token"


@pytest.fixture
def hub(tmp_path):
    with LocalHub(tmp_path / "hub") as server:
        yield server


def run_client(hub: LocalHub, home: Path, code: str, *, token: str | None = TOKEN) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_"))}
    env.update(HF_ENDPOINT=hub.url, HF_HUB_DISABLE_XET="1", HF_HOME=str(home), HF_HUB_DISABLE_PROGRESS_BARS="1",
               HF_HUB_DISABLE_TELEMETRY="1", TOKENIZERS_PARALLELISM="false")
    if token:
        env["HF_TOKEN"] = token
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-5000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def http(hub: LocalHub, method: str, path: str, *, token: str | None = None, body: dict | None = None):
    """(status, headers, parsed JSON body or None) of a raw request."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(hub.url + path, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req) as resp:
            status, headers, raw = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        status, headers, raw = err.code, err.headers, err.read()
    return status, headers, json.loads(raw) if raw else None


def test_upload_folder_lfs_download_and_new_commit(hub, tmp_path):
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("first version\n")
    (folder / "sub" / "weights.safetensors").write_bytes(os.urandom(300_000))  # LFS by .gitattributes pattern
    (folder / "big.log").write_text("x" * (11 * 1024 * 1024))  # LFS by size only (> 10 MB)
    out = run_client(hub, tmp_path / "home", f"""
        import json, pathlib
        from huggingface_hub import HfApi, hf_hub_download, snapshot_download
        api, folder = HfApi(), pathlib.Path({str(folder)!r})
        url = api.create_repo("user/demo", private=True)
        api.create_repo("user/demo", private=True, exist_ok=True)
        first = api.upload_folder(repo_id="user/demo", folder_path=folder).oid
        files = api.list_repo_files("user/demo")
        same = {{f: pathlib.Path(hf_hub_download("user/demo", f)).read_bytes() == (folder / f).read_bytes()
                for f in ["notes.txt", "sub/weights.safetensors", "big.log"]}}
        unchanged = api.upload_folder(repo_id="user/demo", folder_path=folder).oid
        (folder / "notes.txt").write_text("second version\\n")
        second = api.upload_folder(repo_id="user/demo", folder_path=folder, commit_message="update notes").oid
        snap = pathlib.Path(snapshot_download("user/demo"))
        info = api.model_info("user/demo", files_metadata=True)
        lfs = {{s.rfilename: s.lfs is not None for s in info.siblings}}
        print(json.dumps(dict(url=url, first=first, unchanged=unchanged, second=second, files=files, same=same,
                              snapshot_notes=(snap / "notes.txt").read_text(), lfs=lfs, private=info.private,
                              sha=info.sha, titles=[c.title for c in api.list_repo_commits("user/demo")])))
    """)
    assert out["url"] == f"{hub.url}/user/demo"
    assert out["files"] == [".gitattributes", "big.log", "notes.txt", "sub/weights.safetensors"]
    assert all(out["same"].values())
    assert out["unchanged"] == out["first"] != out["second"] == out["sha"]
    assert out["titles"] == ["update notes", "Upload folder using huggingface_hub", "initial commit"]
    assert out["snapshot_notes"] == "second version\n"
    assert out["lfs"] == {".gitattributes": False, "big.log": True, "notes.txt": False, "sub/weights.safetensors": True}
    assert out["private"] is True
    # LFS objects went through batch + PUT once: unchanged content is not uploaded again.
    assert hub.count("lfs_upload", status=200) == 2
    # Storage layout: checked-out branch tree and one manifest per commit.
    repo_dir = tmp_path / "hub" / "user" / "demo"
    assert (repo_dir / "tree" / "main" / "notes.txt").read_text() == "second version\n"
    assert (repo_dir / "tree" / "main" / "sub" / "weights.safetensors").read_bytes() == (
        folder / "sub" / "weights.safetensors").read_bytes()
    assert len(list((repo_dir / "commits").glob("*.json"))) == 3


def test_branches_and_not_found_errors(hub, tmp_path):
    out = run_client(hub, tmp_path / "home", """
        import json, pathlib
        from huggingface_hub import HfApi, hf_hub_download
        api = HfApi()
        api.create_repo("user/demo")
        api.upload_file(path_or_fileobj=b"main", path_in_repo="a.txt", repo_id="user/demo")
        api.create_branch("user/demo", branch="dev")
        api.upload_file(path_or_fileobj=b"dev", path_in_repo="a.txt", repo_id="user/demo", revision="dev")
        read = lambda rev: pathlib.Path(hf_hub_download("user/demo", "a.txt", revision=rev)).read_text()
        errors = {}
        for name, call in {
            "info_missing_repo": lambda: api.model_info("user/missing"),
            "download_missing_repo": lambda: hf_hub_download("user/missing", "a.txt"),
            "download_missing_file": lambda: hf_hub_download("user/demo", "missing.txt"),
            "download_missing_revision": lambda: hf_hub_download("user/demo", "a.txt", revision="nope"),
            "tree_missing_path": lambda: list(api.list_repo_tree("user/demo", path_in_repo="nope")),
            "branch_exists": lambda: api.create_branch("user/demo", branch="dev"),
            "bad_card": lambda: api.upload_file(path_or_fileobj=b"---\\n- a list\\n---\\n", path_in_repo="README.md",
                                                repo_id="user/demo"),
        }.items():
            try:
                call()
                errors[name] = None
            except Exception as exc:
                errors[name] = type(exc).__name__
        api.create_branch("user/demo", branch="dev", exist_ok=True)
        refs = {b.name: b.target_commit for b in api.list_repo_refs("user/demo").branches}
        print(json.dumps(dict(main=read("main"), dev=read("dev"), refs=refs, errors=errors,
                              dev_files=api.list_repo_files("user/demo", revision="dev"))))
    """)
    assert (out["main"], out["dev"]) == ("main", "dev")
    assert set(out["refs"]) == {"main", "dev"} and out["refs"]["main"] != out["refs"]["dev"]
    assert out["dev_files"] == [".gitattributes", "a.txt"]
    assert out["errors"] == {
        "info_missing_repo": "RepositoryNotFoundError",
        "download_missing_repo": "RepositoryNotFoundError",
        "download_missing_file": "RemoteEntryNotFoundError",
        "download_missing_revision": "RevisionNotFoundError",
        "tree_missing_path": "RemoteEntryNotFoundError",
        "branch_exists": "HfHubHTTPError",
        "bad_card": "ValueError",  # rejected by validate-yaml before anything is uploaded
    }


def test_error_bodies_and_private_repos(hub):
    hub.store.create("model", "user/secret", private=True)
    status, headers, body = http(hub, "GET", "/api/models/user/nope")
    assert (status, headers["X-Error-Code"], sorted(body)) == (404, "RepoNotFound", ["error"])
    # A private repo is invisible without a token, like a missing one.
    assert http(hub, "GET", "/api/models/user/secret")[0] == 404
    assert http(hub, "GET", "/api/models/user/secret", token=TOKEN)[2]["private"] is True
    status, headers, _ = http(hub, "HEAD", "/user/secret/resolve/main/missing.txt", token=TOKEN)
    assert (status, headers["X-Error-Code"]) == (404, "EntryNotFound")
    assert len(headers["X-Repo-Commit"]) == 40  # the client caches the miss under this commit
    status, headers, _ = http(hub, "HEAD", "/user/secret/resolve/main/.gitattributes", token=TOKEN)
    assert status == 200 and headers["ETag"].startswith('"') and int(headers["Content-Length"]) > 0
    ranged = urllib.request.Request(f"{hub.url}/user/secret/resolve/main/.gitattributes",
                                    headers={"Range": "bytes=2-4", "Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(ranged) as resp:  # used by hf_hub_download to resume
        expected = (206, f"bytes 2-4/{len(DEFAULT_GITATTRIBUTES)}", DEFAULT_GITATTRIBUTES[2:5].encode())
        assert (resp.status, resp.headers["Content-Range"], resp.read()) == expected
    assert http(hub, "POST", "/api/repos/create", body={"name": "x"})[0] == 401  # writes need a token
    assert http(hub, "GET", "/api/nothing/here")[0] == 404
    with pytest.raises(ValueError):
        hub.fail_next("no_such_kind")
    assert {"commit", "preupload", "lfs_upload", "lfs_batch", "resolve"} <= KINDS


def test_fault_injection_fails_upload_then_retry_succeeds(hub, tmp_path):
    hub.fail_next("commit", status=500)  # commit POSTs are not retried by the client
    hub.fail_next("lfs_upload", status=403)  # 403 is not retried: the upload fails mid-way, before any commit
    hub.fail_next("lfs_upload", status=500)  # 500 on the LFS PUT is retried (after 1 s) and then succeeds
    out = run_client(hub, tmp_path / "home", """
        import json, os
        from huggingface_hub import HfApi
        api, weights, results = HfApi(), os.urandom(50_000), []
        api.create_repo("user/faulty")
        for path, data in [("notes.txt", b"v1"), ("notes.txt", b"v1"),
                           ("w.safetensors", weights), ("w.safetensors", weights)]:
            try:
                api.upload_file(path_or_fileobj=data, path_in_repo=path, repo_id="user/faulty")
                results.append("ok")
            except Exception as exc:
                cause = exc if hasattr(exc, "response") else exc.__cause__
                results.append(f"{type(exc).__name__}:{cause.response.status_code}")
        print(json.dumps(dict(results=results, files=api.list_repo_files("user/faulty"),
                              commits=len(api.list_repo_commits("user/faulty")))))
    """)
    assert out["results"] == ["HfHubHTTPError:500", "ok", "RuntimeError:403", "ok"]
    assert out["files"] == [".gitattributes", "notes.txt", "w.safetensors"]
    assert out["commits"] == 3  # initial + the two uploads that succeeded
    assert hub.count("commit", status=500) == 1
    assert [r.status for r in hub.requests if r.kind == "lfs_upload"] == [403, 500, 200]


def test_invalid_token_is_rejected(tmp_path):
    with LocalHub(tmp_path / "hub", tokens={"hf_good"}) as hub:
        status, headers, body = http(hub, "GET", "/api/whoami-v2", token="hf_bad")
        assert (status, body) == (401, {"error": "Invalid credentials in Authorization header"})
        assert http(hub, "GET", "/api/whoami-v2", token="hf_good")[2]["name"] == "user"
        out = run_client(hub, tmp_path / "home", """
            import json
            from huggingface_hub import HfApi
            errors = {}
            for name, call in {"whoami": lambda: HfApi().whoami(),
                               "create_repo": lambda: HfApi().create_repo("user/x")}.items():
                try:
                    call()
                except Exception as exc:
                    errors[name] = [type(exc).__name__, exc.response.status_code]
            good = HfApi(token="hf_good")
            good.create_repo("user/x")
            print(json.dumps(dict(errors=errors, name=good.whoami()["name"], files=good.list_repo_files("user/x"))))
        """, token="hf_bad")
    assert out["errors"] == {"whoami": ["HfHubHTTPError", 401], "create_repo": ["HfHubHTTPError", 401]}
    assert out["name"] == "user" and out["files"] == [".gitattributes"]


def build_tiny_bert(out: Path) -> None:
    """A randomly initialised BERT classifier and its tokenizer, made from a small vocab (no download)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    out.mkdir(parents=True)
    words = "the a movie was good bad great terrible film plot actor i liked hated it".split()
    (out / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    tokenizer = BertTokenizerFast(vocab=str(out / "vocab.txt"))  # transformers 5 ignores `vocab_file=`
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=64, initializer_range=0.5,  # spread-out scores
                        id2label={0: "NEG", 1: "POS"}, label2id={"NEG": 0, "POS": 1})
    BertForSequenceClassification(config).save_pretrained(out)
    tokenizer.save_pretrained(out)


def test_transformers_pipeline_from_local_hub(hub, tmp_path):
    from transformers import pipeline

    sentences = ["the movie was good", "i hated the plot", "great actor terrible film"]
    build_tiny_bert(tmp_path / "model")
    local = pipeline("text-classification", model=str(tmp_path / "model"))(sentences)
    run_client(hub, tmp_path / "home_upload", f"""
        from huggingface_hub import HfApi
        HfApi().create_repo("user/tiny-bert")
        HfApi().upload_folder(repo_id="user/tiny-bert", folder_path={str(tmp_path / "model")!r})
        print("{{}}")
    """)
    remote = run_client(hub, tmp_path / "home_download", f"""
        import json
        from transformers import AutoModel, pipeline
        preds = pipeline("text-classification", model="user/tiny-bert")({sentences!r})
        inferred = pipeline(model="user/tiny-bert").task  # from the pipeline_tag the server derives
        base = type(AutoModel.from_pretrained("user/tiny-bert")).__name__
        print(json.dumps(dict(preds=preds, task=inferred, base=base)))
    """)
    assert [p["label"] for p in remote["preds"]] == [p["label"] for p in local]
    assert [p["score"] for p in remote["preds"]] == pytest.approx([p["score"] for p in local], abs=1e-5)
    assert len({round(p["score"], 4) for p in local}) == len(sentences)  # the inputs do change the outputs
    assert remote["task"] == "text-classification" and remote["base"] == "BertModel"
    assert hub.count("lfs_upload", status=200) == 1  # model.safetensors
    assert hub.count("resolve", status=200) > 0


def test_cli_serves_until_killed(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "hpo.testing.hub_server", "--root", str(tmp_path / "hub"),
                             "--port", "0", "--token", "hf_cli"], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    try:
        url = proc.stdout.readline().strip()
        req = urllib.request.Request(f"{url}/api/whoami-v2", headers={"Authorization": "Bearer hf_cli"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert json.load(resp)["name"] == "user"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
