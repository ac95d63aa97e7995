"""Test certificates made with the `openssl` CLI (CI installs openssl; no Python crypto package).

One CA per test session signs a server certificate valid for 127.0.0.1, ::1 and localhost, and
(for token auth) a certificate whose key signs the registry's JWTs.
"""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

LOOPBACK_SANS = ("IP:127.0.0.1", "IP:::1", "DNS:localhost")


@dataclass(frozen=True)
class CertificateAuthority:
    cert_file: Path
    key_file: Path

    @property
    def pem(self) -> str:
        return self.cert_file.read_text()


@dataclass(frozen=True)
class IssuedCert:
    cert_file: Path  # PEM, the certificate only
    key_file: Path  # PEM private key
    ca: CertificateAuthority

    @property
    def cert_pem(self) -> str:
        return self.cert_file.read_text()


def _openssl(*args: str | Path) -> None:
    result = subprocess.run(
        ["openssl", *map(str, args)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def make_ca(directory: Path, name: str = "regplan-test-ca") -> CertificateAuthority:
    """A self-signed EC P-256 CA (EC keys are generated in milliseconds, RSA takes ~0.2 s)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority(directory / f"{name}.crt", directory / f"{name}.key")
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", ca.key_file, "-out", ca.cert_file, "-days", "7",
        "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "subjectKeyIdentifier=hash",
    )  # fmt: skip
    return ca


def issue_cert(
    ca: CertificateAuthority,
    directory: Path,
    name: str,
    *,
    sans: tuple[str, ...] = LOOPBACK_SANS,
    rsa: bool = False,
    extended_usage: str = "serverAuth",
) -> IssuedCert:
    """A leaf certificate signed by `ca`. `rsa=True` makes an RSA-2048 key in PKCS#1 form
    (what tokenserver's stdlib RS256 signer reads); otherwise EC P-256."""
    directory.mkdir(parents=True, exist_ok=True)
    key_file, csr_file = directory / f"{name}.key", directory / f"{name}.csr"
    cert_file, ext_file = directory / f"{name}.crt", directory / f"{name}.ext"
    if rsa:
        _openssl("genrsa", "-traditional", "-out", key_file, "2048")
    else:
        _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key_file)
    _openssl("req", "-new", "-key", key_file, "-out", csr_file, "-subj", f"/CN={name}")
    extensions = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        f"extendedKeyUsage={extended_usage}",
        "subjectKeyIdentifier=hash",
        "authorityKeyIdentifier=keyid",
    ]
    if sans:
        extensions.append("subjectAltName=" + ",".join(sans))
    ext_file.write_text("\n".join(extensions) + "\n")
    _openssl(
        "x509", "-req", "-in", csr_file, "-CA", ca.cert_file, "-CAkey", ca.key_file,
        "-set_serial", str(secrets.randbits(63)), "-out", cert_file, "-days", "7", "-sha256", "-extfile", ext_file,
    )  # fmt: skip
    return IssuedCert(cert_file, key_file, ca)
