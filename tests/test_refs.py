"""Image references: regclient's ref_test examples, valid and invalid
(docs/regsync-behaviour.md, 3. Reference parsing)."""

from __future__ import annotations

import pytest

from regplan.errors import InvalidReferenceError
from regplan.refs import ImageRef

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("alpine", "docker.io", "library/alpine", "latest", ""),
        ("docker.io/alpine", "docker.io", "library/alpine", "latest", ""),
        ("index.docker.io/library/alpine", "docker.io", "library/alpine", "latest", ""),
        ("registry-1.docker.io/library/alpine", "docker.io", "library/alpine", "latest", ""),
        ("busybox:1.36", "docker.io", "library/busybox", "1.36", ""),
        ("regclient/regctl:edge", "docker.io", "regclient/regctl", "edge", ""),
        ("localhost/group/image:v42", "localhost", "group/image", "v42", ""),
        ("localhost:5000/group/image:v42", "localhost:5000", "group/image", "v42", ""),
        ("127.0.0.1:5000/image:v42", "127.0.0.1:5000", "image", "v42", ""),
        ("[::1]:5000/image:v42", "[::1]:5000", "image", "v42", ""),
        ("[2001:db8::1]/image", "[2001:db8::1]", "image", "latest", ""),
        ("example./g/roup/image:a", "example.", "g/roup/image", "a", ""),
        ("e.xample.co/g-r.o__u_p/im----age:a", "e.xample.co", "g-r.o__u_p/im----age", "a", ""),
        ("EXAMPLE/image", "EXAMPLE", "image", "latest", ""),
        ("Example-1/image", "Example-1", "image", "latest", ""),
        ("registry:5000/hub/alpine", "registry:5000", "hub/alpine", "latest", ""),
        ("example.com/image:__a--b..5__", "example.com", "image", "__a--b..5__", ""),
        (f"example.com/image@{D}", "example.com", "image", "", D),
        (f"example.com/image:v1@{D}", "example.com", "image", "v1", D),
        ("ghcr.io/regclient/regctl", "ghcr.io", "regclient/regctl", "latest", ""),
        ("quay.io/a/b/c/d:1", "quay.io", "a/b/c/d", "1", ""),
        ("example.com/" + "t:" + "x" * 128, "example.com", "t", "x" * 128, ""),
    ],
)
def test_valid(text: str, registry: str, repository: str, tag: str, digest: str) -> None:
    ref = ImageRef.parse(text)
    assert (ref.scheme, ref.registry, ref.repository, ref.tag, ref.digest) == (
        "reg",
        registry,
        repository,
        tag,
        digest,
    )


@pytest.mark.parametrize(
    "text",
    [
        "-docker.io/project/image:tag",
        "docker-.io/project/image:tag",
        "[1::2::3]/image",
        "::1/image",
        "docker.io/Project/image",  # repo must be lowercase
        "docker.io/project-/image",
        "docker.io/-project/image",
        "docker.io/project/___/image",
        "docker.io/project/*",
        "docker.io/project/image:tag^1",
        "docker.io/project/image:" + "x" * 129,
        "docker.io/project/image@sha256:12345",
        "docker.io/project/image@sha256:" + "g" * 64,
        "localhost:5000",
        "http://example.com/image",
        "InvalidTestmissing:v1:garbage",
        "InvalidTestmissing:garbage",
        "",
        "example.com/",
        "example.com//image",
    ],
)
def test_invalid(text: str) -> None:
    with pytest.raises(InvalidReferenceError, match="invalid reference"):
        ImageRef.parse(text)


def test_lowercase_message() -> None:
    with pytest.raises(InvalidReferenceError, match="repo must be lowercase"):
        ImageRef.parse("docker.io/Project/image")


def test_unknown_scheme_message() -> None:
    with pytest.raises(InvalidReferenceError, match='unknown scheme "http"'):
        ImageRef.parse("http://example.com/image")


@pytest.mark.parametrize(
    ("text", "path", "tag", "digest"),
    [
        ("ocidir://testrepo", "testrepo", "", ""),
        ("ocidir://testrepo:v1", "testrepo", "v1", ""),
        ("ocidir:///tmp/x/repo:v1", "/tmp/x/repo", "v1", ""),
        (f"ocidir://dir/repo@{D}", "dir/repo", "", D),
        ("ocidir://my dir/re+po~1", "my dir/re+po~1", "", ""),
    ],
)
def test_ocidir(text: str, path: str, tag: str, digest: str) -> None:
    ref = ImageRef.parse(text)
    assert (ref.scheme, ref.path, ref.tag, ref.digest) == ("ocidir", path, tag, digest)
    assert ref.is_ocidir


@pytest.mark.parametrize("text", ["ocidir://", "ocidir://repo:bad^tag", "ocidir://re$po"])
def test_ocidir_invalid(text: str) -> None:
    with pytest.raises(InvalidReferenceError):
        ImageRef.parse(text)


@pytest.mark.parametrize(
    ("text", "host"),
    [
        ("registry.example.org", "registry.example.org"),
        ("localhost:5000", "localhost:5000"),
        ("registry:5000", "registry:5000"),
        ("index.docker.io", "docker.io"),
    ],
)
def test_registry_host(text: str, host: str) -> None:
    assert ImageRef.registry_host(text).registry == host


@pytest.mark.parametrize("text", ["registry.example.org/path", "", "not_a_host"])
def test_registry_host_invalid(text: str) -> None:
    with pytest.raises(InvalidReferenceError, match="invalid"):
        ImageRef.registry_host(text)


def test_string_forms() -> None:
    assert str(ImageRef.parse("alpine")) == "docker.io/library/alpine:latest"
    ref = ImageRef.parse(f"example.com/a:v1@{D}")
    assert str(ref) == f"example.com/a:v1@{D}"
    assert ref.reference == D
    assert ref.with_tag("v2").reference == "v2"
    assert str(ImageRef.parse("ocidir://x:v1")) == "ocidir://x:v1"
