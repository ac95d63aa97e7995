"""The Python OCI registry follows the distribution spec and serves the referrers API."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import rawpush, skopeo
from tests.servers.ociregistry import OCI_INDEX, OCIRegistry

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
EMPTY_CONFIG = b"{}"
V2_DIGEST = "sha256:dfae8f425735a5e3a72e40d6609e03079995511d48157c74d54801ff4430491e"
V3_DIGEST = "sha256:6fe828b32b9b4572f32b16c1c0a4d675660b19ec207d010724309374252c2d6d"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def client(referrers_registry: OCIRegistry) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=referrers_registry.url) as c:
        yield c


def push_blob(client: httpx.Client, repo: str, data: bytes) -> str:
    digest = sha256(data)
    response = client.post(f"/v2/{repo}/blobs/uploads/?digest={digest}", content=data)
    assert response.status_code == 201, response.text
    return digest


def artifact(subject: bytes, artifact_type: str, payload: bytes, **annotations: str) -> bytes:
    """An artifact manifest referring to the manifest `subject`."""
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {
            "mediaType": "application/vnd.oci.empty.v1+json",
            "digest": sha256(EMPTY_CONFIG),
            "size": 2,
        },
        "layers": [{"mediaType": artifact_type, "digest": sha256(payload), "size": len(payload)}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": sha256(subject), "size": len(subject)},
    }
    if annotations:
        doc["annotations"] = annotations
    return json.dumps(doc).encode()


def push_image_with_referrers(client: httpx.Client, repo: str) -> tuple[bytes, list[bytes]]:
    push_blob(client, repo, EMPTY_CONFIG)
    layer = push_blob(client, repo, b"layer")
    image = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": sha256(EMPTY_CONFIG),
                "size": 2,
            },
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": 5}
            ],
        }
    ).encode()
    assert (
        client.put(
            f"/v2/{repo}/manifests/v1", content=image, headers={"Content-Type": OCI_MANIFEST}
        ).status_code
        == 201
    )
    referrers = []
    for kind, payload in [
        ("application/spdx+json", b"sbom"),
        ("application/vnd.example.sig", b"sig"),
        ("application/spdx+json", b"sbom2"),
    ]:
        push_blob(client, repo, payload)
        body = artifact(image, kind, payload, note=payload.decode())
        response = client.put(
            f"/v2/{repo}/manifests/{sha256(body)}",
            content=body,
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert response.status_code == 201
        assert response.headers["OCI-Subject"] == sha256(image)
        referrers.append(body)
    return image, referrers


def test_referrers_api_lists_and_filters(client: httpx.Client) -> None:
    image, referrers = push_image_with_referrers(client, "app")
    listing = client.get(f"/v2/app/referrers/{sha256(image)}")
    assert listing.status_code == 200
    assert listing.headers["Content-Type"] == OCI_INDEX
    assert "OCI-Filters-Applied" not in listing.headers
    index = listing.json()
    assert index["mediaType"] == OCI_INDEX
    assert {m["digest"] for m in index["manifests"]} == {sha256(r) for r in referrers}
    sbom = next(m for m in index["manifests"] if m["digest"] == sha256(referrers[0]))
    assert sbom == {
        "mediaType": OCI_MANIFEST,
        "digest": sha256(referrers[0]),
        "size": len(referrers[0]),
        "artifactType": "application/spdx+json",
        "annotations": {"note": "sbom"},
    }
    filtered = client.get(
        f"/v2/app/referrers/{sha256(image)}", params={"artifactType": "application/spdx+json"}
    )
    assert filtered.headers["OCI-Filters-Applied"] == "artifactType"
    assert {m["digest"] for m in filtered.json()["manifests"]} == {
        sha256(referrers[0]),
        sha256(referrers[2]),
    }
    # Unknown subjects have an empty list, not a 404; a malformed digest is a 400.
    assert client.get(f"/v2/app/referrers/{sha256(b'none')}").json()["manifests"] == []
    assert client.get("/v2/app/referrers/sha256:abc").status_code == 400


def test_referrers_pagination_follows_link(
    referrers_registry: OCIRegistry, client: httpx.Client
) -> None:
    image, referrers = push_image_with_referrers(client, "app")
    referrers_registry.page_size = 2
    seen, url, pages = [], f"/v2/app/referrers/{sha256(image)}", 0
    while url:
        response = client.get(url)
        pages += 1
        seen += [m["digest"] for m in response.json()["manifests"]]
        url = response.links.get("next", {}).get("url", "")
    assert pages == 2 and sorted(seen) == sorted(sha256(r) for r in referrers)


def test_referrers_match_the_regclient_fallback_tags(
    referrers_registry: OCIRegistry, client: httpx.Client, regclient_testdata: Path
) -> None:
    """Pushing regclient's testrepo: the referrers API agrees with every fallback-tag index, and
    also finds v3's referrers, which were pushed without a fallback tag."""
    skopeo.seed_layout(
        regclient_testdata / "testrepo", referrers_registry, "testrepo", use_skopeo=False
    )
    layout = rawpush.Layout(regclient_testdata / "testrepo")
    checked = 0
    for entry in layout.entries():
        if not entry.tag.startswith("sha256-") or entry.media_type != OCI_INDEX:
            continue
        fallback = json.loads(layout.blob(entry.digest))
        if "." in entry.tag or not fallback.get("manifests") or fallback.get("subject"):
            continue
        subject = "sha256:" + entry.tag.removeprefix("sha256-")
        if subject == entry.digest:  # `mirror`: a digest tag naming itself, not a fallback index
            continue
        api = client.get(f"/v2/testrepo/referrers/{subject}").json()["manifests"]
        assert {(m["digest"], m["artifactType"]) for m in api} == {
            (m["digest"], m["artifactType"]) for m in fallback["manifests"]
        }, entry.tag
        checked += 1
    assert checked == 6
    v3 = client.get(f"/v2/testrepo/referrers/{V3_DIGEST}").json()["manifests"]
    assert {m["artifactType"] for m in v3} == {"application/example.sbom"} and len(v3) == 2


