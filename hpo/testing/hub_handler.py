"""The request handler of `hpo.testing.hub_server.LocalHub`: the Hub API routes and their answers."""

from __future__ import annotations

import base64
import json
import logging
import re
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

from hpo.testing.hub_store import HubError, Repo, check_path, front_matter, parse_commit

if TYPE_CHECKING:
    from hpo.testing.hub_server import _Server

logger = logging.getLogger("hpo.testing.hub_server")

_API = r"/api/(?P<rtype>models|datasets|spaces)/(?P<repo>[^/]+/[^/]+)"
_WEB = r"/(?:(?P<rtype>datasets|spaces)/)?(?P<repo>[^/]+/[^/]+)"
_LFS = _WEB + r"\.git/info/lfs/objects"
# (methods, path pattern on the raw path, kind): the kind names the handler and is what `fail_next` takes.
_ROUTES = [
    ("GET", r"/api/whoami-v2", "whoami"),
    ("GET", r"/api/agent-harnesses", "agent_harnesses"),
    ("POST", r"/api/repos/create", "create_repo"),
    ("DELETE", r"/api/repos/delete", "delete_repo"),
    ("POST", r"/api/validate-yaml", "validate_yaml"),
    ("GET|HEAD", _API + r"(?:/revision/(?P<rev>[^/]+))?", "repo_info"),
    ("GET", _API + r"/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?", "tree"),
    ("POST", _API + r"/paths-info/(?P<rev>[^/]+)", "paths_info"),
    ("GET", _API + r"/refs", "refs"),
    ("GET", _API + r"/commits/(?P<rev>[^/]+)", "commits"),
    ("POST|DELETE", _API + r"/branch/(?P<rev>[^/]+)", "branch"),
    ("POST", _API + r"/preupload/(?P<rev>[^/]+)", "preupload"),
    ("POST", _API + r"/commit/(?P<rev>[^/]+)", "commit"),
    ("POST", _LFS + r"/batch", "lfs_batch"),
    ("PUT", _LFS + r"/(?P<oid>[0-9a-f]{64})", "lfs_upload"),
    ("POST", _LFS + r"/(?P<oid>[0-9a-f]{64})/verify", "lfs_verify"),
    ("GET|HEAD", _WEB + r"/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "resolve"),
]
KINDS = frozenset(kind for _, _, kind in _ROUTES)
_REPO_TYPES = {None: "model", "models": "model", "datasets": "dataset", "spaces": "space"}


class Request(NamedTuple):
    kind: str
    method: str
    path: str
    status: int


def _route(method: str, path: str) -> tuple[str, dict]:
    for methods, pattern, kind in _ROUTES:
        match = re.fullmatch(pattern, path)
        if match and method in methods.split("|"):
            args = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
            if "repo" in args:
                args["rtype"] = _REPO_TYPES[match.group("rtype")]
            return kind, args
    raise HubError(404, f"Not found: {method} {path}")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive like the Hub: every answer carries a Content-Length
    timeout = 60
    server: _Server

    def log_message(self, format, *args):
        logger.debug("%s " + format, self.address_string(), *args)

    def do_GET(self):
        self._consumed, self._kind, self.token = False, "unknown", None
        hub = self.server.hub
        url = urlsplit(self.path)
        self.query = parse_qs(url.query)
        self.base = f"http://{self.headers['Host']}" if self.headers.get("Host") else hub.url
        try:
            self._kind, args = _route(self.command, url.path)
            status = hub._take_fault(self._kind)
            if status is not None:
                raise HubError(status, f"Injected failure for {self._kind!r}")
            self.token = self._auth()
            getattr(self, f"h_{self._kind}")(**args)
        except HubError as err:
            self._error(err)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except (KeyError, TypeError, ValueError) as exc:  # malformed payload; a 400 is not retried by clients
            self.close_connection = True  # the request body may be partly unread
            self._error(HubError(400, f"Bad request: {exc!r}"))
        except Exception as exc:
            logger.exception("LocalHub failed on %s %s", self.command, self.path)
            self.close_connection = True
            self._error(HubError(500, f"Internal error: {exc!r}"))

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

    # --- plumbing ---------------------------------------------------------------------

    def _body_chunks(self):
        """Yield the request body (Content-Length or chunked) the first time only."""
        if self._consumed:
            return
        self._consumed = True
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                yield self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline().strip():  # trailers
                pass
            return
        left = int(self.headers.get("Content-Length") or 0)
        while left > 0:
            chunk = self.rfile.read(min(left, 1 << 20))
            if not chunk:
                raise ConnectionError("client closed the connection mid-body")
            left -= len(chunk)
            yield chunk

    def _body(self) -> bytes:
        return b"".join(self._body_chunks())

    def _json(self) -> dict:
        try:
            data = json.loads(self._body() or b"{}")
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise HubError(400, "Request body must be a JSON object")
        return data

    def _send(self, status: int, body=None, headers: dict | None = None, content_type: str = "application/json",
              *, file=None, length: int = 0):
        """Answer a JSON-able or bytes body, or `length` bytes read from `file`."""
        if not isinstance(body, bytes):
            body = b"" if body is None else json.dumps(body).encode()
        for _ in self._body_chunks():  # drain the unread body, or the kept-alive connection breaks
            pass
        self.send_response(status)
        size = length if file is not None else len(body)
        for key, value in {"Content-Type": content_type, "Content-Length": str(size), **(headers or {})}.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
            while file is not None and length > 0 and (chunk := file.read(min(length, 1 << 20))):
                self.wfile.write(chunk)
                length -= len(chunk)
        self.server.hub.requests.append(Request(self._kind, self.command, self.path, status))

    def _error(self, err: HubError):
        headers = {"X-Error-Message": err.message, **err.headers}
        if err.code:  # huggingface_hub picks its exception class from this header
            headers["X-Error-Code"] = err.code
        self._send(err.status, {"error": err.message, **err.extra}, headers)

    def _auth(self) -> str | None:
        header = self.headers.get("Authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else None
        tokens = self.server.hub.tokens
        if token and tokens is not None and token not in tokens:
            # this exact message makes the client report a bad token rather than a missing repo
            raise HubError(401, "Invalid credentials in Authorization header")
        return token or None

    def _need_token(self) -> None:
        if not self.token:
            raise HubError(401, "You must be authenticated to do this")

    def _repo(self, rtype: str, repo: str, *, write: bool = False) -> Repo:
        if write:
            self._need_token()
        found = self.server.hub.store.get(rtype, repo)
        if found.meta["private"] and not self.token:
            raise HubError(404, f"Repository not found: {repo}", "RepoNotFound")
        return found

    def _web_url(self, rtype: str, repo: str) -> str:
        return f"{self.base}/{'' if rtype == 'model' else rtype + 's/'}{repo}"

    def _flag(self, name: str) -> bool:
        return self.query.get(name, [""])[0].lower() in ("1", "true")

    # --- account and repos ----------------------------------------------------------------

    def h_whoami(self):
        self._need_token()
        user = self.server.hub.user
        auth = {"type": "access_token", "accessToken": {"displayName": "local", "role": "write"}}
        self._send(200, {"type": "user", "id": user, "name": user, "fullname": user, "orgs": [], "auth": auth})

    def h_agent_harnesses(self):  # registry every client process fetches once
        self._send(200, {"standardEnvVars": [], "harnesses": {}})

    def _body_repo(self) -> tuple[str, str, dict]:
        self._need_token()
        body = self._json()
        namespace = body.get("organization") or self.server.hub.user
        return body.get("type") or "model", f"{namespace}/{body.get('name')}", body

    def h_create_repo(self):
        rtype, repo, body = self._body_repo()
        private = body.get("visibility") == "private" or body.get("private") is True
        url = self._web_url(rtype, repo)
        self.server.hub.store.create(rtype, repo, private=private, url=url)
        self._send(200, {"url": url, "name": repo, "id": repo})

    def h_delete_repo(self):
        rtype, repo, _ = self._body_repo()
        self.server.hub.store.delete(rtype, repo)
        self._send(200, {})

    def h_validate_yaml(self):
        try:
            front_matter(str(self._json().get("content", "")))
        except ValueError as exc:
            return self._send(400, {"errors": [{"message": str(exc)}], "warnings": []})
        self._send(200, {"errors": [], "warnings": []})

    def h_repo_info(self, rtype, repo, rev="main"):
        self._send(200, self._repo(rtype, repo).info(rev, blobs=self._flag("blobs")))

    def h_tree(self, rtype, repo, rev, path=""):
        self._send(200, self._repo(rtype, repo).tree(rev, path.strip("/"), recursive=self._flag("recursive")))

    def h_paths_info(self, rtype, repo, rev):
        found = self._repo(rtype, repo)
        if "json" in self.headers.get("Content-Type", ""):
            paths = self._json().get("paths", [])
        else:  # the client posts a form
            paths = parse_qs(self._body().decode()).get("paths", [])
        self._send(200, found.paths_info(rev, paths))

    def h_refs(self, rtype, repo):
        refs = sorted(self._repo(rtype, repo).refs().items())
        branches = [{"name": name, "ref": f"refs/heads/{name}", "targetCommit": sha} for name, sha in refs]
        self._send(200, {"branches": branches, "converts": [], "tags": [], "pullRequests": []})

    def h_commits(self, rtype, repo, rev):
        authors = [{"user": self.server.hub.user}]
        log = self._repo(rtype, repo).log(rev)
        self._send(200, [{**{k: c[k] for k in ("id", "title", "message", "date")}, "authors": authors} for c in log])

    def h_branch(self, rtype, repo, rev):
        found, branch = self._repo(rtype, repo, write=True), check_path(rev)
        with self.server.hub.store.lock:
            exists = branch in found.refs()
            if self.command == "DELETE":
                if branch == "main" or not exists:
                    raise HubError(403 if exists else 404, f"Cannot delete branch {branch}")
                found.set_ref(branch, None)
            else:
                if exists:
                    raise HubError(409, "Reference already exists")
                found.set_ref(branch, found.commit(self._json().get("startingPoint") or "main")["id"])
        self._send(200, {})

    # --- upload ---------------------------------------------------------------------------

    def h_preupload(self, rtype, repo, rev):
        found = self._repo(rtype, repo, write=True)
        commit = found.commit(rev)
        files, out = commit["files"], []
        for f in self._json().get("files", []):
            path = check_path(f["path"])
            mode = found.upload_mode(files, path, int(f["size"]), base64.b64decode(f.get("sample", "")))
            item = {"path": path, "uploadMode": mode, "shouldIgnore": False}
            if path in files:  # lets the client drop unchanged files from the commit
                item["oid"] = files[path]["sha256"] if files[path]["lfs"] else files[path]["oid"]
            out.append(item)
        self._send(200, {"files": out, "commitOid": commit["id"]})

    def h_lfs_batch(self, rtype, repo):
        found, body = self._repo(rtype, repo, write=True), self._json()
        if body.get("operation") != "upload":
            raise HubError(400, "Only the upload operation is supported")
        objects = []
        for obj in body.get("objects", []):
            oid, size = str(obj.get("oid")), obj.get("size")
            item = {"oid": oid, "size": size}
            if not re.fullmatch(r"[0-9a-f]{64}", oid) or not isinstance(size, int):
                item["error"] = {"code": 422, "message": "Invalid oid or size"}
            elif not found.has_object(oid):  # without "actions" the client skips the upload
                href = f"{self._web_url(rtype, repo)}.git/info/lfs/objects/{oid}"
                item["authenticated"] = True
                item["actions"] = {"upload": {"href": href, "header": {}}, "verify": {"href": f"{href}/verify"}}
            objects.append(item)
        self._send(200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
                   content_type="application/vnd.git-lfs+json")

    def h_lfs_upload(self, rtype, repo, oid):
        # Like a presigned storage URL: no token, but the content must hash to `oid`.
        size = int(self.headers["Content-Length"]) if self.headers.get("Content-Length") else None
        self.server.hub.store.get(rtype, repo).put_object(self._body_chunks(), sha256=oid, size=size)
        self._send(200, b"", content_type="text/plain")

    def h_lfs_verify(self, rtype, repo, oid):
        found, size = self._repo(rtype, repo, write=True), self._json().get("size")
        if not found.has_object(oid) or (size is not None and found.object_path(oid).stat().st_size != size):
            raise HubError(404, f"LFS object {oid} not found")
        self._send(200, {"oid": oid, "size": size})

    def h_commit(self, rtype, repo, rev):
        found = self._repo(rtype, repo, write=True)
        if self._flag("create_pr"):
            raise HubError(400, "Pull requests are not supported by this server")
        if rev not in found.refs():
            found.commit(rev)  # an unknown revision answers 404, a commit sha gets the 400 below
            raise HubError(400, f"Can only commit to a branch, not {rev}")
        header, ops = parse_commit(self._body())
        title = header.get("summary") or "Update files"
        sha = found.add_commit(rev, ops, title=title, message=header.get("description") or "",
                               parent=header.get("parentCommit"))
        url = f"{self._web_url(rtype, repo)}/commit/{sha}"
        self._send(200, {"success": True, "commitOid": sha, "commitUrl": url, "pullRequestUrl": None})

    # --- download -------------------------------------------------------------------------

    def h_resolve(self, rtype, repo, rev, path):
        found = self._repo(rtype, repo)
        commit = found.commit(rev)
        headers = {"X-Repo-Commit": commit["id"], "Accept-Ranges": "bytes"}
        entry = commit["files"].get(path)
        if entry is None:  # X-Repo-Commit lets the client cache the miss
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", headers)
        size = entry["size"]
        # The Hub redirects LFS files to a CDN, with the blob's identity in X-Linked-*; this serves them directly.
        headers["ETag"] = f'"{entry["sha256"] if entry["lfs"] else entry["oid"]}"'
        if entry["lfs"]:
            headers.update({"X-Linked-Etag": headers["ETag"], "X-Linked-Size": str(size)})
        start, end, status = 0, size - 1, 200
        if "Range" in self.headers:
            match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers["Range"].strip())
            if match and match.group(1):
                start, end = int(match.group(1)), min(int(match.group(2) or size - 1), size - 1)
            elif match and match.group(2):
                start = max(size - int(match.group(2)), 0)
            if not match or start > end:
                raise HubError(416, "Requested range not satisfiable", None, {"Content-Range": f"bytes */{size}"})
            status, headers["Content-Range"] = 206, f"bytes {start}-{end}/{size}"
        with open(found.object_path(entry["sha256"]), "rb") as f:
            f.seek(start)
            self._send(status, None, headers, "application/octet-stream", file=f, length=end - start + 1)
