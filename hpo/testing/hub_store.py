"""On-disk storage behind `LocalHub`.

Layout of one repo (models at ``root/<namespace>/<name>``, other types at
``root/<type>s/<namespace>/<name>``)::

    repo.json              type, visibility, creation date
    refs.json              branch name -> commit sha
    commits/<sha>.json     parents, message, date and the full file manifest
    objects/<sha256>       file contents, regular and LFS alike
    tree/<branch>/...      checked-out files of each branch head (for humans)

A manifest maps each path to ``{"sha256", "size", "oid", "lfs"}`` where ``oid`` is
the git blob id the Hub would report (of the LFS pointer for LFS files).
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

LFS_THRESHOLD = 10 * 1024 * 1024  # the Hub refuses regular (non-LFS) files above 10 MB
REPO_TYPES = ("model", "dataset", "space")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_ARCH_TASKS = (  # how the Hub guesses a pipeline_tag from config.json
    ("ForSequenceClassification", "text-classification"),
    ("ForTokenClassification", "token-classification"),
    ("ForQuestionAnswering", "question-answering"),
    ("ForMaskedLM", "fill-mask"),
    ("ForCausalLM", "text-generation"),
    ("LMHeadModel", "text-generation"),
    ("Model", "feature-extraction"),
)
_DEFAULT_LFS_PATTERNS = (
    "*.7z *.arrow *.bin *.bz2 *.ckpt *.ftz *.gz *.h5 *.joblib *.lfs.* *.mlmodel *.model *.msgpack *.npy *.npz"
    " *.onnx *.ot *.parquet *.pb *.pickle *.pkl *.pt *.pth *.rar *.safetensors saved_model/**/* *.tar.* *.tar"
    " *.tflite *.tgz *.wasm *.xz *.zip *.zst *tfevents*"
).split()
DEFAULT_GITATTRIBUTES = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in _DEFAULT_LFS_PATTERNS)


class HubError(Exception):
    """An error answered to the client; `code` goes to the X-Error-Code header."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None, **extra):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}
        self.extra = extra  # more fields for the JSON body


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def check_path(path: str) -> str:
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..", ".git") for p in parts):
        raise HubError(400, f"Invalid path in repo: {path!r}")
    return path


def front_matter(text: str) -> dict:
    """YAML metadata block of a model card; ValueError if it is not a valid mapping."""
    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", text, re.S)
    if not match:
        return {}
    try:
        import yaml  # a dependency of huggingface_hub
    except ImportError:
        return {}
    try:
        data = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"Invalid YAML metadata: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("Invalid YAML metadata: not a mapping")
    return data


def parse_commit(ndjson: bytes) -> tuple[dict, list[tuple]]:
    """Header and `Repo.add_commit` ops of an NDJSON commit payload."""
    header, ops = {}, []
    for line in filter(None, (raw.strip() for raw in ndjson.splitlines())):
        try:
            item = json.loads(line)
            key, value = item["key"], item["value"]
        except (ValueError, KeyError, TypeError):
            raise HubError(400, "Malformed commit payload") from None
        if key == "header":
            header = value
        elif key == "file":
            content = value["content"].encode()
            content = base64.b64decode(content) if value.get("encoding") == "base64" else content
            if len(content) > LFS_THRESHOLD:
                raise HubError(400, f"{value['path']} is larger than 10 MB: it must be uploaded with LFS")
            ops.append(("file", value["path"], content))
        elif key == "lfsFile":
            ops.append(("lfs", value["path"], value["oid"]))
        elif key in ("deletedFile", "deletedFolder"):
            ops.append(("delete" if key == "deletedFile" else "delete_folder", value["path"]))
        else:
            raise HubError(400, f"Unknown commit operation: {key!r}")
    return header, ops


def entry_json(path: str, e: dict) -> dict:
    out = {"type": "file", "oid": e["oid"], "size": e["size"], "path": path}
    if e["lfs"]:
        pointer_size = len(lfs_pointer(e["sha256"], e["size"]))
        out["lfs"] = {"oid": e["sha256"], "size": e["size"], "pointerSize": pointer_size}
    return out


def folder_json(path: str, files: dict) -> dict:
    inner = "".join(f"{p}\0{e['oid']}\n" for p, e in sorted(files.items()) if p.startswith(path + "/"))
    return {"type": "directory", "oid": hashlib.sha1(inner.encode()).hexdigest(), "size": 0, "path": path}


def _write_json(path: Path, data) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


