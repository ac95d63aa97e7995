"""HTTPBackend behaviour no real registry can be made to show: lying digests, oversized and
malformed manifests, resets mid-body, 5xx storms, Retry-After, rate-limit headers, mirrors."""

from __future__ import annotations

import email.utils
import io
import logging
import re
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest

from regplan import logs
from regplan.config.hosts import Host
from regplan.errors import (
    DigestMismatchError,
    ManifestError,
    NotFoundError,
    RateLimitedError,
    RegistryError,
    UnauthorizedError,
)
from regplan.oci import mediatypes as mt
from regplan.oci.manifest import parse
from regplan.refs import ImageRef
from regplan.registry.api import RateLimitInfo, RequestCounter
from regplan.registry.http import ReopenableChunks, next_link, parse_rate_limit, with_query
from regplan.registry.transport import HostTransport, Reply, RetryPolicy, redact_url, retry_after

from .mock import REG, BreakingStream, Recorder, backend, blob_desc, sha

MANIFEST = orjson.dumps(
    {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_CONFIG, "digest": sha(b"{}"), "size": 2},
        "layers": [],
    }
)
DIGEST = sha(MANIFEST)
REF = ImageRef.parse(f"{REG}/team/app:v1")


def manifest_response(body: bytes = MANIFEST, **headers: str) -> httpx.Response:
    base = {"Content-Type": mt.OCI_MANIFEST, "Docker-Content-Digest": sha(body)}
    base.update({k.replace("_", "-"): v for k, v in headers.items()})
    return httpx.Response(200, headers=base, content=body)


# -- pure helpers -----------------------------------------------------------------------------


def test_retry_after_seconds_date_and_garbage() -> None:
    assert retry_after(httpx.Headers({"Retry-After": "7"})) == 7.0
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= retry_after(httpx.Headers({"Retry-After": when})) <= 31  # type: ignore[operator]
    past = email.utils.formatdate(time.time() - 30, usegmt=True)
    assert retry_after(httpx.Headers({"Retry-After": past})) == 0.0
    assert retry_after(httpx.Headers({"Retry-After": "soon"})) is None
    assert retry_after(httpx.Headers()) is None


def test_backoff_is_exponential_and_bounded() -> None:
    policy = RetryPolicy(delay=0.1, max_delay=2.0, max_retries=10)
    for attempt in range(1, 12):
        delay = policy.backoff(attempt)
        assert 0.08 * min(2 ** (attempt - 1), 20) <= delay <= 2.0
    assert policy.backoff(50) <= 2.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (
            {"RateLimit-Limit": "100;w=21600", "RateLimit-Remaining": "76;w=21600"},
            RateLimitInfo(limit=100, remaining=76, policy="w=21600"),
        ),
        (
            {"RateLimit-Remaining": "5", "RateLimit-Reset": "1700000000"},
            RateLimitInfo(remaining=5),
        ),
        ({"RateLimit-Limit": "200, 200;w=3600"}, RateLimitInfo(limit=200, policy="w=3600")),
        ({}, None),
    ],
)
def test_parse_rate_limit(headers: dict[str, str], expected: RateLimitInfo | None) -> None:
    assert parse_rate_limit(httpx.Headers(headers)) == expected


def test_next_link_resolves_relative_and_with_query_appends() -> None:
    reply = Reply(
        200,
        httpx.Headers({"Link": '</v2/a/tags/list?last=x&n=2>; rel="next"'}),
        b"",
        httpx.URL("https://reg.test/v2/a/tags/list?n=2"),
    )
    assert str(next_link(reply)) == "https://reg.test/v2/a/tags/list?last=x&n=2"
    assert next_link(Reply(200, httpx.Headers(), b"", reply.url)) is None
    assert (
        with_query("https://r/u/1?_state=abc", "digest", "sha256:1")
        == "https://r/u/1?_state=abc&digest=sha256%3A1"
    )
    assert with_query("https://r/u/1", "digest", "sha256:1") == "https://r/u/1?digest=sha256%3A1"


