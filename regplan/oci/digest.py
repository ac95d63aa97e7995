"""Digest computation and verification (sha256 and sha512, as OCI allows)."""

from __future__ import annotations

import hashlib
import re

from regplan.errors import DigestMismatchError, InvalidReferenceError

_ALGORITHMS = {"sha256": 64, "sha512": 128}
_LOWER_HEX = "0123456789abcdef"


def split(digest: str) -> tuple[str, str]:
    """Validate a digest and return (algorithm, hex). Refuses anything that could be a path."""
    # string methods, not a regular expression: every blob and manifest look-up splits its
    # digest, and the match with its groups was a tenth of planning from a layout
    algorithm, _, hexpart = digest.partition(":")
    if len(hexpart) != _ALGORITHMS.get(algorithm, -1) or hexpart.strip(_LOWER_HEX):
        raise InvalidReferenceError(f'invalid digest "{digest}"')
    return algorithm, hexpart


def is_valid(digest: str) -> bool:
    try:
        split(digest)
    except InvalidReferenceError:
        return False
    return True


def of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


class Verifier:
    """Hashes a stream as it passes and checks digest and size at the end."""

    def __init__(self, digest: str, size: int = -1, *, what: str = "blob") -> None:
        self.digest = digest
        self.expected_size = size
        self.what = what
        algorithm, _ = split(digest)
        self._hash = hashlib.new(algorithm)
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self.size += len(chunk)
        if 0 <= self.expected_size < self.size:
            raise DigestMismatchError(
                f"{self.what} {self.digest} is larger than its descriptor's {self.expected_size} bytes"
            )

    def verify(self) -> None:
        if 0 <= self.expected_size != self.size:
            raise DigestMismatchError(
                f"{self.what} {self.digest}: got {self.size} bytes, expected {self.expected_size}"
            )
        got = f"{self._hash.name}:{self._hash.hexdigest()}"
        if got != self.digest:
            raise DigestMismatchError(
                f"{self.what} digest mismatch: expected {self.digest}, got {got}"
            )


def fallback_tag(digest: str) -> str:
    """The referrers fallback tag of a subject digest: `sha256-<hex>` (OCI distribution spec)."""
    algorithm, hexpart = digest.split(":", 1)
    clean = re.sub(r"[^A-Za-z0-9._-]", "-", algorithm[:32])
    return f"{clean}-{hexpart[:64]}"


def digest_tag_prefix(digest: str) -> str:
    """Tags starting with this belong to the digest (cosign's `.sig`, `.att`, `.sbom`...)."""
    algorithm, hexpart = digest.split(":", 1)
    return f"{algorithm}-{hexpart}"
