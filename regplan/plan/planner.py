"""The planner: resolve steps, query sources and targets read-only, diff into a Plan.

For each image it HEADs the source and the target and lets `decide.decide` apply regsync's
rules (docs/regsync-behaviour.md, "Deciding whether an image needs syncing") to what they
said; only when the answer needs them (digests differ, or the step asks for referrers, digest
tags or forced recursion) it reads bodies and walks the manifest tree. What
the image needs becomes nodes of the desired-state graph; what the target already has is
marked satisfied and pruned. Checks run concurrently; the registry layer bounds requests per
host. Nothing here writes to a registry.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING

import orjson

from regplan import __version__, logs
from regplan.cancel import Cancelled, CancelToken, run_pool
from regplan.config.model import Config, ReferrerFilter, SyncStep
from regplan.errors import ManifestError, NotFoundError, RegplanError
from regplan.oci import digest as digests
from regplan.oci import mediatypes as mt
from regplan.oci import platform as platforms
from regplan.oci.descriptor import Descriptor
from regplan.oci.manifest import Manifest, parse
from regplan.plan import model
from regplan.plan.decide import Decision, Head, Rules, Seen, Verdict, decide, schema1_refusal
from regplan.plan.graph import (
    DesiredGraph,
    Fragment,
    Node,
    NodeKey,
    blob_key,
    manifest_key,
    tag_key,
)
from regplan.plan.model import Kind, Mode, Plan, StepSummary
from regplan.plan.resolve import (
    ImageJob,
    StepJobs,
    TargetTag,
    list_shared_targets,
    resolve_step,
)
from regplan.plan.view import RegistryView
from regplan.refs import ImageRef
from regplan.registry import referrers
from regplan.registry.api import Backend, ManifestHead, RateLimitInfo

if TYPE_CHECKING:  # pruning is loaded only when a step prunes
    from regplan.plan.pruning import StepPrunes

log = logs.get(__name__)


class JobStatus(StrEnum):
    """How planning one image ended."""

    UP_TO_DATE = "up-to-date"
    SYNC = "sync"
    SKIPPED = "skipped"
    FAILED = "error"
    CANCELLED = "cancelled"


# Real images nest an index, a manifest and a few referrers of referrers; far deeper trees
# come from hostile sources and would otherwise exhaust Python's recursion limit.
MAX_NESTING = 16


@dataclass(frozen=True)
class PlanOptions:
    missing: bool = False  # only tags missing on the target (regsync --missing)
    explain: bool = False  # record tags the filters dropped, and why
    shallow: bool = False  # `check`: decide per image, do not walk content (plan not appliable)
    abort_on_error: bool = False
    step_indexes: tuple[int, ...] | None = None  # only these steps (watch runs one at a time)
    workers: int = 16  # concurrent image checks; requests are bounded per registry below this
    shard: tuple[int, int] | None = None  # (index, count): only images whose target is in it
    log_decisions: bool = True  # "Image sync needed" at info (regsync) rather than debug
    cancel: CancelToken | None = None  # checked before each request and image (watch's stop)


@dataclass
class JobResult:
    job: ImageJob
    fragment: Fragment = field(default_factory=Fragment)
    status: JobStatus = JobStatus.UP_TO_DATE
    skipped: dict[str, str] | None = None
    error: str = ""
    rate_limit: RateLimitInfo | None = None
    warnings: list[str] = field(default_factory=list)


class _Skip(Exception):
    """The image is left alone (missing mode, unsupported media type); not an error."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


@dataclass(frozen=True)
class _Copy:
    """A COPY decision with what planning its node needs besides."""

    decision: Decision
    head: Head  # what the tag will point at
    source_digest: str  # what the source tag pointed at (the index, for a platform child)
    platform: str  # the platform chosen from the index ('' unless `platform`)


def _head(head: ManifestHead | None) -> Head | None:
    return Head(head.digest, head.media_type, head.size) if head is not None else None


def _matches_filter(desc: Descriptor, filters: Sequence[ReferrerFilter]) -> bool:
    if not filters:
        return True
    for f in filters:
        if f.artifact_type and desc.artifact_type != f.artifact_type:
            continue
        if all(
            (key in desc.annotations) and (not value or desc.annotations[key] == value)
            for key, value in f.annotations
        ):
            return True
    return False


def filter_platforms(index: Manifest, wanted: Sequence[str]) -> Manifest:
    """The index with only the children whose platform is listed — never one that lists
    platforms that are not copied (regsync pushes the original index, issue #836)."""
    plats = [platforms.parse(p) for p in wanted if p]
    want_unplatformed = "" in wanted
    body = index.json()
    entries = body.get("manifests") or []
    kept = [
        entry
        for entry, desc in zip(entries, index.manifests, strict=True)
        if (desc.platform is None and want_unplatformed)
        or any(platforms.exact_match(p, desc.platform) for p in plats)
    ]
    if not kept:
        available = ", ".join(str(d.platform) for d in index.manifests if d.platform) or "none"
        raise NotFoundError(f"no entry matches platforms {list(wanted)} (available: {available})")
    if len(kept) == len(entries):
        return index
    body["manifests"] = kept
    return parse(orjson.dumps(body), index.media_type)