def test_redact_url() -> None:
    url = "https://s3.test/b/o?X-Amz-Credential=AKIA&X-Amz-Signature=abc&partNumber=1&token=t"
    redacted = redact_url(url)
    assert "AKIA" not in redacted and "abc" not in redacted and "=t" not in redacted
    assert "partNumber=1" in redacted
    assert redact_url("https://user:pw@host/x") == "https://host/x"


# -- manifests --------------------------------------------------------------------------------


def test_manifest_head_sends_full_accept_and_parses_rate_limit() -> None:
    rec = Recorder(
        lambda r: httpx.Response(
            200,
            headers={
                "Content-Type": mt.OCI_MANIFEST,
                "Docker-Content-Digest": DIGEST,
                "Content-Length": str(len(MANIFEST)),
                "RateLimit-Limit": "100;w=21600",
                "RateLimit-Remaining": "99;w=21600",
            },
        )
    )
    be = backend(rec)
    head = be.manifest_head(REF)
    assert head is not None
    assert (head.digest, head.media_type, head.size) == (DIGEST, mt.OCI_MANIFEST, len(MANIFEST))
    assert head.rate_limit == RateLimitInfo(limit=100, remaining=99, policy="w=21600")
    assert be.rate_limits() == {REG: head.rate_limit}
    assert rec.lines() == ["HEAD /v2/team/app/manifests/v1"]
    accept = rec.requests[0].headers["accept"]
    assert [a.strip() for a in accept.split(",")] == list(mt.MANIFEST_ACCEPT)


def test_manifest_head_without_digest_falls_back_to_get() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "HEAD":
            return httpx.Response(200, headers={"Content-Type": mt.OCI_MANIFEST})
        return httpx.Response(200, headers={"Content-Type": mt.OCI_MANIFEST}, content=MANIFEST)

    rec = Recorder(handler)
    head = backend(rec).manifest_head(REF)
    assert head is not None and head.digest == DIGEST and head.size == len(MANIFEST)
    assert [r.method for r in rec.requests] == ["HEAD", "GET"]


def test_disable_head_uses_get_only() -> None:
    rec = Recorder(lambda r: manifest_response())
    be = backend(rec, Host(name=REG, api_opts=(("disableHead", "true"),)))
    assert be.manifest_head(REF).digest == DIGEST  # type: ignore[union-attr]
    assert [r.method for r in rec.requests] == ["GET"]


def test_manifest_head_absent_is_none_and_get_absent_raises() -> None:
    be = backend(
        lambda r: httpx.Response(
            404, json={"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}
        )
    )
    assert be.manifest_head(REF) is None
    with pytest.raises(NotFoundError) as info:
        be.manifest_get(REF)
    assert "reg.test/team/app:v1" in str(info.value) and "MANIFEST_UNKNOWN" in str(info.value)


def test_manifest_get_verifies_the_requested_digest() -> None:
    other = MANIFEST.replace(b"[]", b"[ ]")
    be = backend(lambda r: manifest_response(other))
    with pytest.raises(DigestMismatchError):
        be.manifest_get(REF.with_digest(DIGEST))


def test_manifest_get_verifies_the_advertised_digest() -> None:
    be = backend(lambda r: manifest_response(Docker_Content_Digest=sha(b"something else")))
    with pytest.raises(DigestMismatchError):
        be.manifest_get(REF)


def test_manifest_head_by_digest_with_other_digest_is_refused() -> None:
    be = backend(
        lambda r: httpx.Response(
            200,
            headers={
                "Content-Type": mt.OCI_MANIFEST,
                "Docker-Content-Digest": sha(b"x"),
                "Content-Length": "3",
            },
        )
    )
    with pytest.raises(DigestMismatchError):
        be.manifest_head(REF.with_digest(DIGEST))


def test_oversized_manifest_refused_by_content_length() -> None:
    big = b" " * (mt.MAX_MANIFEST_SIZE + 1)
    be = backend(
        lambda r: httpx.Response(200, headers={"Content-Type": mt.OCI_MANIFEST}, content=big)
    )
    with pytest.raises(ManifestError, match="limit"):
        be.manifest_get(REF)


def test_oversized_manifest_refused_while_reading_without_length() -> None:
    class Endless(httpx.SyncByteStream):
        sent = 0

        def __iter__(self):  # type: ignore[no-untyped-def]
            while True:
                Endless.sent += 65536
                yield b" " * 65536

    be = backend(
        lambda r: httpx.Response(200, headers={"Content-Type": mt.OCI_MANIFEST}, stream=Endless())
    )
    with pytest.raises(ManifestError, match="limit"):
        be.manifest_get(REF)
    assert Endless.sent < mt.MAX_MANIFEST_SIZE + 2 * 65536


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"{not json", mt.OCI_MANIFEST, "invalid JSON"),
        (
            b'{"schemaVersion":2,"mediaType":"application/x-unknown"}',
            "application/x-unknown",
            "unsupported",
        ),
        (b"[1,2]", mt.OCI_MANIFEST, "not a JSON object"),
    ],
)
def test_invalid_manifests(body: bytes, content_type: str, message: str) -> None:
    be = backend(
        lambda r: httpx.Response(200, headers={"Content-Type": content_type}, content=body)
    )
    with pytest.raises(ManifestError, match=message):
        be.manifest_get(REF)