def test_manifest_head_get_delete(client: httpx.Client) -> None:
    image, _ = push_image_with_referrers(client, "app")
    head = client.head("/v2/app/manifests/v1")
    assert head.status_code == 200
    assert head.headers["Docker-Content-Digest"] == sha256(image)
    assert head.headers["Content-Type"] == OCI_MANIFEST
    assert int(head.headers["Content-Length"]) == len(image)
    assert client.get(f"/v2/app/manifests/{sha256(image)}").content == image
    # Deleting a tag keeps the manifest; deleting the digest removes it and its tags.
    client.put("/v2/app/manifests/v1-alias", content=image, headers={"Content-Type": OCI_MANIFEST})
    assert client.delete("/v2/app/manifests/v1").status_code == 202
    assert client.head("/v2/app/manifests/v1").status_code == 404
    assert client.head(f"/v2/app/manifests/{sha256(image)}").status_code == 200
    assert client.delete(f"/v2/app/manifests/{sha256(image)}").status_code == 202
    assert client.head("/v2/app/manifests/v1-alias").status_code == 404
    missing = client.get("/v2/nope/manifests/v1")
    assert missing.status_code == 404 and missing.json()["errors"][0]["code"] == "NAME_UNKNOWN"


def test_manifest_put_is_validated(client: httpx.Client) -> None:
    unknown_blob = artifact(b"x", "a/b", b"never pushed")
    put = client.put(
        "/v2/app/manifests/v1", content=unknown_blob, headers={"Content-Type": OCI_MANIFEST}
    )
    assert put.status_code == 400 and put.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"
    push_blob(client, "app", EMPTY_CONFIG)
    push_blob(client, "app", b"p")
    body = artifact(b"x", "a/b", b"p")  # its subject need not exist
    wrong_digest = client.put(
        f"/v2/app/manifests/{sha256(b'other')}",
        content=body,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert (
        wrong_digest.status_code == 400
        and wrong_digest.json()["errors"][0]["code"] == "DIGEST_INVALID"
    )
    wrong_type = client.put(
        "/v2/app/manifests/v1", content=body, headers={"Content-Type": OCI_INDEX}
    )
    assert wrong_type.status_code == 400
    bad_tag = client.put(
        "/v2/app/manifests/-bad", content=body, headers={"Content-Type": OCI_MANIFEST}
    )
    assert bad_tag.status_code == 400 and bad_tag.json()["errors"][0]["code"] == "TAG_INVALID"
    ok = client.put("/v2/app/manifests/v1", content=body, headers={"Content-Type": OCI_MANIFEST})
    assert ok.status_code == 201 and ok.headers["Docker-Content-Digest"] == sha256(body)
    assert ok.headers["Location"] == f"/v2/app/manifests/{sha256(body)}"


def test_blob_uploads_verify_digests(referrers_registry: OCIRegistry, client: httpx.Client) -> None:
    data = b"0123456789" * 10
    digest = sha256(data)
    # Monolithic POST with a wrong digest is refused and stores nothing.
    bad = client.post(f"/v2/app/blobs/uploads/?digest={sha256(b'x')}", content=data)
    assert bad.status_code == 400 and bad.json()["errors"][0]["code"] == "DIGEST_INVALID"
    # Chunked: PATCH with Content-Range, follow Location, then PUT ?digest=.
    referrers_registry.chunk_min_length = 40
    start = client.post("/v2/app/blobs/uploads/")
    assert start.status_code == 202 and start.headers["OCI-Chunk-Min-Length"] == "40"
    location = start.headers["Location"]
    first = client.patch(location, content=data[:40], headers={"Content-Range": "0-39"})
    assert first.status_code == 202 and first.headers["Range"] == "0-39"
    out_of_order = client.patch(
        first.headers["Location"], content=data[50:], headers={"Content-Range": "50-99"}
    )
    assert out_of_order.status_code == 416
    # A streamed PATCH (chunked transfer encoding, no Content-Range) appends too.
    streamed = client.patch(first.headers["Location"], content=iter([data[40:70], data[70:]]))
    assert streamed.status_code == 202 and streamed.headers["Range"] == "0-99"
    assert client.get(location).status_code == 204
    wrong = client.put(f"{location}?digest={sha256(b'nope')}")
    assert wrong.status_code == 400
    done = client.put(f"{location}?digest={digest}")
    assert done.status_code == 201 and done.headers["Docker-Content-Digest"] == digest
    head = client.head(f"/v2/app/blobs/{digest}")
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(data)
    assert client.get(f"/v2/app/blobs/{digest}").content == data
    # Cross-repository mount: 201 when the source has it, a new session (202) otherwise.
    assert client.post(f"/v2/other/blobs/uploads/?mount={digest}&from=app").status_code == 201
    assert client.head(f"/v2/other/blobs/{digest}").status_code == 200
    assert client.post(f"/v2/third/blobs/uploads/?mount={digest}&from=nope").status_code == 202
    assert client.head(f"/v2/third/blobs/{digest}").status_code == 404
    assert client.delete(f"/v2/other/blobs/{digest}").status_code == 202
    assert client.head(f"/v2/other/blobs/{digest}").status_code == 404


def test_tags_and_catalog_paginate(referrers_registry: OCIRegistry, client: httpx.Client) -> None:
    push_blob(client, "app", EMPTY_CONFIG)
    push_blob(client, "app", b"p")
    body = artifact(b"x", "a/b", b"p")
    tags = [f"t{i}" for i in range(5)]
    for repo in ("a", "b", "c"):
        client.post(f"/v2/{repo}/blobs/uploads/?mount={sha256(EMPTY_CONFIG)}&from=app")
        client.post(f"/v2/{repo}/blobs/uploads/?mount={sha256(b'p')}&from=app")
        for tag in tags:
            assert (
                client.put(
                    f"/v2/{repo}/manifests/{tag}",
                    content=body,
                    headers={"Content-Type": OCI_MANIFEST},
                ).status_code
                == 201
            )
    page = client.get("/v2/a/tags/list", params={"n": 2})
    assert page.json() == {"name": "a", "tags": ["t0", "t1"]}
    assert page.headers["Link"] == '</v2/a/tags/list?last=t1&n=2>; rel="next"'
    last = client.get("/v2/a/tags/list", params={"n": 2, "last": "t3"})
    assert last.json()["tags"] == ["t4"] and "Link" not in last.headers
    referrers_registry.page_size = 2  # pages even when the client asks for no `n`
    collected, url = [], "/v2/_catalog"
    while url:
        response = client.get(url)
        collected += response.json()["repositories"]
        url = response.links.get("next", {}).get("url", "")
    assert collected == ["a", "b", "c"]  # `app` only has blobs, no manifests
    assert client.get("/v2/nope/tags/list").status_code == 404


def test_read_only_and_no_referrers_api() -> None:
    with (
        OCIRegistry(read_only=True, referrers_api=False) as server,
        httpx.Client(base_url=server.url) as c,
    ):
        assert c.get("/v2/").status_code == 200
        refused = c.post("/v2/app/blobs/uploads/")
        assert refused.status_code == 405 and refused.json()["errors"][0]["code"] == "UNSUPPORTED"
        assert c.put("/v2/app/manifests/v1", content=b"{}").status_code == 405
        assert c.get(f"/v2/app/referrers/{sha256(b'x')}").status_code == 404
    assert [(r.method, r.status) for r in server.requests()] == [
        ("GET", 200), ("POST", 405), ("PUT", 405), ("GET", 404),
    ]  # fmt: skip


def test_skopeo_round_trip_and_restart(
    referrers_registry: OCIRegistry, regclient_testdata: Path
) -> None:
    ref = f"docker://{referrers_registry.ref('app', 'v2')}"
    skopeo.copy(
        f"oci:{regclient_testdata / 'testrepo'}:v2",
        ref,
        preserve_digests=True,
        dest_server=referrers_registry,
    )
    assert skopeo.inspect_digest(ref, server=referrers_registry) == V2_DIGEST
    port = referrers_registry.port
    referrers_registry.stop()
    referrers_registry.start()
    assert referrers_registry.port == port
    assert skopeo.list_tags(
        f"docker://{referrers_registry.host}/app", server=referrers_registry
    ) == ["v2"]
