"""Ed25519 signatures on plan files: `plan --sign-key KEY`, `apply --verify-key PUB`.

The signature lives in the plan file, as a `signature` block: the Ed25519 signature of the
plan's integrity digest computed *without* the block (`signed`), so the digest a signer saw is
recorded and checked. The block itself is covered by the file's `integrity` like any other key,
so readers that do not know it (format 1.0) still read the file. The apply job needs only the
public key; a plan without a signature, or with one the key does not verify, is refused.

Keys are PEM: a PKCS#8 private key and a SubjectPublicKeyInfo public key, as
`openssl genpkey -algorithm ed25519` and `openssl pkey -pubout` write them.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from regplan.errors import PlanFileError, RegplanError
from regplan.plan.planfile import integrity_of

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

ALGORITHM = "ed25519"
_CONTEXT = b"regplan plan signature v1\n"  # a signature over a plan digest and nothing else


class SigningKeyError(RegplanError):
    """A signing or verification key that cannot be used."""


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise SigningKeyError(f"{path}: cannot read the {what}: {e.strerror or e}") from None


def load_private_key(path: Path) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(_read(path, "signing key"), password=None)
    except (ValueError, TypeError) as e:
        raise SigningKeyError(
            f"{path}: not an unencrypted PEM private key ({e}); make one with "
            "`openssl genpkey -algorithm ed25519 -out plan-key.pem`"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path}: not an Ed25519 key; plans are signed with Ed25519")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(_read(path, "verification key"))
    except (ValueError, TypeError) as e:
        raise SigningKeyError(
            f"{path}: not a PEM public key ({e}); make it with "
            "`openssl pkey -in plan-key.pem -pubout -out plan-key.pub`"
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"{path}: not an Ed25519 public key; plans are signed with Ed25519")
    return key


def key_id(key: Ed25519PublicKey) -> str:
    """sha256 of the raw public key: names which key signed, so a mismatch says so."""
    from cryptography.hazmat.primitives import serialization

    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def sign_body(body: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """The plan body (without `integrity`) with a `signature` block added."""
    unsigned = {k: v for k, v in body.items() if k not in ("integrity", "signature")}
    signed = integrity_of(unsigned)
    value = key.sign(_CONTEXT + signed.encode())
    return {
        **unsigned,
        "signature": {
            "algorithm": ALGORITHM,
            "key_id": key_id(key.public_key()),
            "signed": signed,
            "value": base64.b64encode(value).decode(),
        },
    }


def sign_plan_bytes(data: bytes, key: Ed25519PrivateKey) -> bytes:
    """A plan file's bytes, signed and resealed (integrity recomputed over the block)."""
    body = sign_body(orjson.loads(data), key)
    body["integrity"] = integrity_of(body)
    return orjson.dumps(body, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def signature_problem(body: dict[str, Any], key: Ed25519PublicKey) -> str:
    """Why `body` (a parsed plan file) is not signed by `key` ('' when it is). Decides only."""
    from cryptography.exceptions import InvalidSignature

    block = body.get("signature")
    if block is None:
        return "the plan is not signed (plan --sign-key signs it)"
    if not isinstance(block, dict) or not all(
        isinstance(block.get(k), str) for k in ("algorithm", "signed", "value")
    ):
        return "the plan's signature block is malformed"
    if block["algorithm"] != ALGORITHM:
        return f"the plan is signed with {block['algorithm']!r}, not {ALGORITHM}"
    unsigned = {k: v for k, v in body.items() if k not in ("integrity", "signature")}
    if integrity_of(unsigned) != block["signed"]:
        return "the plan was changed after it was signed"
    try:
        value = base64.b64decode(block["value"], validate=True)
        key.verify(value, _CONTEXT + block["signed"].encode())
    except (ValueError, InvalidSignature):
        if block.get("key_id") not in (None, key_id(key)):
            return f"the plan is signed by another key ({block['key_id'][:19]}…)"
        return "the plan's signature does not verify with this key"
    return ""


def verify_plan(data: bytes, name: str, key: Ed25519PublicKey, key_path: Path) -> None:
    """Raise PlanFileError unless the plan file `data` (its integrity already checked by
    planfile.decode) is signed by `key`."""
    body = orjson.loads(data)
    problem = signature_problem(body, key) if isinstance(body, dict) else "not a plan file"
    if problem:
        raise PlanFileError(f"{name}: {problem} (--verify-key {key_path}); nothing was applied")
