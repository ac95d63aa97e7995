"""HTTPBackend against real registries: distribution 2.8 (plain, TLS, htpasswd, token auth,
seeded with regclient's test data) and the Python OCI registry with the referrers API.
skopeo reads back what we push, as a client that shares no code with ours."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import orjson
import pytest

from regplan.config.hosts import Host, TLSMode
from regplan.errors import RegistryError, UnauthorizedError
from regplan.oci import mediatypes as mt
from regplan.oci.descriptor import Descriptor
from regplan.oci.manifest import Manifest, parse
from regplan.refs import ImageRef
from regplan.registry import referrers as fallback
from regplan.registry.api import RequestCounter
from regplan.registry.http import HTTPBackend
from tests.servers import skopeo
from tests.servers.distribution import RegistryServer
from tests.servers.ociregistry import OCIRegistry

pytestmark = pytest.mark.integration

LAYOUTS = Path(os.environ.get("REGPLAN_SHARED", "/work/shared")) / "testdata" / "regclient"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_backend(
    server: Any, counter: RequestCounter | None = None, *, max_retries: int = 5, **host: Any
) -> HTTPBackend:
    tls = TLSMode.ENABLED if getattr(server, "tls", None) else TLSMode.DISABLED
    user, password = getattr(server, "user", ""), getattr(server, "password", "")
    options = {"tls": tls, "user": user, "password": password, **host}
    return HTTPBackend(
        [Host(name=server.host, **options)],
        counter=counter,
        retry_delay=0.01,
        max_retries=max_retries,
    )


class Image:
    """A small OCI image built in memory: a config and one layer."""

    def __init__(
        self, layer: bytes, *, subject: Manifest | None = None, artifact_type: str = ""
    ) -> None:
        self.config = orjson.dumps(
            {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}
        )
        self.layer = layer
        body: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": self.desc(self.config, mt.OCI_CONFIG).to_json(),
            "layers": [self.desc(layer, "application/vnd.oci.image.layer.v1.tar").to_json()],
        }
        if artifact_type:
            body["artifactType"] = artifact_type
        if subject is not None:
            body["subject"] = subject.descriptor().to_json()
        self.manifest = parse(orjson.dumps(body))

    @staticmethod
    def desc(data: bytes, media_type: str) -> Descriptor:
        return Descriptor(media_type, sha(data), len(data))

    def push(self, be: HTTPBackend, ref: ImageRef, piece: int = 65536) -> bool:
        for data, media_type in (
            (self.config, mt.OCI_CONFIG),
            (self.layer, "application/octet-stream"),
        ):
            chunks = (data[i : i + piece] for i in range(0, len(data), piece))
            be.blob_put(ref, self.desc(data, media_type), chunks)
        return be.manifest_put(ref, self.manifest)


def read_back_with_skopeo(server: Any, ref: str, tmp_path: Path) -> Path:
    """skopeo copies the image out (verifying every digest) into an OCI layout."""
    layout = tmp_path / "readback"
    skopeo.copy(f"docker://{ref}", f"oci:{layout}:x", src_server=server, preserve_digests=True)
    return layout


# -- pushing ----------------------------------------------------------------------------------


def test_push_monolithic_then_skopeo_reads_it(registry: RegistryServer, tmp_path: Path) -> None:
    be = make_backend(registry)
    image = Image(os.urandom(300_000))
    ref = ImageRef.parse(registry.ref("app", "v1"))
    assert image.push(be, ref) is False  # distribution 2.8 does not index subjects
    assert skopeo.inspect_digest(f"docker://{ref}", server=registry) == image.manifest.digest
    layout = read_back_with_skopeo(registry, str(ref), tmp_path)
    assert (layout / "blobs" / "sha256" / sha(image.layer)[7:]).read_bytes() == image.layer
    log = [(r.method, r.kind) for r in registry.requests()]
    # per blob exactly POST + one PUT; no /v2/ ping; no HEAD (the caller decides)
    assert log[:5] == [("POST", "upload"), ("PUT", "upload")] * 2 + [("PUT", "manifest")]
    assert ("GET", "ping") not in log[:5]


def test_push_chunked_below_blob_max(registry: RegistryServer, tmp_path: Path) -> None:
    be = make_backend(registry, blob_max=100_000, blob_chunk=64 * 1024)
    image = Image(os.urandom(300_000))
    ref = ImageRef.parse(registry.ref("chunked", "v1"))
    image.push(be, ref, piece=10_000)
    patches = [r for r in registry.requests() if r.method == "PATCH"]
    assert len(patches) == 5  # ceil(300000 / 65536); the small config goes in one PUT
    layout = read_back_with_skopeo(registry, str(ref), tmp_path)
    assert (layout / "blobs" / "sha256" / sha(image.layer)[7:]).read_bytes() == image.layer


def test_pull_what_skopeo_pushed(registry: RegistryServer) -> None:
    skopeo.copy(
        f"oci:{LAYOUTS / 'testrepo'}:a1",
        f"docker://{registry.ref('pulled', 'a1')}",
        dest_server=registry,
        preserve_digests=True,
    )
    be = make_backend(registry)
    ref = ImageRef.parse(registry.ref("pulled", "a1"))
    manifest = be.manifest_get(ref)
    for desc in manifest.blobs():
        with be.blob_get(ref, desc) as stream:
            data = b"".join(stream)
        assert sha(data) == desc.digest and be.blob_head(ref, desc.digest) == desc.size


def test_cross_repository_mount(registry: RegistryServer) -> None:
    be = make_backend(registry)
    image = Image(b"shared layer")
    src = ImageRef.parse(registry.ref("src", "v1"))
    image.push(be, src)
    dst = ImageRef.parse(registry.ref("dst", "v1"))
    assert be.blob_head(dst, sha(image.layer)) is None
    assert be.blob_mount(dst, sha(image.layer), src) is True
    assert be.blob_head(dst, sha(image.layer)) == len(image.layer)
    assert be.blob_mount(dst, sha(b"absent"), src) is False


def test_readonly_registry_refuses_writes(readonly_registry: RegistryServer) -> None:
    be = make_backend(readonly_registry)
    with pytest.raises(RegistryError) as info:
        Image(b"x").push(be, ImageRef.parse(readonly_registry.ref("testrepo", "new")))
    assert info.value.status == 405 and "testrepo" in str(info.value)


# -- reading the seeded registry ---------------------------------------------------------------


def layout_tags(repo: str) -> dict[str, dict[str, Any]]:
    index = json.loads((LAYOUTS / repo / "index.json").read_text())
    return {
        m["annotations"]["org.opencontainers.image.ref.name"]: m
        for m in index["manifests"]
        if "org.opencontainers.image.ref.name" in m.get("annotations", {})
    }


def test_seeded_head_get_tags_catalog(seeded_registry: RegistryServer) -> None:
    counter = RequestCounter()
    be = make_backend(seeded_registry, counter)
    tags = layout_tags("testrepo")
    for tag in ("v1", "v2", "a1", "ai", "a-docker"):
        ref = ImageRef.parse(seeded_registry.ref("testrepo", tag))
        head = be.manifest_head(ref)
        assert head is not None
        assert (head.digest, head.media_type, head.size) == (
            tags[tag]["digest"],
            tags[tag]["mediaType"],
            tags[tag]["size"],
        )
        manifest = be.manifest_get(ref)
        assert manifest.digest == tags[tag]["digest"]
        assert be.manifest_get(ref.with_digest(head.digest)).raw == manifest.raw
    assert counter.total(method="HEAD") == 5 and counter.total(method="GET", kind="manifest") == 10
    ref = ImageRef.parse(seeded_registry.ref("testrepo", "v1"))
    assert sorted(be.tag_list(ref)) == skopeo.list_tags(
        f"docker://{seeded_registry.host}/testrepo", server=seeded_registry
    )
    assert set(tags) <= set(be.tag_list(ref))
    assert be.catalog(ImageRef.registry_host(seeded_registry.host)) == ["external", "testrepo"]
    assert be.manifest_head(ref.with_tag("missing")) is None
    with pytest.raises(RegistryError, match="not found"):
        be.tag_list(ImageRef.parse(seeded_registry.ref("nothing-here", "x")))
    assert counter.total(kind="ping") == 0


def test_referrers_through_the_fallback_tag(seeded_registry: RegistryServer) -> None:
    be = make_backend(seeded_registry)
    ref = ImageRef.parse(seeded_registry.ref("testrepo", "v2"))
    subject = be.manifest_head(ref)
    assert subject is not None
    assert be.referrers_api(ref) is False
    expected = json.loads(
        skopeo.inspect_raw(
            f"docker://{seeded_registry.ref('testrepo', 'sha256-' + subject.digest[7:])}",
            server=seeded_registry,
        )
    )["manifests"]
    found = be.referrers(ref, subject.digest)
    assert [d.digest for d in found] == [e["digest"] for e in expected]
    sboms = be.referrers(ref, subject.digest, artifact_type="application/example.sbom")
    assert sboms and all(d.artifact_type == "application/example.sbom" for d in sboms)


def test_fallback_maintained_on_distribution(registry: RegistryServer) -> None:
    be = make_backend(registry)
    ref = ImageRef.parse(registry.ref("app", "v1"))
    subject = Image(b"subject layer")
    subject.push(be, ref)
    sbom = Image(b"sbom", subject=subject.manifest, artifact_type="application/sbom")
    sbom_ref = ref.with_digest(sbom.manifest.digest)
    assert sbom.push(be, sbom_ref) is False
    assert fallback.add_to_fallback(be, ref.repo(), sbom.manifest) is True
    found = be.referrers(ref, subject.manifest.digest)
    assert [(d.digest, d.artifact_type) for d in found] == [
        (sbom.manifest.digest, "application/sbom")
    ]


def test_referrers_api(referrers_registry: OCIRegistry) -> None:
    counter = RequestCounter()
    be = HTTPBackend([Host(name=referrers_registry.host, tls=TLSMode.DISABLED)], counter=counter)
    ref = ImageRef.parse(referrers_registry.ref("app", "v1"))
    subject = Image(b"subject")
    subject.push(be, ref)
    sbom = Image(b"sbom", subject=subject.manifest, artifact_type="application/sbom")
    sig = Image(b"sig", subject=subject.manifest, artifact_type="application/sig")
    assert sbom.push(be, ref.with_digest(sbom.manifest.digest)) is True  # OCI-Subject
    assert sig.push(be, ref.with_digest(sig.manifest.digest)) is True
    assert be.referrers_api(ref) is True
    found = be.referrers(ref, subject.manifest.digest)
    assert {d.digest for d in found} == {sbom.manifest.digest, sig.manifest.digest}
    only = be.referrers(ref, subject.manifest.digest, artifact_type="application/sig")
    assert [d.digest for d in only] == [sig.manifest.digest]
    assert counter.total(kind="referrers") == 3  # one probe, two listings
    assert not any(
        r.path.endswith("sha256-" + subject.manifest.digest[7:])
        for r in referrers_registry.requests()
    )


# -- TLS and authentication --------------------------------------------------------------------


def test_tls_verified_with_regcert_and_refused_without(tls_registry: RegistryServer) -> None:
    ref = ImageRef.parse(tls_registry.ref("app", "v1"))
    trusted = make_backend(tls_registry, regcert=tls_registry.ca_pem)
    image = Image(b"over tls")
    image.push(trusted, ref)
    assert trusted.manifest_head(ref).digest == image.manifest.digest  # type: ignore[union-attr]
    untrusted = make_backend(tls_registry, max_retries=0)
    with pytest.raises(RegistryError, match=r"certificate|CERTIFICATE") as info:
        untrusted.manifest_head(ref)
    assert tls_registry.host in str(info.value)
    insecure = make_backend(tls_registry, tls=TLSMode.INSECURE)
    assert insecure.manifest_head(ref) is not None


def test_basic_auth(auth_registry: RegistryServer) -> None:
    counter = RequestCounter()
    be = make_backend(auth_registry, counter)
    ref = ImageRef.parse(auth_registry.ref("app", "v1"))
    Image(b"basic").push(be, ref)
    counter.counts.clear()
    assert be.manifest_head(ref) is not None
    assert counter.total() == 1  # Basic is sent up front once the scheme is known
    with pytest.raises(UnauthorizedError):
        make_backend(auth_registry, password="wrong").manifest_head(ref)
    with pytest.raises(UnauthorizedError):
        make_backend(auth_registry, user="", password="").manifest_head(ref)


def test_token_auth_fetches_one_token_for_many_heads(token_registry: RegistryServer) -> None:
    tokens = token_registry.token_server
    assert tokens is not None
    be = make_backend(token_registry)
    ref = ImageRef.parse(token_registry.ref("app", "v1"))
    Image(b"token").push(be, ref)
    tokens.clear_requests()
    token_registry.clear_requests()
    counter = RequestCounter()
    reader = make_backend(token_registry, counter)

    def heads() -> None:
        for _ in range(10):
            assert reader.manifest_head(ref) is not None

    threads = [threading.Thread(target=heads) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    fetched = tokens.requests()
    assert len(fetched) == 1 and fetched[0].scopes == ("repository:app:pull",)
    assert fetched[0].account == token_registry.user
    heads_seen = [r for r in token_registry.requests() if r.method == "HEAD"]
    assert len(heads_seen) == 31 and sum(r.status == 401 for r in heads_seen) == 1
    assert counter.total(kind="manifest") == 31 and counter.total(kind="token") == 1


def test_repo_auth_fetches_one_token_per_repository(token_registry: RegistryServer) -> None:
    tokens = token_registry.token_server
    assert tokens is not None
    writer = make_backend(token_registry)
    for repo in ("one", "two"):
        Image(repo.encode()).push(writer, ImageRef.parse(token_registry.ref(repo, "v1")))
    for repo_auth, expected in (
        (True, [("repository:one:pull",), ("repository:two:pull",)]),
        (False, [("repository:one:pull",), ("repository:one:pull", "repository:two:pull")]),
    ):
        tokens.clear_requests()
        be = make_backend(token_registry, repo_auth=repo_auth)
        for repo in ("one", "two", "one", "two"):
            assert be.manifest_head(ImageRef.parse(token_registry.ref(repo, "v1"))) is not None
        assert [tuple(sorted(r.scopes)) for r in tokens.requests()] == expected


def test_token_auth_refused_for_wrong_password(token_registry: RegistryServer) -> None:
    be = make_backend(token_registry, password="nope-not-it")
    with pytest.raises(UnauthorizedError) as info:
        be.manifest_head(ImageRef.parse(token_registry.ref("app", "v1")))
    assert "nope-not-it" not in str(info.value)


# -- mirrors and path prefixes ------------------------------------------------------------------


def test_reads_through_a_mirror_writes_to_the_upstream(
    registry: RegistryServer, seeded_registry: RegistryServer
) -> None:
    upstream = Host(name=registry.host, tls=TLSMode.DISABLED, mirrors=(seeded_registry.host,))
    mirror = Host(name=seeded_registry.host, tls=TLSMode.DISABLED, priority=1)
    be = HTTPBackend([upstream, mirror], retry_delay=0.01)
    ref = ImageRef.parse(registry.ref("testrepo", "v1"))
    head = be.manifest_head(ref)
    assert head is not None and head.digest == layout_tags("testrepo")["v1"]["digest"]
    assert "v1" in be.tag_list(ref)
    assert be.catalog(ImageRef.registry_host(registry.host)) == []  # never through a mirror
    mirror_reads = [r for r in seeded_registry.requests() if r.kind in ("manifest", "tags")]
    assert mirror_reads and all(unquote(r.query) == f"ns={registry.host}" for r in mirror_reads)
    assert be.manifest_head(ref.with_tag("absent")) is None  # mirror 404 → upstream 404
    Image(b"pushed").push(be, ref.with_tag("new"))
    assert skopeo.exists(f"docker://{registry.ref('testrepo', 'new')}", server=registry)
    assert not any(r.method in ("PUT", "POST", "PATCH") for r in seeded_registry.requests())


def test_path_prefix(registry: RegistryServer) -> None:
    be = make_backend(registry, path_prefix="/team/")
    image = Image(b"prefixed")
    image.push(be, ImageRef.parse(registry.ref("app", "v1")))
    assert (
        skopeo.inspect_digest(f"docker://{registry.ref('team/app', 'v1')}", server=registry)
        == image.manifest.digest
    )
    assert be.catalog(ImageRef.registry_host(registry.host)) == ["app"]
