"""Manifests over HTTP: head, get (verified, cached by digest), put, delete, delete probes;
and the Docker Hub rate-limit headers their answers carry."""

from __future__ import annotations

import secrets
import threading
from typing import Any

import httpx

from regplan.errors import DigestMismatchError, ManifestError, NotFoundError
from regplan.oci import digest as digests
from regplan.oci import manifest as manifests
from regplan.oci import mediatypes as mt
from regplan.oci.manifest import Manifest
from regplan.refs import ImageRef
from regplan.registry.api import DeleteMode, DeleteSupport, ManifestHead, RateLimitInfo
from regplan.registry.http.cache import TTLCache
from regplan.registry.transport import ANY, OK, Request, Transports, decode_error

PULL = ("pull",)
PUSH = ("pull", "push")
DELETE = ("pull", "push", "delete")
_ACCEPT = {"Accept": ", ".join(mt.MANIFEST_ACCEPT)}


def parse_rate_limit(headers: httpx.Headers) -> RateLimitInfo | None:
    """Docker Hub's `RateLimit-Limit: 100;w=21600`, `RateLimit-Remaining: 76;w=21600`.
    None when the registry sent no limit."""

    def number(value: str) -> int | None:
        head = value.split(";", 1)[0].split(",", 1)[0].strip()
        return int(head) if head.isdigit() else None

    limit_text = headers.get("ratelimit-limit", "")
    remaining_text = headers.get("ratelimit-remaining", "")
    if not limit_text and not remaining_text:
        return None
    policy = limit_text.split(";", 1)[1].strip() if ";" in limit_text else ""
    return RateLimitInfo(
        limit=number(limit_text) if limit_text else None,
        remaining=number(remaining_text) if remaining_text else None,
        policy=policy,
    )


def _content_type(headers: httpx.Headers) -> str:
    return mt.base(headers.get("content-type", ""))


