"""A proxy in front of a real registry that loses one blob once, as distribution 2.8 can.

When concurrent writers upload the same blob into one repository, distribution 2.8 has been
seen to refuse a manifest with 400 `MANIFEST_BLOB_UNKNOWN` although the blob was uploaded: one
upload's link to it went missing. A real registry cannot be made to do that on demand, so this
proxy (a `FaultProxy` otherwise forwarding everything to `upstream`) does it: the first PUT of
a manifest that names layers is refused that way, and its last layer is forgotten — HEADs of
it answer 404 until it is uploaded again (a PUT `?digest=` of it), as a lost link would.
Every request is recorded in `seen`, the refused PUT with fault "blob-unknown".
"""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from http.server import ThreadingHTTPServer

from tests.servers.faultproxy import FaultProxy, Seen, _Handler
from tests.servers.net import LOOPBACK

_MANIFEST = re.compile(r"^/v2/.+/manifests/[^/]+$")
_UPLOAD = re.compile(r"^/v2/.+/blobs/uploads/")


class ForgetfulProxy(FaultProxy):
    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.forgotten = ""  # the digest whose HEADs answer 404 until it is uploaded again
        self.refused = 0  # manifest PUTs refused (at most one)
        self._state = threading.Lock()

    def start(self) -> ForgetfulProxy:
        proxy = self

        class Handler(_ForgetfulHandler):
            owner = proxy

        self._serve(ThreadingHTTPServer((LOOPBACK, 0), Handler), name="forgetful-proxy")
        return self


class _ForgetfulHandler(_Handler):
    owner: ForgetfulProxy

    def _proxy(self) -> None:
        owner = self.owner
        split = urllib.parse.urlsplit(self.path)
        if self.command == "PUT" and _MANIFEST.match(split.path):
            body = self.read_body()
            layers = json.loads(body).get("layers") or []
            with owner._state:
                refuse = bool(layers) and owner.refused == 0
                if refuse:
                    owner.refused += 1
                    owner.forgotten = layers[-1]["digest"]
            if refuse:
                owner._record(
                    Seen("PUT", split.path, split.query, 400, "blob-unknown", {}, len(body))
                )
                self._answer(400, "MANIFEST_BLOB_UNKNOWN", "blob unknown to registry")
                return
            self._replay(body)
            return
        forgotten = owner.forgotten
        if forgotten and self.command == "HEAD" and split.path.endswith(f"/blobs/{forgotten}"):
            owner._record(Seen("HEAD", split.path, split.query, 404, "forgotten", {}, 0))
            self._answer(404, "BLOB_UNKNOWN", "blob unknown to registry")
            return
        query = urllib.parse.parse_qs(split.query)
        if self.command == "PUT" and _UPLOAD.match(split.path) and query.get("digest"):
            with owner._state:
                if query["digest"][0] == owner.forgotten:
                    owner.forgotten = ""  # uploaded again: the link is back
        super()._proxy()

    def _replay(self, body: bytes) -> None:
        """Forward a request whose body was already read."""
        status, reason, headers, payload = self._forward(self.command, body)
        split = urllib.parse.urlsplit(self.path)
        self.owner._record(Seen(self.command, split.path, split.query, status, "", {}, len(body)))
        self.send_response(status, reason)
        for key, value in headers:
            if key.lower() not in (
                "connection",
                "keep-alive",
                "transfer-encoding",
                "content-length",
            ):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _answer(self, status: int, code: str, message: str) -> None:
        body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
