"""The least a Python program does for a no-op: S2's requests and nothing else.

Reads a list of `GET url` / `HEAD url url` lines: each GET first (the tag lists), then each
pair of HEADs one after the other on one of `--threads` threads with kept-alive stdlib
`http.client` connections, comparing the two digests. No config, no command line, no plan,
no third-party import: what is left of regplan's no-op once its own work costs nothing. The
benchmark runs it beside regplan, with and without importing the libraries regplan is built
on, so that the S2 ratio can be read against what Python on this machine allows.

    python bench/python_floor.py REQUESTS [--threads N] [--import typer,httpx,yaml]
"""

from __future__ import annotations

import argparse
import http.client
import importlib
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)
_local = threading.local()


def _send(method: str, url: str) -> http.client.HTTPResponse:
    parts = urlsplit(url)
    connections: dict[str, http.client.HTTPConnection] = _local.__dict__.setdefault("c", {})
    conn = connections.get(parts.netloc)
    if conn is None:
        conn = connections[parts.netloc] = http.client.HTTPConnection(parts.netloc, timeout=60)
    conn.request(method, parts.path, headers={"Accept": ACCEPT})
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        raise SystemExit(f"{method} {url}: {response.status}")
    return response


def _same(pair: tuple[str, str]) -> bool:
    a, b = (_send("HEAD", url).getheader("Docker-Content-Digest") for url in pair)
    return a == b


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("requests")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--import", dest="modules", default="")
    args = parser.parse_args()
    for name in filter(None, args.modules.split(",")):
        importlib.import_module(name)
    gets: list[str] = []
    pairs: list[tuple[str, str]] = []
    with open(args.requests) as f:
        for line in f:
            method, *urls = line.split()
            if method == "GET":
                gets.append(urls[0])
            else:
                pairs.append((urls[0], urls[1]))
    with ThreadPoolExecutor(args.threads) as pool:
        list(pool.map(lambda url: _send("GET", url), gets))
        same = list(pool.map(_same, pairs))
    if not all(same):
        print(f"{same.count(False)} of {len(same)} targets differ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
