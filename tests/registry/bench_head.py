"""CPU per manifest HEAD: regplan's request path beside bare httpx and bare httpcore.

Not a test (no `test_` prefix): run it by hand, under `nice -n 19` on a shared machine, as
`python -m tests.registry.bench_head [heads] [rounds]`. It starts one distribution registry on
127.0.0.1, pushes a tiny image, and sends the same HEAD over one kept-alive connection with
each client in turn, round after round, so the figures are measured side by side. CPU is this
process's (the registry's is its own), so a loaded machine slows the wall clock, not the
figures.
"""

from __future__ import annotations

import http.client
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpcore
import httpx

from regplan.config.hosts import Host, TLSMode
from regplan.refs import ImageRef
from regplan.registry.client import RegistryClient
from tests.servers import tinyimage
from tests.servers.distribution import RegistryServer

ACCEPT = "application/vnd.oci.image.manifest.v1+json"


def _cpu_per_call(call: Callable[[], object], n: int) -> float:
    call()  # connect (and learn the auth scheme) outside the measurement
    start = time.process_time()
    for _ in range(n):
        call()
    return (time.process_time() - start) / n * 1000.0


def main() -> None:
    heads = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    with tempfile.TemporaryDirectory() as tmp, RegistryServer(Path(tmp)) as server:
        tinyimage.push(server, "bench/head", ["v1"], "bench")
        url = f"{server.url}/v2/bench/head/manifests/v1"
        pool = httpcore.ConnectionPool()
        client = httpx.Client()
        regplan = RegistryClient([Host(name=server.host, tls=TLSMode.DISABLED)])
        ref = ImageRef.parse(server.ref("bench/head", "v1"))

        def bare_httpcore() -> object:
            response = pool.request("HEAD", url, headers={"Accept": ACCEPT})
            assert response.status == 200
            return response

        def bare_httpx() -> object:
            response = client.head(url, headers={"Accept": ACCEPT})
            assert response.status_code == 200
            return response

        def regplan_head() -> object:
            head = regplan.manifest_head(ref)
            assert head is not None
            return head

        conn = http.client.HTTPConnection(server.host)

        def stdlib() -> object:
            conn.request("HEAD", "/v2/bench/head/manifests/v1", headers={"Accept": ACCEPT})
            response = conn.getresponse()
            response.read()
            assert response.status == 200
            return response

        clients = {
            "http.client": stdlib,
            "httpcore": bare_httpcore,
            "httpx": bare_httpx,
            "regplan": regplan_head,
        }
        figures: dict[str, list[float]] = {name: [] for name in clients}
        for _ in range(rounds):
            for name, call in clients.items():
                figures[name].append(_cpu_per_call(call, heads))
        for name, values in figures.items():
            print(
                f"{name:11} {statistics.median(values):.3f} ms CPU per HEAD "
                f"(rounds: {', '.join(f'{v:.3f}' for v in values)})"
            )
        regplan.close_all()
        client.close()
        pool.close()


if __name__ == "__main__":
    main()