class _ImagePlanner:
    """Plans one image job into a Fragment. One instance per job (its `seen` sets make
    the fragment depend only on registry state, not on which thread asked first)."""

    def __init__(
        self,
        view: RegistryView,
        job: ImageJob,
        options: PlanOptions,
        digest_tag_index: _DigestTagIndex,
    ) -> None:
        self.view = view
        self.job = job
        self.step: SyncStep = job.step
        self.options = options
        self.result = JobResult(job)
        self.frag = self.result.fragment
        self.group = job.group
        self.seen: set[NodeKey] = set()
        self.seen_referrers: set[tuple[tuple[str, str, str], str]] = set()
        self.digest_tags = digest_tag_index
        self.read_fallbacks: set[tuple[tuple[str, str, str], str]] = set()
        self.warned_fallbacks: set[tuple[tuple[str, str, str], str]] = set()
        self.depth = 0
        step = self.step
        self.referrer_source = (
            ImageRef.parse(step.referrer_source).repo() if step.referrer_source else None
        )
        self.referrer_target = (
            ImageRef.parse(step.referrer_target).repo() if step.referrer_target else None
        )
        self.rules = Rules(
            media_types=step.media_types,
            fast_check=step.fast_copy,
            force_recursive=step.force_recursive,
            referrers=bool(step.referrers),
            digest_tags=step.digest_tags,
            platform=step.platform,
            platforms=step.platforms,
            backup=bool(step.backup),
            immutable_tags=step.immutable_tags,
            missing=options.missing,
        )

    # -- the image --------------------------------------------------------------------------
    def run(self) -> JobResult:
        job = self.job
        try:
            self.plan_tag(job.source, job.target, model.TAG, known=job.target_tag)
        except _Skip as s:
            self.result.status = JobStatus.SKIPPED
            self.result.skipped = {"ref": str(job.target), "why": s.why}
            return self.result
        top = self.frag.nodes[0] if self.frag.nodes else None
        work = any(not n.satisfied for n in self.frag.nodes)
        self.result.status = JobStatus.SYNC if work else JobStatus.UP_TO_DATE
        if work and top is not None:
            refresh = top.satisfied or top.change.reason == model.REFRESH
            self._decision(
                "Image refreshing" if refresh else "Image sync needed",
                source=str(job.source),
                target=str(job.target),
            )
        return self.result

    @contextmanager
    def _deeper(self, ref: object) -> Iterator[None]:
        """One level further down the manifest tree; too deep fails this image only."""
        if self.depth >= MAX_NESTING:
            raise ManifestError(f"{ref}: manifests nested more than {MAX_NESTING} levels deep")
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    def _decision(self, msg: str, **fields: object) -> None:
        (log.info if self.options.log_decisions else log.debug)(msg, **fields)

    def plan_tag(
        self,
        source: ImageRef,
        target: ImageRef,
        kind: Kind,
        *,
        known: TargetTag = TargetTag.ASK,
    ) -> NodeKey | None:
        """A tag (or digest tag) on the target pointing where the source tag points."""
        top = kind == model.TAG
        src = self.view.head(source)
        if top and src is not None:
            self.result.rate_limit = src.rate_limit
        # no source, no question about the target: regsync stops at the source's HEAD too
        asks_target = src is not None and known is TargetTag.ASK
        tgt = self.view.head(target) if asks_target else None
        if tgt is None and asks_target:
            self.view.repo_missing(target)  # a new repository: no more requests into it
        seen = Seen(
            _head(src),
            _head(tgt),
            top=top,
            target_tag=target.tag,
            target_listed=known is TargetTag.LISTED,
        )
        decision = decide(self.rules, seen)
        manifest: Manifest | None = None
        if decision.verdict == Verdict.RESOLVE_PLATFORM:
            assert src is not None  # decide asks for the index only of a source it saw
            resolved, manifest, chosen = self._resolve_platform(source, src)
            decision = decide(self.rules, replace(seen, resolved=resolved))
        else:
            chosen = ""
        return self._act(decision, seen, kind, source, target, tgt, manifest, chosen)

    def _act(
        self,
        decision: Decision,
        seen: Seen,
        kind: Kind,
        source: ImageRef,
        target: ImageRef,
        tgt: ManifestHead | None,
        manifest: Manifest | None,
        chosen_platform: str,
    ) -> NodeKey | None:
        """Do what `decision` says: skip, fail, or plan the tag and what it needs."""
        top, verdict, head = kind == model.TAG, decision.verdict, decision.head
        self._report(decision, seen, source, target, filtered=manifest is not None)
        if verdict == Verdict.SOURCE_NOT_FOUND:
            if top:
                raise NotFoundError(decision.why, ref=str(source))
            self.result.warnings.append(f"{source}: listed but not found, not copied")
            return None
        if verdict == Verdict.REFUSED:
            raise ManifestError(f"{source}: {decision.why}")
        if verdict == Verdict.IMMUTABLE:
            self.result.warnings.append(f"{target}: {decision.why}")
        if decision.skipped:
            if top:
                raise _Skip(decision.why)
            return None
        assert head is not None  # every other verdict names what the tag points at
        if verdict != Verdict.COPY:
            return self._satisfied_tag(kind, source, target, head)
        assert seen.source is not None  # a COPY is of a source that is there
        copy = _Copy(decision, head, seen.source.digest, chosen_platform)
        return self._copy_tag(copy, kind, source, target, tgt, manifest)

    def _report(
        self, decision: Decision, seen: Seen, source: ImageRef, target: ImageRef, *, filtered: bool
    ) -> None:
        """regsync's log line for the decision, where it writes one."""
        verdict, head = decision.verdict, decision.head
        if verdict == Verdict.SOURCE_NOT_FOUND and seen.top:
            log.error("Failed to lookup source manifest", source=str(source), error="not found")
        elif verdict == Verdict.MATCHES and not filtered:  # (a filtered index matches silently)
            log.debug("Image matches", source=str(source), target=str(target))
        elif verdict == Verdict.MATCHES_PLATFORM and head is not None:
            pinned = source.with_digest(head.digest)
            log.debug("Image matches for platform", source=str(pinned), target=str(target))
        elif verdict == Verdict.TARGET_EXISTS:
            log.debug("target exists", source=str(source), target=str(target))
        elif verdict == Verdict.UNSUPPORTED and seen.source is not None:
            log.info(
                "Skipping unsupported media type",
                ref=str(source),
                mediaType=seen.source.media_type,
                allowed=",".join(self.step.media_types),
            )

    def _resolve_platform(
        self, source: ImageRef, src: ManifestHead
    ) -> tuple[Head, Manifest | None, str]:
        """The source index's child for `platform`, or the index filtered to `platforms`:
        what the tag will point at, its body when already built, and the platform chosen."""
        step = self.step
        pinned = source.with_digest(src.digest)
        if not step.platform:
            manifest = filter_platforms(self.view.manifest(pinned), step.platforms)
            return Head(manifest.digest, manifest.media_type, manifest.size), manifest, ""
        index = self.view.manifest(pinned)
        want = platforms.parse(step.platform)
        i = platforms.best_match(want, [d.platform for d in index.manifests])
        if i < 0:
            available = ", ".join(str(d.platform) for d in index.manifests if d.platform)
            log.warn(
                "Platform could not be found in source manifest list",
                platform=step.platform,
                platforms=available,
            )
            raise NotFoundError(
                f"platform {step.platform} not found in source manifest list", ref=str(source)
            )
        child = index.manifests[i]
        return Head(child.digest, child.media_type, child.size), None, str(child.platform)

    def _copy_tag(
        self,
        copy: _Copy,
        kind: Kind,
        source: ImageRef,
        target: ImageRef,
        tgt: ManifestHead | None,
        manifest: Manifest | None,
    ) -> NodeKey:
        """The tag's node, its content unless the target holds it, and its attachments."""
        decision, head = copy.decision, copy.head
        pinned = source.with_digest(head.digest)
        attachments = decision.referrers or decision.digest_tags
        repo_src, repo_tgt = source.repo(), target.repo()
        if manifest is None and (
            decision.read_body
            or (
                attachments
                and mt.is_index(head.media_type)
                and self._index_may_have_attachments(repo_src, head.digest)
            )
        ):
            manifest = self.view.manifest(pinned)
        satisfied = decision.satisfied
        assert decision.reason is not None  # a COPY always says why
        node = Node.of(
            kind=kind,
            target=target,
            digest=head.digest,
            media_type=head.media_type,
            size=head.size,
            source=pinned,
            reason=decision.reason,
            group=self.group,
            satisfied=satisfied,
            before=tgt.digest if tgt else None,
            source_tag=source.tag,
            source_digest=copy.source_digest,
            platform=copy.platform,
            manifest=manifest.raw if manifest is not None and not satisfied else None,
        )
        key = self.frag.add(node)
        self.seen.add(key)
        if manifest is not None and not satisfied:
            self._with_content(node, key, repo_src, repo_tgt, manifest)
        if attachments:
            for d in self.tree_digests(repo_src, manifest, head.digest):
                if decision.referrers:
                    for dep in self.plan_referrers(
                        self.referrer_source or repo_src, self.referrer_target or repo_tgt, d
                    ):
                        self.frag.edge(dep, key, hard=False)
                if decision.digest_tags:
                    for dep in self.plan_digest_tags(repo_src, repo_tgt, d):
                        self.frag.edge(dep, key, hard=False)
        if decision.backup:
            assert tgt is not None  # only an overwrite is backed up
            self.frag.edge(self.plan_backup(target, tgt), key)
        return key

    def _satisfied_tag(self, kind: Kind, source: ImageRef, target: ImageRef, head: Head) -> NodeKey:
        return self.frag.add(
            Node.of(
                kind=kind,
                target=target,
                digest=head.digest,
                media_type=head.media_type,
                size=head.size,
                source=source.with_digest(head.digest),
                reason=model.REFRESH,
                group=self.group,
                satisfied=True,
                before=head.digest,
                source_tag=source.tag,
            )
        )

    # -- content ----------------------------------------------------------------------------
    def plan_content(
        self, src_repo: ImageRef, tgt_repo: ImageRef, manifest: Manifest
    ) -> list[NodeKey]:
        """Nodes for what must be in `tgt_repo` before `manifest` can be pushed there."""
        if src_repo.same_repository(tgt_repo):
            return []  # same repository: the content is there already
        keys: list[NodeKey] = []
        if manifest.is_index:
            for child in manifest.manifests:
                if mt.is_manifest(child.media_type):
                    self._check_child_type(src_repo, child)
                if mt.is_manifest(child.media_type) or not child.media_type:
                    keys.append(self._child_manifest(src_repo, tgt_repo, child))
                else:
                    keys.append(self._blob(src_repo, tgt_repo, child))
            return keys
        for blob in manifest.blobs():
            if blob.urls and not self.step.include_external:
                log.debug("Skipping external layer", layer=blob.digest)
                continue
            keys.append(self._blob(src_repo, tgt_repo, blob))
        return keys

    def _check_child_type(self, src_repo: ImageRef, child: Descriptor) -> None:
        """`mediaTypes` holds for index children too: an index cannot be pushed without them."""
        ref = src_repo.with_digest(child.digest)
        _refuse_schema1(ref, child.media_type)
        if mt.base(child.media_type) not in self.step.media_types:
            raise ManifestError(
                f"{ref}: index child has media type {child.media_type}, which mediaTypes "
                f"does not allow ({', '.join(self.step.media_types)})"
            )

    def _copied(
        self,
        kind: str,
        src_repo: ImageRef,
        tgt_repo: ImageRef,
        desc: Descriptor,
        *,
        satisfied: bool,
        **extra: object,
    ) -> Node:
        """A node for content copied by digest from `src_repo` into `tgt_repo`."""
        return Node.of(
            kind=kind,
            target=tgt_repo.with_digest(desc.digest),
            digest=desc.digest,
            media_type=desc.media_type,
            size=desc.size,
            source=src_repo.with_digest(desc.digest),
            reason=model.Reason.CONTENT_LACKING,
            group=self.group,
            satisfied=satisfied,
            **extra,  # type: ignore[arg-type]
        )

    def _with_content(
        self, node: Node, key: NodeKey, src_repo: ImageRef, tgt_repo: ImageRef, manifest: Manifest
    ) -> None:
        """Pin the manifest bytes on `node` and, unless the target holds that manifest already,
        plan what it needs first."""
        node.update(manifest=manifest.raw, media_type=manifest.media_type)
        if self.options.shallow or (
            not self.step.force_recursive
            and node.kind != model.MANIFEST
            and self.view.has_manifest(tgt_repo, manifest.digest)
        ):
            return
        with self._deeper(src_repo.with_digest(manifest.digest)):
            deps = self.plan_content(src_repo, tgt_repo, manifest)
        for dep in deps:
            self.frag.edge(dep, key)

    def _child_manifest(self, src_repo: ImageRef, tgt_repo: ImageRef, desc: Descriptor) -> NodeKey:
        key = manifest_key(tgt_repo, desc.digest)
        if key in self.seen:
            return key
        self.seen.add(key)
        present = not self.step.force_recursive and self.view.has_manifest(tgt_repo, desc.digest)
        node = self._copied(
            model.MANIFEST,
            src_repo,
            tgt_repo,
            desc,
            satisfied=present,
            platform=str(desc.platform) if desc.platform else "",
        )
        if not present:
            self._with_content(
                node, key, src_repo, tgt_repo, self.view.manifest(src_repo.with_digest(desc.digest))
            )
        self.frag.add(node)
        return key

    def _blob(self, src_repo: ImageRef, tgt_repo: ImageRef, desc: Descriptor) -> NodeKey:
        key = blob_key(tgt_repo, desc.digest)
        if key in self.seen:
            return key
        if desc.size < 0:
            # a blob is only ever streamed with a known size, so it cannot fill the target
            raise ManifestError(f"{src_repo.with_digest(desc.digest)}: blob has no declared size")
        self.seen.add(key)
        present = self.view.has_blob(tgt_repo, desc.digest)
        mountable = not src_repo.is_ocidir and src_repo.same_registry(tgt_repo)
        self.frag.add(
            self._copied(
                model.BLOB,
                src_repo,
                tgt_repo,
                desc,
                satisfied=present,
                mount_from=src_repo if mountable else None,
                bytes=0 if (present or mountable) else max(desc.size, 0),
            )
        )
        return key

    def tree_digests(self, repo: ImageRef, manifest: Manifest | None, digest: str) -> list[str]:
        """The manifest and every manifest below it (referrers and digest tags attach to any).
        Without the body (`manifest` None: nothing below can have attachments) just itself."""
        out = [digest]
        if manifest is not None and manifest.is_index:
            for child in manifest.manifests:
                if mt.is_index(child.media_type):
                    if self._index_may_have_attachments(repo, child.digest):
                        nested_ref = repo.with_digest(child.digest)
                        with self._deeper(nested_ref):
                            nested = self.view.manifest(nested_ref)
                            out.extend(self.tree_digests(repo, nested, child.digest))
                    else:
                        out.append(child.digest)
                elif mt.is_manifest(child.media_type) or not child.media_type:
                    out.append(child.digest)
        return list(dict.fromkeys(out))

    def _index_may_have_attachments(self, repo: ImageRef, digest: str) -> bool:
        """Whether manifests below an index can have referrers or digest tags. Without the
        referrers API both show up as `sha256-<hex>` tags in the tag list we already read,
        so a repository without such tags (besides the index's own) needs no index body."""
        if self.step.referrers and (
            self.referrer_source is not None
            or self.step.referrer_slow
            or self.view.referrers_api(repo)
        ):
            return True
        return self.digest_tags.has_unexplained(repo)

    # -- referrers --------------------------------------------------------------------------
    def _source_referrers(self, repo: ImageRef, subject: str) -> tuple[list[Descriptor], str]:
        """Referrers of `subject` in the source, filtered, and the fallback index digest."""
        if self.view.referrers_api(repo):
            found, index_digest = self.view.referrers(repo, subject), ""
        elif self.step.referrer_slow:
            found, index_digest = self.view.referrers(repo, subject, slow=True), ""
        else:
            tag = digests.fallback_tag(subject)
            if tag not in self.digest_tags.tags(repo):
                return [], ""
            index = self.view.manifest(repo.with_tag(tag))
            if not index.is_index:
                self._not_a_fallback(repo, tag, index.media_type)
                return [], ""
            found, index_digest = list(index.manifests), index.digest
            self.read_fallbacks.add((repo.repo_key, tag))
        return [d for d in found if _matches_filter(d, self.step.referrer_filters)], index_digest

    def _not_a_fallback(self, repo: ImageRef, tag: str, media_type: str) -> None:
        """A `sha256-<hex>` tag that is no index lists no referrers: it is an ordinary tag
        (copied as a digest tag where the step asks for those), never merged into."""
        if (repo.repo_key, tag) in self.warned_fallbacks:
            return
        self.warned_fallbacks.add((repo.repo_key, tag))
        log.warn(
            "Referrers fallback tag is not an index, treated as an ordinary tag",
            ref=str(repo.with_tag(tag)),
            mediaType=media_type,
        )
        self.result.warnings.append(
            f"{repo.with_tag(tag)}: is not an OCI index ({media_type}), so it lists no "
            "referrers; treated as an ordinary tag"
        )

    def _target_referrers(
        self, repo: ImageRef, subject: str, source_index: str, wanted: list[Descriptor]
    ) -> set[str]:
        tag_ref = repo.with_tag(digests.fallback_tag(subject))
        if source_index:
            # the source keeps a fallback index: when the target's is the same index, everything
            # it lists is there, and no API probe or body is needed
            head = self.view.head(tag_ref)
            if head is not None and head.digest == source_index:
                return {d.digest for d in wanted}
        if self.view.referrers_api(repo):
            return {d.digest for d in self.view.referrers(repo, subject)}
        head = self.view.head(tag_ref)
        if head is None:
            return set()
        index = self.view.manifest(tag_ref)
        return {d.digest for d in index.manifests} if index.is_index else set()

    def plan_referrers(self, src_repo: ImageRef, tgt_repo: ImageRef, subject: str) -> list[NodeKey]:
        marker = (tgt_repo.repo_key, subject)
        if marker in self.seen_referrers:
            return []
        self.seen_referrers.add(marker)
        try:
            wanted, index_digest = self._source_referrers(src_repo, subject)
            if not wanted:
                return []
            present = self._target_referrers(tgt_repo, subject, index_digest, wanted)
        except RegplanError as e:
            log.warn(
                "Failed to copy referrer", subject=subject, source=src_repo.repo_name, error=str(e)
            )
            self.result.warnings.append(f"referrers of {src_repo.repo_name}@{subject}: {e}")
            return []
        keys = []
        pushed: list[tuple[NodeKey, Manifest]] = []
        for desc in wanted:
            node = self._copied(
                model.REFERRER,
                src_repo,
                tgt_repo,
                desc,
                satisfied=desc.digest in present,
                subject=subject,
                artifact_type=desc.artifact_type,
            )
            key = node.key
            if not node.satisfied:
                referrer = self.view.manifest(src_repo.with_digest(desc.digest))
                self._with_content(node, key, src_repo, tgt_repo, referrer)
                pushed.append((key, referrer))
            self.frag.add(node)
            keys.append(key)
            with self._deeper(src_repo.with_digest(desc.digest)):  # referrers of referrers
                keys.extend(self.plan_referrers(src_repo, tgt_repo, desc.digest))
        if pushed and not self.view.referrers_api(tgt_repo):
            keys.append(self._fallback_tag(tgt_repo, subject, pushed))
        return keys

    def _fallback_tag(
        self, tgt_repo: ImageRef, subject: str, pushed: list[tuple[NodeKey, Manifest]]
    ) -> NodeKey:
        """A store without the referrers API lists referrers under the subject's
        `sha256-<hex>` tag: the index it must hold once `pushed` are there, as a digest tag
        like any other (in the plan, with its `before`, stale-checked), not a side effect."""
        tag_ref = tgt_repo.with_tag(digests.fallback_tag(subject))
        head = self.view.head(tag_ref)
        existing = self.view.manifest(tag_ref) if head is not None else None
        merged = existing
        for _, referrer in pushed:
            merged = referrers.merged_fallback_index(merged, referrer) or merged
        assert merged is not None  # pushed is not empty and none was listed
        node = Node.of(
            kind=model.DIGEST_TAG,
            target=tag_ref,
            digest=merged.digest,
            media_type=merged.media_type,
            size=merged.size,
            source=tgt_repo.with_digest(merged.digest),  # built here, read from nowhere
            reason=model.UPDATE if head is not None else model.CREATE,
            group=self.group,
            before=head.digest if head is not None else None,
            subject=subject,
            manifest=merged.raw,
        )
        key = self.frag.add(node)
        for referrer_key, _ in pushed:
            self.frag.edge(referrer_key, key)  # an index never lists what is not there yet
        return key

    # -- digest tags ------------------------------------------------------------------------
    def plan_digest_tags(
        self, src_repo: ImageRef, tgt_repo: ImageRef, digest: str
    ) -> list[NodeKey]:
        keys = []
        for tag in self.digest_tags.of(src_repo).get(digests.digest_tag_prefix(digest), ()):
            if (src_repo.repo_key, tag) in self.read_fallbacks:
                continue  # read as the referrers list: its referrers are copied already
            target = tgt_repo.with_tag(tag)
            if tag_key(target) in self.seen:
                continue
            self.seen.add(tag_key(target))
            try:
                with self._deeper(src_repo.with_tag(tag)):
                    key = self.plan_tag(src_repo.with_tag(tag), target, model.DIGEST_TAG)
            except RegplanError as e:
                log.warn(
                    "Failed to copy digest-tag", tag=tag, source=src_repo.repo_name, error=str(e)
                )
                self.result.warnings.append(f"digest tag {src_repo.repo_name}:{tag}: {e}")
                continue
            if key is not None:
                keys.append(key)
        return keys

    # -- backup -----------------------------------------------------------------------------
    def plan_backup(self, target: ImageRef, old: ManifestHead) -> NodeKey:
        from regplan.config import resolve_backup

        backup = resolve_backup(self.step, target)
        before = self.view.head(backup)
        node = Node.of(
            kind=model.BACKUP,
            target=backup,
            digest=old.digest,
            media_type=old.media_type,
            size=old.size,
            source=target.with_digest(old.digest),
            reason=model.UPDATE if before else model.CREATE,
            group=self.group,
            satisfied=before is not None and before.digest == old.digest,
            before=before.digest if before else None,
            source_tag=target.tag,
        )
        key = self.frag.add(node)
        if not node.satisfied:
            current = self.view.manifest(target.repo().with_digest(old.digest))
            self._with_content(node, key, target.repo(), backup.repo(), current)
        return key


