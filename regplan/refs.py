"""Image references: parsing and normalisation, nothing else (no I/O).

Follows regclient's `types/ref` grammar: `[registry/]path[:tag][@digest]` for registries and
`ocidir://path[:tag][@digest]` for OCI Layout directories.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from regplan.errors import InvalidReferenceError
from regplan.frozen import filled

SCHEME_REG = "reg"
SCHEME_OCIDIR = "ocidir"
DOCKER_HUB = "docker.io"
_DOCKER_HUB_ALIASES = frozenset({"", "docker.io", "index.docker.io", "registry-1.docker.io"})
DEFAULT_TAG = "latest"

_OCIDIR_PREFIX = f"{SCHEME_OCIDIR}://"
_SCHEME_RE = re.compile(r"([a-z]+)://(.+)", re.DOTALL)
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_PORT = r"(?::[0-9]+)"
_REGISTRY_RE = re.compile(
    rf"(?:(?:{_LABEL}(?:\.{_LABEL})+\.?|{_LABEL}\.|(?=[A-Za-z0-9-]*[A-Z]){_LABEL}"
    rf"|\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|localhost){_PORT}?|{_LABEL}{_PORT})"
)
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
DIGEST_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
_OCIDIR_PATH_RE = re.compile(r"[/A-Za-z0-9_\-. ~+]+")


def _invalid(text: str, why: str = "") -> InvalidReferenceError:
    return InvalidReferenceError(f'invalid reference "{text}"' + (f": {why}" if why else ""))


@dataclass(frozen=True)
class ImageRef:
    """A parsed image reference.

    For registries `registry` and `repository` are set; for OCI Layouts `path` is. `tag` and
    `digest` are optional; a registry reference with neither gets the tag `latest` at parse time.
    """

    scheme: str
    registry: str = ""
    repository: str = ""
    path: str = ""
    tag: str = ""
    digest: str = ""

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str) -> ImageRef:
        if text.startswith(_OCIDIR_PREFIX):
            return cls._parse_ocidir(text, text[len(_OCIDIR_PREFIX) :])
        m = _SCHEME_RE.fullmatch(text)
        if m:
            scheme, rest = m.group(1), m.group(2)
            if scheme == SCHEME_OCIDIR:
                return cls._parse_ocidir(text, rest)
            raise InvalidReferenceError(f'invalid reference, unknown scheme "{scheme}" in "{text}"')
        return cls._parse_registry(text)

    @classmethod
    def _parse_ocidir(cls, text: str, rest: str) -> ImageRef:
        digest = ""
        if "@" in rest:
            rest, digest = rest.rsplit("@", 1)
            if not DIGEST_RE.fullmatch(digest):
                raise _invalid(text, "invalid digest")
        tag = ""
        # A ":" after the last "/" separates the tag (paths may hold ":" only before a "/").
        slash = rest.rfind("/")
        colon = rest.rfind(":")
        if colon > slash:
            rest, tag = rest[:colon], rest[colon + 1 :]
            if not TAG_RE.fullmatch(tag):
                raise _invalid(text, "invalid tag")
        if not rest or not _OCIDIR_PATH_RE.fullmatch(rest):
            raise _invalid(text, "invalid path")
        return _ref(SCHEME_OCIDIR, "", "", rest, tag, digest)

    @classmethod
    def _parse_registry(cls, text: str) -> ImageRef:
        rest = text
        digest = ""
        if "@" in rest:
            rest, digest = rest.rsplit("@", 1)
            if not DIGEST_RE.fullmatch(digest):
                raise _invalid(text, "invalid digest")
        registry = ""
        if "/" in rest:
            first, remainder = rest.split("/", 1)
            m = _REGISTRY_RE.fullmatch(first)
            if m and _valid_ipv6(m.group("ipv6")):
                registry, rest = first, remainder
        tag = ""
        if ":" in rest:
            rest, tag = rest.rsplit(":", 1)
            if not TAG_RE.fullmatch(tag):
                raise _invalid(text, "invalid tag")
        path = rest
        if not _PATH_RE.fullmatch(path):
            if path and _PATH_RE.fullmatch(path.lower()):
                raise _invalid(text, "repo must be lowercase")
            raise _invalid(text)
        if not registry and path.split("/", 1)[0] == "localhost":
            registry, _, path = path.partition("/")
        if registry.lower() in _DOCKER_HUB_ALIASES:
            registry = DOCKER_HUB
            if path and "/" not in path:
                path = "library/" + path
        if not path:
            raise _invalid(text, "missing repository")
        if not tag and not digest:
            tag = DEFAULT_TAG
        return _ref(SCHEME_REG, registry, path, "", tag, digest)

    @classmethod
    def registry_host(cls, text: str) -> ImageRef:
        """A bare registry (`type: registry` sources): host[:port], no path."""
        if "/" in text or not _REGISTRY_RE.fullmatch(text):
            raise _invalid(text, "invalid hostname")
        host = DOCKER_HUB if text.lower() in _DOCKER_HUB_ALIASES else text
        return cls(scheme=SCHEME_REG, registry=host)

    # -- derived references -----------------------------------------------------------------
    # The derived references are built by `_ref`: the planner and the applier make hundreds of
    # thousands of them.
    def with_tag(self, tag: str) -> ImageRef:
        if not TAG_RE.fullmatch(tag):
            raise _invalid(f"{self.repo_name}:{tag}", "invalid tag")
        return _ref(self.scheme, self.registry, self.repository, self.path, tag, "")

    def with_digest(self, digest: str) -> ImageRef:
        """The same repository pinned to `digest` (the tag is dropped: the digest wins)."""
        if not DIGEST_RE.fullmatch(digest):
            raise _invalid(f"{self.repo_name}@{digest}", "invalid digest")
        return _ref(self.scheme, self.registry, self.repository, self.path, "", digest)

    def repo(self) -> ImageRef:
        """The repository alone (no tag, no digest)."""
        if not self.tag and not self.digest:
            return self  # frozen: the same value
        return _ref(self.scheme, self.registry, self.repository, self.path, "", "")

    # -- identity ---------------------------------------------------------------------------
    @property
    def is_ocidir(self) -> bool:
        return self.scheme == SCHEME_OCIDIR

    @property
    def repo_name(self) -> str:
        """`registry/repository` or `ocidir://path`: the repository as people write it."""
        if self.is_ocidir:
            return f"ocidir://{self.path}"
        return f"{self.registry}/{self.repository}" if self.repository else self.registry

    @property
    def repo_key(self) -> tuple[str, str, str]:
        """A value equal for references into the same repository."""
        return (self.scheme, self.registry, self.repository or self.path)

    @property
    def reference(self) -> str:
        """The digest when pinned, else the tag (`latest` when neither is set)."""
        return self.digest or self.tag or DEFAULT_TAG

    def same_repository(self, other: ImageRef) -> bool:
        return self.repo_key == other.repo_key

    def same_registry(self, other: ImageRef) -> bool:
        if self.is_ocidir or other.is_ocidir:
            return self.is_ocidir and other.is_ocidir and self.path == other.path
        return self.registry == other.registry

    def __str__(self) -> str:
        out = self.repo_name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def _ref(scheme: str, registry: str, repository: str, path: str, tag: str, digest: str) -> ImageRef:
    return filled(
        ImageRef,
        {
            "scheme": scheme,
            "registry": registry,
            "repository": repository,
            "path": path,
            "tag": tag,
            "digest": digest,
        },
    )


def _valid_ipv6(text: str | None) -> bool:
    if text is None:
        return True
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True
