"""Benchmark (not a test): stream one big blob between two local distribution registries with
HTTPBackend, and compare with a plain `curl -T` and a plain httpx PUT of the same file.

    python -m tests.registry.bench_blob_copy [SIZE_MIB]

Prints MB/s for each and the peak RSS of this process (ru_maxrss) before and after the
regplan copy: streaming must keep it flat whatever the blob size.
"""

from __future__ import annotations

import hashlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from regplan.config.hosts import Host, TLSMode
from regplan.oci.descriptor import Descriptor
from regplan.refs import ImageRef
from regplan.registry.http import HTTPBackend
from tests.servers.distribution import RegistryServer

MIB = 1024 * 1024


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def make_blob(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    block = os.urandom(4 * MIB)
    with path.open("wb") as out:
        written = 0
        while written < size:
            piece = block[: min(len(block), size - written)]
            out.write(piece)
            digest.update(piece)
            written += len(piece)
    return "sha256:" + digest.hexdigest()


def start_upload(server: RegistryServer, repo: str) -> str:
    reply = httpx.post(f"{server.url}/v2/{repo}/blobs/uploads/")
    reply.raise_for_status()
    return str(reply.url.join(reply.headers["location"]))


def with_digest(location: str, digest: str) -> str:
    return f"{location}{'&' if '?' in location else '?'}digest={digest.replace(':', '%3A')}"


def file_chunks(path: Path, size: int = MIB) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(size):
            yield chunk


def main() -> None:
    size = int(sys.argv[1]) * MIB if len(sys.argv) > 1 else 384 * MIB
    with tempfile.TemporaryDirectory(prefix="regplan-bench-") as tmp:
        work = Path(tmp)
        blob = work / "blob"
        digest = make_blob(blob, size)
        desc = Descriptor("application/octet-stream", digest, size)
        mb = size / 1e6
        with RegistryServer(work / "a") as a, RegistryServer(work / "b") as b:
            # curl -T: seeds the source registry (no hashing on the client)
            location = start_upload(a, "src")
            t = time.perf_counter()
            subprocess.run(
                ["curl", "-sSf", "-T", str(blob), "-X", "PUT", with_digest(location, digest)],
                check=True,
            )
            curl_s = time.perf_counter() - t

            # plain httpx PUT of the file (streamed, explicit Content-Length, no hashing)
            location = start_upload(b, "plain")
            t = time.perf_counter()
            with httpx.Client(timeout=600) as client:
                r = client.put(
                    with_digest(location, digest),
                    content=file_chunks(blob),
                    headers={"Content-Length": str(size)},
                )
                r.raise_for_status()
            httpx_s = time.perf_counter() - t

            rss_before = peak_rss_mib()
            be = HTTPBackend(
                [Host(name=a.host, tls=TLSMode.DISABLED), Host(name=b.host, tls=TLSMode.DISABLED)]
            )
            src = ImageRef.parse(f"{a.host}/src:x")
            dst = ImageRef.parse(f"{b.host}/copy:x")
            t = time.perf_counter()
            with be.blob_get(src, desc) as stream:
                be.blob_put(dst, desc, stream)
            copy_s = time.perf_counter() - t
            assert be.blob_head(dst, digest) == size
            rss_after = peak_rss_mib()
            be.close_all()

            # regplan upload alone (file → registry, hashing once)
            t = time.perf_counter()
            be = HTTPBackend([Host(name=b.host, tls=TLSMode.DISABLED)])
            be.blob_put(ImageRef.parse(f"{b.host}/upload:x"), desc, file_chunks(blob))
            upload_s = time.perf_counter() - t
            be.close_all()
    print(f"blob: {size // MIB} MiB")
    print(f"curl -T PUT (file → registry, no hash):        {mb / curl_s:7.0f} MB/s")
    print(f"httpx PUT (file → registry, no hash):          {mb / httpx_s:7.0f} MB/s")
    print(f"regplan blob_put (file → registry, sha256):    {mb / upload_s:7.0f} MB/s")
    print(
        f"regplan blob_get → blob_put (registry → registry, sha256 twice): {mb / copy_s:7.0f} MB/s"
    )
    print(f"peak RSS: {rss_before:.0f} MiB before the copy, {rss_after:.0f} MiB after")


if __name__ == "__main__":
    main()