class _DigestTagIndex:
    """Per repository: tags grouped by the `sha256-<hex>` digest prefix they start with, so
    finding an image's digest tags is a dict lookup, not a scan of every tag."""

    def __init__(self, view: RegistryView) -> None:
        self._view = view
        self._lock = threading.Lock()
        self._index: dict[tuple[str, str, str], dict[str, list[str]]] = {}
        self._tags: dict[tuple[str, str, str], frozenset[str]] = {}

        self._top: dict[tuple[str, str, str], set[str]] = {}

    def tags(self, repo: ImageRef) -> frozenset[str]:
        self.of(repo)
        return self._tags[repo.repo_key]

    def add_top_level(self, repo: ImageRef, digest: str) -> None:
        """A digest some planned tag of `repo` points at: its attachments are planned with it."""
        with self._lock:
            self._top.setdefault(repo.repo_key, set()).add(digests.digest_tag_prefix(digest))

    def has_unexplained(self, repo: ImageRef) -> bool:
        """Whether `repo` has `sha256-<hex>` tags for digests no planned tag points at — which
        may be children of an index, so index bodies must be read to find them."""
        index = self.of(repo)
        with self._lock:
            top = self._top.get(repo.repo_key, set())
        return any(prefix not in top for prefix in index)

    def of(self, repo: ImageRef) -> dict[str, list[str]]:
        with self._lock:
            found = self._index.get(repo.repo_key)
        if found is not None:
            return found
        tags = self._view.tags_or_empty(repo)
        index: dict[str, list[str]] = {}
        for tag in sorted(tags):
            algorithm, sep, rest = tag.partition("-")
            if sep and algorithm in ("sha256", "sha512") and len(rest) >= 64:
                length = 64 if algorithm == "sha256" else 128
                index.setdefault(f"{algorithm}-{rest[:length]}", []).append(tag)
        with self._lock:
            self._index[repo.repo_key] = index
            self._tags[repo.repo_key] = frozenset(tags)
        return index


