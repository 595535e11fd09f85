"""A local, Hub-compatible HTTP server for tests and offline demos.

It answers the part of the Hugging Face Hub API that `huggingface_hub` (with
``HF_HUB_DISABLE_XET=1``) and `transformers` use: repos, branches, whoami, repo info
and trees, preupload, the LFS batch API with basic transfer, NDJSON commits and the
``resolve`` download endpoint. Point a client at it with ``HF_ENDPOINT=<hub.url>``::

    with LocalHub(tmp_path) as hub:
        hub.fail_next("commit", status=500)  # the next commit answers 500
        ...

``python -m hpo.testing.hub_server --root DIR --port 8765`` runs a standalone server.
"""

from __future__ import annotations

import argparse
import threading
from collections import defaultdict, deque
from http.server import ThreadingHTTPServer
from pathlib import Path

from hpo.testing.hub_handler import KINDS, Handler, Request
from hpo.testing.hub_store import HubError, HubStore

__all__ = ["KINDS", "HubError", "LocalHub", "Request"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    hub: LocalHub


class LocalHub:
    """A Hub-compatible server keeping repos under `root`.

    `tokens=None` accepts any token; otherwise a token outside the set answers 401.
    Reads of public repos need no token, writes and private repos need one.
    """

    def __init__(self, root: Path, *, host: str = "127.0.0.1", port: int = 0, tokens: set[str] | None = None,
                 user: str = "user"):
        self.root, self.host, self.port, self.user = Path(root), host, port, user
        self.tokens = set(tokens) if tokens is not None else None
        self.store = HubStore(self.root)
        self.requests: list[Request] = []  # every answered request, in order
        self.url = ""
        self._faults: dict[str, deque[int]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def _bind(self) -> _Server:
        if self._httpd is None:
            self._httpd = _Server((self.host, self.port), Handler)
            self._httpd.hub = self
            self.port = self._httpd.server_address[1]
            self.url = f"http://{self.host}:{self.port}"
        return self._httpd

    def start(self) -> LocalHub:
        if self._thread is None:
            httpd = self._bind()
            self._thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), name="LocalHub", daemon=True)
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted."""
        httpd = self._bind()
        try:
            httpd.serve_forever()
        finally:
            httpd.server_close()
            self._httpd = None

    def stop(self) -> None:
        if self._httpd is not None:
            if self._thread is not None:
                self._httpd.shutdown()
                self._thread.join()
            self._httpd.server_close()
            self._httpd = self._thread = None

    def fail_next(self, kind: str, *, status: int = 500, times: int = 1) -> None:
        """Answer `status` (with a JSON error) to the next `times` requests of `kind`; see KINDS.

        huggingface_hub 2.4 retries 408/429/500/502/503/504 up to 5 times (sleeping 1, 2, 4, 8, 8 s) on
        preupload, lfs_batch, lfs_upload, lfs_verify, tree and commits; a 5xx on the resolve HEAD is retried
        the same way when the file is not cached. commit, create_repo, whoami, repo_info, paths_info, refs,
        branch and validate_yaml are not retried, nor is a 5xx on the resolve GET. Use one of those kinds,
        or a 4xx status, for a failure the client sees at once.
        """
        if kind not in KINDS:
            raise ValueError(f"Unknown request kind {kind!r}; expected one of {sorted(KINDS)}")
        with self._lock:
            self._faults[kind].extend([status] * times)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, kind: str) -> int | None:
        with self._lock:
            queue = self._faults.get(kind)
            return queue.popleft() if queue else None

    def count(self, kind: str, *, status: int | None = None) -> int:
        """How many requests of `kind` were answered, optionally only those with `status`."""
        return sum(r.kind == kind and status in (None, r.status) for r in list(self.requests))

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a local Hugging Face Hub-compatible API.")
    parser.add_argument("--root", type=Path, required=True, help="folder holding the repos")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token", action="append", help="accepted token, repeatable (default: any token)")
    parser.add_argument("--user", default="user", help="user name answered by whoami")
    args = parser.parse_args(argv)
    tokens = set(args.token) if args.token else None
    hub = LocalHub(args.root, host=args.host, port=args.port, tokens=tokens, user=args.user)
    hub._bind()
    print(hub.url, flush=True)
    try:
        hub.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