class Repo:
    def __init__(self, path: Path, repo_type: str, repo_id: str, lock: threading.RLock):
        self.path, self.type, self.id, self._lock = path, repo_type, repo_id, lock

    @property
    def meta(self) -> dict:
        return json.loads((self.path / "repo.json").read_text())

    def refs(self) -> dict[str, str]:
        return json.loads((self.path / "refs.json").read_text())

    def object_path(self, sha256: str) -> Path:
        return self.path / "objects" / sha256

    def has_object(self, sha256: str) -> bool:
        return re.fullmatch(r"[0-9a-f]{64}", sha256) is not None and self.object_path(sha256).is_file()

    def commit(self, rev: str) -> dict:
        """Commit for a branch name or a full commit sha."""
        sha = self.refs().get(rev, rev)
        file = self.path / "commits" / f"{sha}.json"
        if not re.fullmatch(r"[0-9a-f]{40}", sha) or not file.is_file():
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return json.loads(file.read_text())

    def log(self, rev: str) -> list[dict]:
        out, commit = [], self.commit(rev)
        while True:
            out.append(commit)
            if not commit["parents"]:
                return out
            commit = self.commit(commit["parents"][0])

    def read(self, entry: dict) -> bytes:
        return self.object_path(entry["sha256"]).read_bytes()

    def tree(self, rev: str, path: str = "", *, recursive: bool = False) -> list[dict]:
        files, prefix = self.commit(rev)["files"], f"{path}/" if path else ""
        dirs, out = set(), []
        for p, e in sorted(files.items()):
            if not p.startswith(prefix):
                continue
            parts = p[len(prefix):].split("/")
            for depth in range(1, len(parts) if recursive else min(2, len(parts))):
                dirs.add(prefix + "/".join(parts[:depth]))
            if recursive or len(parts) == 1:
                out.append(entry_json(p, e))
        if path and not out and not dirs:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        return [folder_json(d, files) for d in sorted(dirs)] + out

    def paths_info(self, rev: str, paths: list[str]) -> list[dict]:
        files, out = self.commit(rev)["files"], []
        for path in (p.strip("/") for p in paths):
            if path in files:
                out.append(entry_json(path, files[path]))
            elif any(p.startswith(path + "/") for p in files):
                out.append(folder_json(path, files))
        return out

    def info(self, rev: str, *, blobs: bool = False) -> dict:
        """The repo_info/model_info answer, with card data and pipeline_tag as the Hub derives them."""
        commit, meta = self.commit(rev), self.meta
        files = commit["files"]
        siblings = []
        for path, e in sorted(files.items()):
            sibling = {"rfilename": path}
            if blobs:
                sibling.update(size=e["size"], blobId=e["oid"])
                if e["lfs"]:
                    sibling["lfs"] = {**entry_json(path, e)["lfs"], "sha256": e["sha256"]}
            siblings.append(sibling)
        info = {"_id": self.id, "id": self.id, "author": self.id.split("/")[0], "sha": commit["id"],
                "lastModified": commit["date"], "createdAt": meta["createdAt"], "private": meta["private"],
                "gated": False, "disabled": False, "downloads": 0, "likes": 0, "siblings": siblings,
                "usedStorage": sum(e["size"] for e in files.values())}
        card, config = {}, {}
        try:
            if "README.md" in files:
                card = front_matter(self.read(files["README.md"]).decode(errors="replace"))
            if "config.json" in files and files["config.json"]["size"] < LFS_THRESHOLD:
                config = json.loads(self.read(files["config.json"]))
        except ValueError:
            pass
        info["tags"] = [str(t) for t in card.get("tags") or []]
        if card:
            info["cardData"] = card
        if self.type == "model":
            if config:
                info["config"] = {k: config[k] for k in ("architectures", "model_type") if k in config}
            arch = (config.get("architectures") or [""])[0]
            info["library_name"] = card.get("library_name") or ("transformers" if config else None)
            guessed = next((task for suffix, task in _ARCH_TASKS if arch.endswith(suffix)), None)
            info["pipeline_tag"] = card.get("pipeline_tag") or guessed
            info["tags"] += [t for t in (info["library_name"], info["pipeline_tag"]) if t and t not in info["tags"]]
        return info

    def put_object(self, chunks: Iterable[bytes], *, sha256: str | None = None, size: int | None = None) -> dict:
        """Store content, checking it against the announced sha256/size."""
        digest, total = hashlib.sha256(), 0
        fd, tmp = tempfile.mkstemp(dir=self.path / "objects", prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in chunks:
                    digest.update(chunk)
                    total += len(chunk)
                    f.write(chunk)
            actual = digest.hexdigest()
            if (sha256 is not None and actual != sha256) or (size is not None and total != size):
                raise HubError(400, f"Uploaded content does not match oid {sha256} / size {size}")
            os.replace(tmp, self.object_path(actual))
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return {"sha256": actual, "size": total}

    def lfs_patterns(self, files: dict) -> list[str]:
        entry = files.get(".gitattributes")
        if entry is None:
            return list(_DEFAULT_LFS_PATTERNS)
        lines = self.read(entry).decode(errors="replace").splitlines()
        return [line.split()[0] for line in lines if "filter=lfs" in line.split()[1:]]

    def upload_mode(self, files: dict, path: str, size: int, sample: bytes) -> str:
        """What the Hub's preupload answers: LFS for tracked patterns, big or binary files."""
        if size == 0:
            return "regular"
        name = path.rsplit("/", 1)[-1]
        for pattern in self.lfs_patterns(files):
            if fnmatch.fnmatch(path if "/" in pattern else name, pattern):
                return "lfs"
        return "lfs" if size > LFS_THRESHOLD or b"\0" in sample else "regular"

    def add_commit(self, branch: str, ops: list[tuple], *, title: str, message: str = "",
                   parent: str | None = None) -> str:
        """Apply ops to a branch head; ops are ("file", path, bytes), ("lfs", path, sha256),
        ("delete", path) or ("delete_folder", path)."""
        with self._lock:
            refs = self.refs()
            if branch not in refs:
                raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
            head = self.commit(refs[branch])
            if parent is not None and parent != head["id"]:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(head["files"])
            for op in ops:
                kind, path = op[0], check_path(op[1].strip("/") if op[0] == "delete_folder" else op[1])
                if kind == "file":
                    stored = self.put_object([op[2]])
                    files[path] = {**stored, "oid": git_blob_oid(op[2]), "lfs": False}
                elif kind == "lfs":
                    if not self.has_object(op[2]):
                        raise HubError(400, f"LFS object {op[2]} for {path} was not uploaded")
                    size = self.object_path(op[2]).stat().st_size
                    oid = git_blob_oid(lfs_pointer(op[2], size))
                    files[path] = {"sha256": op[2], "size": size, "oid": oid, "lfs": True}
                elif kind == "delete":
                    if files.pop(path, None) is None:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                else:
                    doomed = [p for p in files if p.startswith(path + "/")]
                    if not doomed:
                        raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
                    for p in doomed:
                        del files[p]
            return self._write_commit(branch, files, title, message, [head["id"]])

    def _write_commit(self, branch: str, files: dict, title: str, message: str, parents: list[str]) -> str:
        commit = {"parents": parents, "title": title, "message": message, "date": now_iso(), "files": files}
        commit["id"] = hashlib.sha1(json.dumps(commit, sort_keys=True).encode()).hexdigest()
        _write_json(self.path / "commits" / f"{commit['id']}.json", commit)
        self.set_ref(branch, commit["id"])
        return commit["id"]

    def set_ref(self, branch: str, sha: str | None) -> None:
        with self._lock:
            refs = self.refs() if (self.path / "refs.json").exists() else {}
            if sha is None:
                refs.pop(branch, None)
            else:
                refs[branch] = sha
            _write_json(self.path / "refs.json", refs)
            self._checkout(branch, None if sha is None else self.commit(sha)["files"])

    def _checkout(self, branch: str, files: dict | None) -> None:
        target = self.path / "tree" / quote(branch, safe="")
        staging = Path(tempfile.mkdtemp(dir=self.path / "tree", prefix=".new-"))
        for path, entry in (files or {}).items():
            dest = staging / path
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(self.object_path(entry["sha256"]), dest)
            except OSError:
                shutil.copyfile(self.object_path(entry["sha256"]), dest)
        if target.exists():
            old = staging.with_name(staging.name.replace(".new-", ".old-"))
            os.replace(target, old)
            shutil.rmtree(old)
        if files is None:
            shutil.rmtree(staging)
        else:
            os.replace(staging, target)


class HubStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()

    def _dir(self, repo_type: str, repo_id: str) -> Path:
        parts = repo_id.split("/")
        valid = len(parts) == 2 and all(_NAME_RE.match(p) and "--" not in p for p in parts)
        if repo_type not in REPO_TYPES or not valid:
            raise HubError(400, f"Invalid repo id: {repo_id!r}")
        return self.root.joinpath(*([] if repo_type == "model" else [f"{repo_type}s"]), *parts)

    def get(self, repo_type: str, repo_id: str) -> Repo:
        try:
            path = self._dir(repo_type, repo_id)
        except HubError:
            path = None
        if path is None or not (path / "refs.json").is_file():
            raise HubError(404, f"Repository not found: {repo_id}", "RepoNotFound")
        return Repo(path, repo_type, repo_id, self.lock)

    def create(self, repo_type: str, repo_id: str, *, private: bool = False, url: str = "") -> Repo:
        path = self._dir(repo_type, repo_id)
        with self.lock:
            if (path / "refs.json").exists():  # the client reads "url" from this answer when exist_ok=True
                raise HubError(409, f"You already created this {repo_type} repo", url=url)
            for sub in ("commits", "objects", "tree"):
                (path / sub).mkdir(parents=True, exist_ok=True)
            _write_json(path / "repo.json", {"type": repo_type, "private": private, "createdAt": now_iso()})
            repo = Repo(path, repo_type, repo_id, self.lock)
            content = DEFAULT_GITATTRIBUTES.encode()
            stored = repo.put_object([content])
            files = {".gitattributes": {**stored, "oid": git_blob_oid(content), "lfs": False}}
            repo._write_commit("main", files, "initial commit", "", [])
            return repo

    def delete(self, repo_type: str, repo_id: str) -> None:
        repo = self.get(repo_type, repo_id)
        with self.lock:
            (repo.path / "refs.json").unlink()
            shutil.rmtree(repo.path)