def _refuse_schema1(ref: ImageRef, media_type: str) -> None:
    if mt.base(media_type) in mt.SCHEMA1_TYPES:
        raise ManifestError(f"{ref}: {schema1_refusal(media_type)}")


def _try(call: Callable[[ImageRef], ManifestHead | None], ref: ImageRef) -> ManifestHead | None:
    """A lookup whose failure the job that needs it reports (the view remembers the error)."""
    try:
        return call(ref)
    except RegplanError:
        return None


def _min_rate_limit(results: list[JobResult]) -> dict[str, int] | None:
    seen = [
        r.rate_limit
        for r in results
        if r.rate_limit is not None and r.rate_limit.remaining is not None
    ]
    if not seen:
        return None
    lowest = min(seen, key=lambda r: r.remaining or 0)
    out = {"remaining": lowest.remaining or 0}
    if lowest.limit is not None:
        out["limit"] = lowest.limit
    return out


def _job_error(job: ImageJob, error: RegplanError) -> str:
    """The step, the image and the error, naming the image once (errors often start with it)."""
    text, source = str(error), str(job.source)
    if text.startswith(f"{source}: "):
        text = text[len(source) + 2 :]
    return f"{job.step.name}: {source}: {text}"


def _plan_prunes(
    resolved: list[StepJobs],
    results: list[JobResult],
    view: RegistryView,
    client: Backend,
    pool: ThreadPoolExecutor,
    options: PlanOptions,
) -> dict[int, StepPrunes]:
    """Deletes for `prune` steps that planned without an error: a step whose source could not
    be read in full must never delete what it failed to see."""
    if options.shallow or not any(r.prune for r in resolved):
        return {}
    from regplan.plan.pruning import StepPrunes, plan_step_prunes

    planned = {
        n.change.target: n.digest
        for x in results
        for n in x.fragment.nodes
        if n.kind in model.TAG_KINDS
    }
    out: dict[int, StepPrunes] = {}
    for r in resolved:
        if not r.prune:
            continue
        if r.errors or any(x.error for x in results if x.job.step.index == r.step.index):
            log.warn("Not pruning: the step had errors", step=r.step.name)
            out[r.step.index] = StepPrunes(
                warnings=[f"{r.step.name}: not pruned: the step had errors"]
            )
            continue
        scopes = r.prune
        if options.shard is not None:
            from regplan.plan.shard import shard_of

            index, count = options.shard
            scopes = [p for p in scopes if shard_of(str(p.target), count) == index]
        out[r.step.index] = plan_step_prunes(r.step, scopes, view, client, pool, planned)
    return out


