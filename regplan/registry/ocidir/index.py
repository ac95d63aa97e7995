"""index.json read as tags (pure: bytes in, a value out).

`org.opencontainers.image.ref.name` is read as regclient reads it: a plain tag (`v1`) or a
full name (`docker.io/library/alpine:3.19`, as skopeo and podman write it), whose tag is what
follows the last `:`. A plain entry wins over full names ending in the same tag. Two different
full names that end in one tag (`alpine:3.19`, `busybox:3.19`) with no plain entry are
ambiguous: asking for that tag is an error naming both, never a silent pick.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from regplan.errors import ManifestError
from regplan.oci import mediatypes as mt
from regplan.oci.descriptor import Descriptor

REF_NAME = "org.opencontainers.image.ref.name"
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


def tag_of(name: str) -> str:
    """The tag a ref.name value names, or "" when it names none."""
    tag = name.rsplit(":", 1)[-1] if ":" in name else name
    return tag if _TAG.fullmatch(tag) else ""


@dataclass(frozen=True)
class LayoutIndex:
    raw: dict[str, Any] = field(repr=False)
    entries: tuple[Descriptor, ...]
    by_tag: Mapping[str, Descriptor]
    by_digest: Mapping[str, Descriptor]
    ambiguous: Mapping[str, tuple[str, ...]]  # tag -> the full names that all end in it

    @classmethod
    def empty(cls) -> LayoutIndex:
        return cls.from_json({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []})

    @classmethod
    def parse(cls, data: bytes, where: str) -> LayoutIndex:
        try:
            raw = orjson.loads(data)
        except orjson.JSONDecodeError as e:
            raise ManifestError(f"index.json is not valid JSON: {e}", ref=where) from None
        if not isinstance(raw, dict) or not isinstance(raw.get("manifests", []), list):
            raise ManifestError("index.json is not an OCI index", ref=where)
        raw.setdefault("manifests", [])
        return cls.from_json(raw, where)

    @classmethod
    def from_json(cls, raw: dict[str, Any], where: str = "index.json") -> LayoutIndex:
        entries = tuple(
            Descriptor.from_json(entry, where=f"{where} index.json manifests[{i}]")
            for i, entry in enumerate(raw["manifests"])
        )
        return cls._build(raw, entries)

    @classmethod
    def _build(cls, raw: dict[str, Any], entries: tuple[Descriptor, ...]) -> LayoutIndex:
        """The lookups over `entries`, which are `raw["manifests"]` parsed, one for one."""
        plain: dict[str, Descriptor] = {}
        full: dict[str, dict[str, Descriptor]] = {}
        by_digest: dict[str, Descriptor] = {}
        for desc in entries:
            by_digest.setdefault(desc.digest, desc)
            name = desc.annotations.get(REF_NAME, "")
            tag = tag_of(name)
            if not tag:
                continue
            if name == tag:
                plain.setdefault(tag, desc)
            else:
                full.setdefault(tag, {}).setdefault(name, desc)
        by_tag: dict[str, Descriptor] = dict(plain)
        ambiguous: dict[str, tuple[str, ...]] = {}
        for tag, names in full.items():
            if tag in plain:
                continue
            if len(names) == 1:
                by_tag[tag] = next(iter(names.values()))
            else:
                ambiguous[tag] = tuple(sorted(names))
        return cls(raw, entries, by_tag, by_digest, ambiguous)

    def _refuse_ambiguous(self, tag: str, where: str) -> None:
        names = self.ambiguous.get(tag)
        if names:
            listed = " and ".join(repr(n) for n in names)
            raise ManifestError(
                f"index.json entries {listed} all name tag {tag!r}; "
                "a layout read as one repository cannot tell them apart "
                "(give each its own layout, or a plain tag)",
                ref=where,
            )

    def lookup(self, tag: str, where: str) -> Descriptor | None:
        self._refuse_ambiguous(tag, where)
        return self.by_tag.get(tag)

    def tags(self, where: str) -> list[str]:
        for tag in sorted(self.ambiguous):
            self._refuse_ambiguous(tag, where)
        return sorted(self.by_tag)

    def with_tags(self, changes: Sequence[tuple[str, dict[str, Any]]]) -> LayoutIndex:
        """The index with each (tag, entry) as the plain entry for its tag, as if written one
        after the other: an earlier plain entry for the tag goes, the new one is appended (the
        last change of a tag wins). Nothing is parsed again, and new tags (a cold mirror) cost
        no Python-level pass over the index: each commit would otherwise be quadratic in tags."""
        last = {tag: i for i, (tag, _) in enumerate(changes)}
        added = [
            (entry, Descriptor.from_json(entry, where=f"index.json entry for {tag}"))
            for i, (tag, entry) in enumerate(changes)
            if last[tag] == i
        ]
        if any(self._has_plain(tag) for tag in last):
            return self._rebuilt(last, added)
        raw = {**self.raw, "manifests": [*self.raw["manifests"], *(e for e, _ in added)]}
        by_tag = dict(self.by_tag)
        by_digest = dict(self.by_digest)
        ambiguous = dict(self.ambiguous)
        for _, desc in added:
            tag = desc.annotations[REF_NAME]
            by_tag[tag] = desc  # a plain entry wins over full names ending in its tag
            ambiguous.pop(tag, None)
            by_digest.setdefault(desc.digest, desc)
        entries = (*self.entries, *(d for _, d in added))
        return LayoutIndex(raw, entries, by_tag, by_digest, ambiguous)

    def _has_plain(self, tag: str) -> bool:
        desc = self.by_tag.get(tag)
        return desc is not None and desc.annotations.get(REF_NAME) == tag

    def _rebuilt(
        self, last: Mapping[str, int], added: list[tuple[dict[str, Any], Descriptor]]
    ) -> LayoutIndex:
        """A tag moved: one pass drops its earlier plain entries (kept ones are not parsed)."""
        kept_raw: list[Any] = []
        kept: list[Descriptor] = []
        for entry, desc in zip(self.raw["manifests"], self.entries, strict=True):
            if desc.annotations.get(REF_NAME) not in last:
                kept_raw.append(entry)
                kept.append(desc)
        kept_raw.extend(e for e, _ in added)
        kept.extend(d for _, d in added)
        return LayoutIndex._build({**self.raw, "manifests": kept_raw}, tuple(kept))