class Manifests:
    """The manifest endpoints of every registry. Thread-safe."""

    def __init__(self, net: Transports, cache: TTLCache) -> None:
        self._net = net
        self.cache = cache
        self._lock = threading.Lock()
        self._rate_limits: dict[str, RateLimitInfo] = {}

    def rate_limits(self) -> dict[str, RateLimitInfo]:
        with self._lock:
            return dict(self._rate_limits)

    def _note_rate_limit(self, name: str, headers: httpx.Headers) -> RateLimitInfo | None:
        info = parse_rate_limit(headers)
        if info is not None:
            with self._lock:
                self._rate_limits[name] = info
        return info

    def head(self, ref: ImageRef) -> ManifestHead | None:
        if self._net.host(ref.registry).api_opt("disableHead").lower() == "true":
            return self._head_by_get(ref)
        what = "manifest head"
        reply = self._net.send(
            _manifest_request(
                "HEAD",
                ref,
                ref.reference,
                PULL,
                headers=_ACCEPT,
                mirrors=True,
                expect=OK | {404},
                what=what,
                where=str(ref),
            )
        )
        if reply.status == 404:
            return None
        rate = self._note_rate_limit(reply.host, reply.headers)
        digest = reply.headers.get("docker-content-digest", "")
        media_type = _content_type(reply.headers)
        length = reply.headers.get("content-length", "")
        if not digests.is_valid(digest) or not mt.is_manifest(media_type) or not length.isdigit():
            head = self._head_by_get(ref)  # registries that leave HEAD answers incomplete
            if head is None:
                return None
            return ManifestHead(head.digest, head.media_type, head.size, rate or head.rate_limit)
        if ref.digest and digest != ref.digest:
            raise DigestMismatchError(
                f"{what}: registry answered with digest {digest}", ref=str(ref)
            )
        return ManifestHead(digest=digest, media_type=media_type, size=int(length), rate_limit=rate)

    def _head_by_get(self, ref: ImageRef) -> ManifestHead | None:
        try:
            manifest, rate = self.get_with_rate(ref)
        except NotFoundError:
            return None
        return ManifestHead(manifest.digest, manifest.media_type, manifest.size, rate)

    def get_with_rate(self, ref: ImageRef) -> tuple[Manifest, RateLimitInfo | None]:
        cache_key = (ref.registry, ref.repository, ref.digest)
        if ref.digest:
            cached = self.cache.get(cache_key)
            if cached is not None:
                return cached, None
        reply = self._net.send(
            _manifest_request(
                "GET",
                ref,
                ref.reference,
                PULL,
                headers=_ACCEPT,
                mirrors=True,
                limit=mt.MAX_MANIFEST_SIZE,
                what="manifest get",
                where=str(ref),
            )
        )
        rate = self._note_rate_limit(reply.host, reply.headers)
        advertised = reply.headers.get("docker-content-digest", "")
        expected = ref.digest or (advertised if digests.is_valid(advertised) else "")
        manifest = manifests.parse(
            reply.body, reply.headers.get("content-type", ""), digest=expected, where=str(ref)
        )
        self.cache.put((ref.registry, ref.repository, manifest.digest), manifest)
        return manifest, rate

    def put(self, ref: ImageRef, manifest: Manifest) -> bool:
        what = "manifest put"
        if manifest.size > mt.MAX_MANIFEST_SIZE:
            raise ManifestError(
                f"{what}: {manifest.size} bytes is over the {mt.MAX_MANIFEST_SIZE} byte limit",
                ref=str(ref),
            )
        if ref.digest and not ref.tag and ref.digest != manifest.digest:
            raise DigestMismatchError(
                f"{what}: manifest digest {manifest.digest} does not match the reference",
                ref=str(ref),
            )
        reply = self._net.send(
            _manifest_request(
                "PUT",
                ref,
                ref.tag or manifest.digest,
                PUSH,
                headers={"Content-Type": manifest.media_type},
                body=manifest.raw,
                what=what,
                where=str(ref),
            )
        )
        stored = reply.headers.get("docker-content-digest", "")
        if stored and stored != manifest.digest:
            raise DigestMismatchError(
                f"{what}: registry stored digest {stored}, expected {manifest.digest}",
                ref=str(ref),
            )
        self.cache.put((ref.registry, ref.repository, manifest.digest), manifest)
        subject = reply.headers.get("oci-subject", "")
        return bool(subject) and (manifest.subject is None or subject == manifest.subject.digest)

    def delete(self, ref: ImageRef) -> None:
        self._net.send(
            _manifest_request(
                "DELETE",
                ref,
                ref.reference,
                DELETE,
                what="manifest delete",
                where=str(ref),
            )
        )
        if ref.digest:
            self.cache.drop(lambda k: k == (ref.registry, ref.repository, ref.digest))

    def delete_support(self, ref: ImageRef) -> DeleteSupport:
        """Probe with DELETEs of a tag and a digest that do not exist: the answers tell tag
        delete (404 for the tag), delete by digest only (distribution 2.8 rejects a tag with 400,
        a digest with 404) and deletes disabled (405 UNSUPPORTED) apart, changing nothing."""
        answers: list[str] = []
        for reference in (f"regplan-delete-probe-{secrets.token_hex(16)}", "sha256:" + "0" * 64):
            reply = self._net.send(
                _manifest_request(
                    "DELETE",
                    ref,
                    reference,
                    DELETE,
                    expect=ANY,
                    what="delete probe",
                    where=str(ref.repo()),
                )
            )
            if reply.status == 404 or 200 <= reply.status < 300:
                return DeleteSupport(DeleteMode.TAG if not answers else DeleteMode.DIGEST)
            detail = decode_error(reply.body)
            answers.append(f"{reply.status}" + (f" {detail}" if detail else ""))
            if reply.status in (401, 403, 405) or "UNSUPPORTED" in detail:
                break  # deletes as such are refused: no digest probe tells more
        return DeleteSupport(DeleteMode.NONE, answers[-1])


def _manifest_request(
    method: str, ref: ImageRef, reference: str, actions: tuple[str, ...], **fields: Any
) -> Request:
    """A request for `manifests/<reference>` in `ref`'s repository."""
    return Request(
        method,
        registry=ref.registry,
        repository=ref.repository,
        path=f"manifests/{reference}",
        kind="manifest",
        actions=actions,
        **fields,
    )