def _step_summary(
    r: StepJobs, results: list[JobResult], pruned: StepPrunes | None, *, explain: bool
) -> StepSummary:
    """What planning found for one step, from its jobs' results and its prunes."""
    return StepSummary(
        index=r.step.index,
        name=r.step.name,
        type=r.step.type,
        source=r.step.source,
        target=r.step.target,
        images=len(results),
        up_to_date=sum(1 for x in results if x.status == JobStatus.UP_TO_DATE),
        to_sync=sum(1 for x in results if x.status == JobStatus.SYNC),
        skipped=tuple(r.skipped + [x.skipped for x in results if x.skipped]),
        dropped=tuple(r.dropped),
        rate_limit=_min_rate_limit(results),
        errors=tuple(
            r.errors + [x.error for x in results if x.error] + (pruned.errors if pruned else [])
        ),
        pruning=tuple(
            d for d in (pruned.explained if pruned else []) if explain or d["decision"] == "refused"
        ),
    )


# Planning builds one long-lived object after another (parsed manifests, nodes, actions), so
# the collector's default trigger (every 700 net allocations) keeps scanning a young
# generation that survives and promotes it into full collections of the whole heap: half a
# second of CPU in a 1,000-tag plan. Planning makes few reference cycles; collections during
# it are only made rarer, never turned off.
_PLANNING_GC_THRESHOLD = 10_000
_gc_guard = threading.Lock()
_gc_planners = 0  # plans running now (watch runs several at once): the last one restores
_gc_saved = (700, 10, 10)