def test_manifest_put_by_tag_and_digest_and_oci_subject() -> None:
    rec = Recorder(lambda r: httpx.Response(201, headers={"Docker-Content-Digest": DIGEST}))
    be = backend(rec)
    manifest = parse(MANIFEST)
    assert be.manifest_put(REF, manifest) is False
    assert be.manifest_put(REF.with_digest(DIGEST), manifest) is False
    assert rec.lines() == ["PUT /v2/team/app/manifests/v1", f"PUT /v2/team/app/manifests/{DIGEST}"]
    assert rec.requests[0].headers["content-type"] == mt.OCI_MANIFEST
    assert rec.requests[0].content == MANIFEST
    with_subject = backend(lambda r: httpx.Response(201, headers={"OCI-Subject": sha(b"s")}))
    assert with_subject.manifest_put(REF, manifest) is True


def test_manifest_put_refuses_a_different_stored_digest() -> None:
    be = backend(lambda r: httpx.Response(201, headers={"Docker-Content-Digest": sha(b"x")}))
    with pytest.raises(DigestMismatchError):
        be.manifest_put(REF, parse(MANIFEST))


def test_manifest_cache_serves_digest_gets(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder(lambda r: manifest_response())
    be = backend(rec, cache_count=10, cache_time=60)
    for _ in range(3):
        be.manifest_get(REF.with_digest(DIGEST))
    assert len(rec.requests) == 1
    uncached = Recorder(lambda r: manifest_response())
    be = backend(uncached)
    for _ in range(2):
        be.manifest_get(REF.with_digest(DIGEST))
    assert len(uncached.requests) == 2


# -- retries ----------------------------------------------------------------------------------


def test_500_storm_retries_then_fails(caplog: pytest.LogCaptureFixture) -> None:
    counter = RequestCounter()
    be = backend(lambda r: httpx.Response(500), counter=counter, max_retries=3)
    with caplog.at_level(logging.WARNING, logger="regplan"), pytest.raises(RegistryError) as info:
        be.manifest_head(REF)
    assert info.value.status == 500 and "http status" in str(info.value)
    assert counter.total() == 4
    assert sum("Sleeping for backoff" in r.getMessage() for r in caplog.records) == 3


def test_transient_503_then_success() -> None:
    answers = iter([httpx.Response(503), httpx.Response(502), manifest_response()])
    assert backend(lambda r: next(answers)).manifest_get(REF).digest == DIGEST


def test_retry_after_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(HostTransport, "pause", lambda self, seconds: slept.append(seconds))
    answers = iter([httpx.Response(429, headers={"Retry-After": "3"}), manifest_response()])
    be = backend(lambda r: next(answers), retry_max_delay=10)
    be.manifest_get(REF)
    assert slept and 2.5 <= max(slept) <= 3.01


def test_retry_after_beyond_the_cap_gives_up_at_once() -> None:
    counter = RequestCounter()
    be = backend(lambda r: httpx.Response(429, headers={"Retry-After": "3600"}), counter=counter)
    with pytest.raises(RateLimitedError):
        be.manifest_get(REF)
    assert counter.total() == 1


def test_429_after_retries_is_rate_limited() -> None:
    with pytest.raises(RateLimitedError):
        backend(lambda r: httpx.Response(429)).tag_list(REF)


def test_connection_errors_name_the_host_and_are_retried() -> None:
    counter = RequestCounter()

    def refuse(request: httpx.Request) -> httpx.Response:
        counter.add("handler", "", "")
        raise httpx.ConnectError("[Errno 111] Connection refused")

    with pytest.raises(RegistryError, match=r"reg\.test") as info:
        backend(refuse, max_retries=2).manifest_head(REF)
    assert info.value.status == 0
    assert counter.total(registry="handler") == 3


def test_reset_mid_manifest_body_is_retried() -> None:
    answers = iter(
        [
            httpx.Response(
                200, headers={"Content-Type": mt.OCI_MANIFEST}, stream=BreakingStream(MANIFEST, 10)
            ),
            manifest_response(),
        ]
    )
    assert backend(lambda r: next(answers)).manifest_get(REF).digest == DIGEST


def test_other_4xx_is_not_retried() -> None:
    counter = RequestCounter()
    with pytest.raises(UnauthorizedError):
        backend(lambda r: httpx.Response(403), counter=counter).manifest_head(REF)
    with pytest.raises(RegistryError, match="http status: Bad Request"):
        backend(lambda r: httpx.Response(400), counter=counter).manifest_head(REF)
    assert counter.total() == 2


# -- blobs ------------------------------------------------------------------------------------

BLOB = bytes(range(256)) * 4096  # 1 MiB


def test_blob_get_streams_and_verifies() -> None:
    be = backend(lambda r: httpx.Response(200, stream=httpx.ByteStream(BLOB)))
    with be.blob_get(REF, blob_desc(BLOB)) as stream:
        assert stream.size == len(BLOB)
        assert b"".join(stream) == BLOB


def test_lying_blob_raises_at_the_end() -> None:
    lie = BLOB[:-1] + b"!"
    be = backend(lambda r: httpx.Response(200, stream=httpx.ByteStream(lie)))
    received = 0
    with pytest.raises(DigestMismatchError), be.blob_get(REF, blob_desc(BLOB)) as stream:
        for chunk in stream:
            received += len(chunk)
    assert received == len(BLOB)


def test_blob_with_wrong_length_is_refused_before_reading() -> None:
    be = backend(
        lambda r: httpx.Response(
            200, headers={"Content-Length": "5"}, stream=httpx.ByteStream(b"hello")
        )
    )
    with pytest.raises(DigestMismatchError, match="5 bytes"), be.blob_get(REF, blob_desc(BLOB)):
        pass


def test_blob_longer_than_descriptor_is_refused() -> None:
    be = backend(lambda r: httpx.Response(200, stream=httpx.ByteStream(BLOB + b"x")))
    with (
        pytest.raises(DigestMismatchError, match="larger"),
        be.blob_get(REF, blob_desc(BLOB)) as stream,
    ):
        for _ in stream:
            pass


@pytest.mark.parametrize("honours_range", [True, False])
def test_reset_mid_blob_resumes(honours_range: bool) -> None:
    ranges: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        ranges.append(request.headers.get("range", ""))
        if len(ranges) == 1:
            return httpx.Response(
                200,
                headers={"Content-Length": str(len(BLOB))},
                stream=BreakingStream(BLOB, 300_000),
            )
        if honours_range:
            start = int(re.match(r"bytes=(\d+)-", ranges[-1]).group(1))  # type: ignore[union-attr]
            return httpx.Response(
                206,
                headers={"Content-Range": f"bytes {start}-{len(BLOB) - 1}/{len(BLOB)}"},
                stream=httpx.ByteStream(BLOB[start:]),
            )
        return httpx.Response(200, stream=httpx.ByteStream(BLOB))

    be = backend(handler)
    with be.blob_get(REF, blob_desc(BLOB)) as stream:
        assert b"".join(stream) == BLOB
    assert ranges == ["", "bytes=300000-"]


def test_blob_missing_is_not_found() -> None:
    be = backend(lambda r: httpx.Response(404))
    with pytest.raises(NotFoundError), be.blob_get(REF, blob_desc(BLOB)):
        pass
    assert be.blob_head(REF, sha(BLOB)) is None


def upload_registry(rec_log: list[str], *, put_status: int = 201, min_chunk: str = "") -> Recorder:
    state = {"received": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            headers = {"Location": "/v2/team/app/blobs/uploads/u1?_state=abc"}
            if min_chunk:
                headers["OCI-Chunk-Min-Length"] = min_chunk
            return httpx.Response(202, headers=headers)
        if request.method == "PATCH":
            state["received"] += len(request.content)
            return httpx.Response(
                202,
                headers={
                    "Location": f"/v2/team/app/blobs/uploads/u1?_state=s{state['received']}",
                    "Range": f"0-{state['received'] - 1}",
                },
            )
        if request.method == "PUT":
            state["received"] += len(request.content)
            return httpx.Response(put_status)
        return httpx.Response(204)

    return Recorder(handler)


def test_monolithic_upload_is_post_and_one_unchunked_put() -> None:
    rec = upload_registry([])
    be = backend(rec)
    pieces = [BLOB[i : i + 100_000] for i in range(0, len(BLOB), 100_000)]
    be.blob_put(REF, blob_desc(BLOB), iter(pieces))
    assert [r.method for r in rec.requests] == ["POST", "PUT"]
    put = rec.requests[1]
    assert put.url.query.decode() == f"_state=abc&digest={sha(BLOB).replace(':', '%3A')}"
    assert put.headers["content-length"] == str(len(BLOB))
    assert "transfer-encoding" not in put.headers
    assert put.content == BLOB


def test_chunked_upload_over_blob_max() -> None:
    rec = upload_registry([])
    be = backend(rec, Host(name=REG, blob_max=500_000, blob_chunk=400_000))
    be.blob_put(REF, blob_desc(BLOB), [BLOB])
    methods = [r.method for r in rec.requests]
    assert methods == ["POST", "PATCH", "PATCH", "PATCH", "PUT"]
    ranges = [r.headers["content-range"] for r in rec.requests if r.method == "PATCH"]
    assert ranges == ["0-399999", "400000-799999", f"800000-{len(BLOB) - 1}"]
    # each PATCH goes where the previous answer's Location pointed
    assert rec.requests[2].url.query == b"_state=s400000"
    assert rec.requests[-1].url.query.decode().startswith(f"_state=s{len(BLOB)}&digest=")
    assert rec.requests[-1].content == b""


def test_chunk_min_length_raises_the_chunk_size() -> None:
    rec = upload_registry([], min_chunk="600000")
    be = backend(rec, Host(name=REG, blob_max=100_000, blob_chunk=100_000))
    be.blob_put(REF, blob_desc(BLOB), [BLOB])
    assert [len(r.content) for r in rec.requests if r.method == "PATCH"] == [
        600_000,
        len(BLOB) - 600_000,
    ]


def test_failed_upload_deletes_the_session_and_one_shot_source_is_not_retried() -> None:
    rec = upload_registry([], put_status=500)
    be = backend(rec)
    with pytest.raises(RegistryError) as info:
        be.blob_put(REF, blob_desc(BLOB), iter([BLOB]))
    assert info.value.status == 500
    assert [r.method for r in rec.requests] == ["POST", "PUT", "DELETE"]


def test_reopenable_source_is_retried_in_a_fresh_chunked_session() -> None:
    attempts = {"put": 0}
    inner = upload_registry([])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "PUT" and request.headers.get("content-length") != "0":
            attempts["put"] += 1
            return httpx.Response(413)
        return inner.handler(request)

    rec = Recorder(handler)
    be = backend(rec)
    opened = []

    def chunks():  # type: ignore[no-untyped-def]
        opened.append(1)
        yield BLOB

    be.blob_put(REF, blob_desc(BLOB), ReopenableChunks(chunks))
    assert len(opened) == 2
    assert [r.method for r in rec.requests] == ["POST", "PUT", "DELETE", "POST", "PATCH", "PUT"]


def test_lying_source_is_refused_before_the_upload_completes() -> None:
    rec = upload_registry([])
    be = backend(rec)
    with pytest.raises(DigestMismatchError):
        be.blob_put(REF, blob_desc(BLOB), [BLOB[:-1] + b"!"])
    assert rec.requests[-1].method == "DELETE"
    assert [r.method for r in rec.requests if r.method == "PUT"] == []


def test_a_verified_source_is_not_hashed_again_on_upload(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks from a verifying BlobStream (the applier's copies) are checked where they are
    read and by the registry against ?digest=: the upload does not hash them a second time."""
    import regplan.registry.http.blobs as http

    hashed: list[int] = []
    original = http._verified
    monkeypatch.setattr(http, "_verified", lambda *a, **k: hashed.append(1) or original(*a, **k))
    rec = upload_registry([])
    be = backend(rec)
    be.blob_put(REF, blob_desc(BLOB), ReopenableChunks(lambda: iter([BLOB]), verified=True))
    assert hashed == []
    be.blob_put(REF, blob_desc(BLOB), ReopenableChunks(lambda: iter([BLOB])))
    assert hashed == [1]  # anything else is still verified on the way out


def test_mount_created_and_declined() -> None:
    rec = Recorder(lambda r: httpx.Response(201))
    other = ImageRef.parse(f"{REG}/team/base:v1")
    assert backend(rec).blob_mount(REF, sha(BLOB), other) is True
    assert (
        rec.requests[0].url.query.decode()
        == f"mount={sha(BLOB).replace(':', '%3A')}&from=team%2Fbase"
    )

    def decline(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(202, headers={"Location": "/v2/team/app/blobs/uploads/u9"})
        return httpx.Response(204)

    rec = Recorder(decline)
    assert backend(rec).blob_mount(REF, sha(BLOB), other) is False
    assert [r.method for r in rec.requests] == ["POST", "DELETE"]
    assert rec.requests[1].url.path == "/v2/team/app/blobs/uploads/u9"


# -- listings ---------------------------------------------------------------------------------


def test_tag_list_follows_relative_links() -> None:
    pages = {
        "": (["a", "b"], '</v2/team/app/tags/list?last=b&n=2>; rel="next"'),
        "last=b&n=2": (["c", "d"], '<tags/list?last=d&n=2>; rel="next"'),
        "last=d&n=2": (["e"], ""),
    }

    def handler(request: httpx.Request) -> httpx.Response:
        tags, link = pages[request.url.query.decode()]
        return httpx.Response(
            200, json={"name": "team/app", "tags": tags}, headers={"Link": link} if link else {}
        )

    assert backend(handler).tag_list(REF) == ["a", "b", "c", "d", "e"]


def test_link_to_another_origin_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"tags": ["a"]}, headers={"Link": '<https://evil.test/x>; rel="next"'}
        )

    with pytest.raises(RegistryError, match="leaves the registry"):
        backend(handler).tag_list(REF)


def test_tag_list_of_missing_repo_and_null_tags() -> None:
    with pytest.raises(NotFoundError):
        backend(
            lambda r: httpx.Response(404, json={"errors": [{"code": "NAME_UNKNOWN"}]})
        ).tag_list(REF)
    assert (
        backend(lambda r: httpx.Response(200, json={"name": "x", "tags": None})).tag_list(REF) == []
    )


def test_catalog_paginates_and_strips_path_prefix() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if "last" not in request.url.query.decode():
            return httpx.Response(
                200,
                json={"repositories": ["pre/a", "other/x"]},
                headers={"Link": '</v2/_catalog?last=pre%2Fa&n=1000>; rel="next"'},
            )
        return httpx.Response(200, json={"repositories": ["pre/b"]})

    be = backend(handler, Host(name=REG, path_prefix="/pre/"))
    assert be.catalog(ImageRef.registry_host(REG)) == ["a", "b"]


# -- mirrors ----------------------------------------------------------------------------------


def mirror_hosts(**upstream: object) -> tuple[Host, ...]:
    return (
        Host(name=REG, mirrors=("low.test", "high.test"), **upstream),  # type: ignore[arg-type]
        Host(name="low.test", priority=1),
        Host(name="high.test", priority=5, path_prefix="cache"),
    )


def test_mirrors_by_priority_with_ns_then_upstream() -> None:
    rec = Recorder(lambda r: httpx.Response(404))
    assert backend(rec, *mirror_hosts()).manifest_head(REF) is None
    urls = [f"{r.url.host}{r.url.raw_path.decode()}" for r in rec.requests]
    assert urls == [
        "high.test/v2/cache/team/app/manifests/v1?ns=reg.test",
        "low.test/v2/team/app/manifests/v1?ns=reg.test",
        "reg.test/v2/team/app/manifests/v1",
    ]


def test_mirror_answer_is_used_and_writes_skip_mirrors() -> None:
    rec = Recorder(lambda r: manifest_response() if r.method == "GET" else httpx.Response(201))
    be = backend(rec, *mirror_hosts())
    assert be.manifest_get(REF).digest == DIGEST
    be.manifest_put(REF, parse(MANIFEST))
    assert [r.url.host for r in rec.requests] == ["high.test", "reg.test"]


def test_failing_mirror_goes_into_backoff_and_sorts_last() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "high.test":
            raise httpx.ConnectError("refused")
        return manifest_response()

    rec = Recorder(handler)
    be = backend(rec, *mirror_hosts(), retry_delay=5, retry_max_delay=10)
    be.manifest_get(REF)
    be.manifest_get(REF)
    # high.test failed once, then waits out its backoff behind low.test
    assert [r.url.host for r in rec.requests] == ["high.test", "low.test", "low.test"]
    assert be.transport_for("high.test").backoff_until > 0


def test_upstream_priority_above_mirrors_goes_first() -> None:
    rec = Recorder(lambda r: manifest_response())
    backend(rec, *mirror_hosts(priority=9)).manifest_get(REF)
    assert [r.url.host for r in rec.requests] == ["reg.test"]


# -- referrers --------------------------------------------------------------------------------


def referrers_index(*entries: dict[str, object]) -> bytes:
    return orjson.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": list(entries)})


SBOM = {
    "mediaType": mt.OCI_MANIFEST,
    "digest": sha(b"sbom"),
    "size": 10,
    "artifactType": "application/sbom",
}
SIG = {
    "mediaType": mt.OCI_MANIFEST,
    "digest": sha(b"sig"),
    "size": 10,
    "artifactType": "application/sig",
}


def test_referrers_api_supported_filters_and_probes_once() -> None:
    rec = Recorder(
        lambda r: httpx.Response(
            200, headers={"Content-Type": mt.OCI_INDEX}, content=referrers_index(SBOM, SIG)
        )
    )
    be = backend(rec)
    assert be.referrers_api(REF) is True
    found = be.referrers(REF, DIGEST, artifact_type="application/sbom")
    assert [d.digest for d in found] == [sha(b"sbom")]
    assert be.referrers_api(REF) is True
    assert len(rec.requests) == 2  # probe + the listing with ?artifactType
    assert rec.requests[1].url.query.decode() == "artifactType=application%2Fsbom"


def test_referrers_unsupported_reads_the_fallback_tag() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if "/referrers/" in request.url.path:
            return httpx.Response(401)  # Harbor's way of saying "no referrers API"
        fallback_tag = "sha256-" + DIGEST.split(":")[1]
        if request.url.path.endswith(f"/manifests/{fallback_tag}"):
            return manifest_response(referrers_index(SBOM, SIG), Content_Type=mt.OCI_INDEX)
        return httpx.Response(404)

    counter = RequestCounter()
    be = backend(handler, counter=counter)
    assert [d.digest for d in be.referrers(REF, DIGEST)] == [sha(b"sbom"), sha(b"sig")]
    assert be.referrers_api(REF) is False
    assert [
        d.artifact_type for d in be.referrers(REF, DIGEST, artifact_type="application/sig")
    ] == ["application/sig"]
    assert counter.total(kind="referrers") == 1  # detected once, never retried


# -- logging and counting ---------------------------------------------------------------------


@pytest.fixture
def trace_log() -> Iterator[io.StringIO]:
    """Every regplan log line at trace level, text format; the logger is restored after."""
    logger = logging.getLogger("regplan")
    saved = (logger.level, list(logger.handlers), logger.propagate)
    stream = io.StringIO()
    logs.setup("trace", stream=stream)
    try:
        yield stream
    finally:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.setLevel(saved[0])
        for handler in saved[1]:
            logger.addHandler(handler)
        logger.propagate = saved[2]


def test_trace_log_redacts_every_secret(trace_log: io.StringIO) -> None:

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.test":
            return httpx.Response(
                200, json={"token": "tok-SECRET-123", "refresh_token": "ref-SECRET"}
            )
        if "authorization" not in request.headers:
            return httpx.Response(
                401,
                headers={"WWW-Authenticate": 'Bearer realm="https://auth.test/t",service="s"'},
            )
        if "/blobs/" in request.url.path and request.url.host == REG:
            return httpx.Response(
                307, headers={"Location": "https://s3.test/o?X-Amz-Signature=SIG-SECRET"}
            )
        return manifest_response()

    be = backend(handler, Host(name=REG, user="alice", password="pw-SECRET"))
    be.manifest_get(REF)
    with pytest.raises(RegistryError), be.blob_get(REF, blob_desc(BLOB)) as s:
        b"".join(s)
    text = trace_log.getvalue()
    assert "reg http request" in text and "reg http response" in text
    assert "[redacted]" in text
    for secret in ("SECRET", base64_of("alice:pw-SECRET")):
        assert secret not in text


def base64_of(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


def test_registry_warning_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    be = backend(lambda r: manifest_response(Warning='299 - "this registry is deprecated"'))
    with caplog.at_level(logging.WARNING, logger="regplan"):
        for _ in range(3):
            be.manifest_get(REF)
    assert [r.getMessage() for r in caplog.records].count("Registry warning") == 1


def test_request_counter_kinds() -> None:
    counter = RequestCounter()
    rec = upload_registry([])
    be = backend(rec, counter=counter)
    be.blob_put(REF, blob_desc(b"x"), [b"x"])
    assert counter.snapshot() == {f"{REG} POST upload": 1, f"{REG} PUT upload": 1}


def test_blob_of_unknown_size_goes_in_chunks() -> None:
    rec = upload_registry([])
    be = backend(rec)
    desc = blob_desc(BLOB)
    be.blob_put(REF, type(desc)(desc.media_type, desc.digest, -1), [BLOB])
    assert [r.method for r in rec.requests] == ["POST", "PATCH", "PUT"]


def test_manifest_delete() -> None:
    rec = Recorder(lambda r: httpx.Response(202))
    backend(rec).manifest_delete(REF.with_digest(DIGEST))
    assert rec.lines() == [f"DELETE /v2/team/app/manifests/{DIGEST}"]
    with pytest.raises(RegistryError, match="Method Not Allowed"):
        backend(lambda r: httpx.Response(405)).manifest_delete(REF)


def test_large_tag_list_is_read_whole() -> None:
    tags = [f"v{i}.0.0-build.{i:06d}" for i in range(20_000)]  # ~500 KB of JSON
    assert backend(lambda r: httpx.Response(200, json={"tags": tags})).tag_list(REF) == tags