@contextmanager
def _fewer_collections() -> Iterator[None]:
    global _gc_planners, _gc_saved
    with _gc_guard:
        if _gc_planners == 0:
            _gc_saved = gc.get_threshold()
            gc.set_threshold(max(_gc_saved[0], _PLANNING_GC_THRESHOLD), *_gc_saved[1:])
        _gc_planners += 1
    try:
        yield
    finally:
        with _gc_guard:
            _gc_planners -= 1
            if _gc_planners == 0:
                gc.set_threshold(*_gc_saved)


def make_plan(config: Config, client: Backend, options: PlanOptions | None = None) -> Plan:
    """Plan every step (or `options.step_indexes`) of `config` against live registries."""
    with _fewer_collections():
        return _make_plan(config, client, options or PlanOptions())


def _plan_jobs(
    jobs: list[ImageJob],
    plan_job: Callable[[ImageJob], JobResult],
    pool: ThreadPoolExecutor,
    options: PlanOptions,
) -> list[JobResult]:
    """Every job's result, in the jobs' order. Jobs between two OCI Layouts have no latency
    to hide: planned by many threads, they only contend for the GIL (every file read hands
    it over, and a 1,000-tag layout took twice the CPU on 16 threads that it takes on one),
    so they go through one thread of their own beside the pool."""
    local = [j.source.is_ocidir and j.target.is_ocidir for j in jobs]
    if not any(local):
        return list(pool.map(plan_job, jobs))
    with run_pool(1, "plan-layout", options.cancel) as lane:
        futures = [
            (lane if on_lane else pool).submit(plan_job, j)
            for j, on_lane in zip(jobs, local, strict=True)
        ]
        return [f.result() for f in futures]


def _make_plan(config: Config, client: Backend, options: PlanOptions) -> Plan:
    view = RegistryView(client, options.cancel)
    tag_index = _DigestTagIndex(view)
    steps = [
        s for s in config.sync if options.step_indexes is None or s.index in options.step_indexes
    ]
    cancelled = threading.Event()

    def plan_job(job: ImageJob) -> JobResult:
        if cancelled.is_set() or (options.cancel is not None and options.cancel.cancelled):
            return JobResult(job, status=JobStatus.CANCELLED)
        try:
            return _ImagePlanner(view, job, options, tag_index).run()
        except Cancelled:
            return JobResult(job, status=JobStatus.CANCELLED)
        except RegplanError as e:
            log.error(
                "Failed to sync", source=str(job.source), target=str(job.target), error=str(e)
            )
            if options.abort_on_error:
                cancelled.set()
            return JobResult(job, status=JobStatus.FAILED, error=_job_error(job, e))

    with run_pool(options.workers, "plan", options.cancel) as pool:
        resolved: list[StepJobs] = list(
            pool.map(
                lambda s: resolve_step(s, view, missing=options.missing, explain=options.explain),
                steps,
            )
        )
        if options.abort_on_error and any(r.errors for r in resolved):
            cancelled.set()
        jobs = [job for r in resolved for job in r.jobs]
        if options.shard is not None:
            from regplan.plan.shard import shard_of

            index, count = options.shard
            jobs = [j for j in jobs if shard_of(str(j.target.repo()), count) == index]
        if options.missing:
            jobs = list_shared_targets(jobs, view, pool)
        if any(j.step.referrers or j.step.digest_tags for j in jobs):
            # first every source HEAD (memoised for the jobs), so the digests tags point at are
            # known before any job decides whether it must read an index body
            for job, head in zip(
                jobs, pool.map(lambda j: _try(view.head, j.source), jobs), strict=True
            ):
                if head is not None:
                    tag_index.add_top_level(job.source, head.digest)
        results = _plan_jobs(jobs, plan_job, pool, options)
        prunes = _plan_prunes(resolved, results, view, client, pool, options)
    if options.cancel is not None:
        options.cancel.check()  # a cancelled plan is no plan: nothing may apply half of it

    # `check` (shallow) reports decisions only: no actions, so no graph to build
    graph = None if options.shallow else DesiredGraph()
    by_step: dict[int, list[JobResult]] = {}
    warnings: list[str] = []
    for result in results:
        if graph is not None:
            graph.merge(result.fragment, result.job.step.index)
            result.fragment = Fragment()  # its nodes live on in the graph; its edges are merged
        by_step.setdefault(result.job.step.index, []).append(result)
        warnings.extend(result.warnings)
    summaries = []
    for r in resolved:
        step_results = by_step.get(r.step.index, [])
        pruned = prunes.get(r.step.index)
        summaries.append(_step_summary(r, step_results, pruned, explain=options.explain))
        if pruned:
            warnings.extend(pruned.warnings)
    actions = graph.to_actions() if graph is not None else []
    for p in prunes.values():
        actions.extend(replace(a, id=f"a{len(actions) + 1}") for a in p.actions)
    mode = (
        Mode.CHECK if options.shallow else (Mode.ABSENT_TAGS_ONLY if options.missing else Mode.FULL)
    )
    return Plan(
        created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        config_path=config.path if config.path == "-" else os.path.abspath(config.path),
        config_digest=config.digest,
        mode=mode,
        steps=tuple(summaries),
        actions=tuple(actions),
        format_version=model.format_version_for(tuple(actions)),
        regplan_version=__version__,
        warnings=tuple(dict.fromkeys(warnings)),
        config_path_as_written=config.path,
        selected_steps=options.step_indexes,
    )
