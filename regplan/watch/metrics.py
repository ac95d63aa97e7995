"""The server's Prometheus metrics, in a CollectorRegistry of its own (never the global one).

Per-step series are labelled `step` with the step's index in the config's `sync` list;
`regplan_step_info` maps that index to the step's source, target, type and schedule.
Rate limits and request counts are read from the live registry client at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Info
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from regplan import __version__
from regplan.registry.client import RegistryClient
from regplan.watch.runs import MODES, OUTCOMES, RunResult
from regplan.watch.scheduler import ScheduledStep

__all__ = ["WatchMetrics"]


class _ClientCollector(Collector):
    """What the registry client last saw: rate-limit headers per registry, request counts."""

    def __init__(self, client: Callable[[], RegistryClient]) -> None:
        self._client = client

    def collect(self) -> Iterator[Metric]:
        client = self._client()
        remaining = GaugeMetricFamily(
            "regplan_ratelimit_remaining",
            "Pulls remaining at the registry, from the last RateLimit-Remaining header seen",
            labels=["registry"],
        )
        limit = GaugeMetricFamily(
            "regplan_ratelimit_limit",
            "Pull limit of the registry, from the last RateLimit-Limit header seen",
            labels=["registry"],
        )
        for registry, info in sorted(client.rate_limits().items()):
            if info.remaining is not None:
                remaining.add_metric([registry], info.remaining)
            if info.limit is not None:
                limit.add_metric([registry], info.limit)
        requests = CounterMetricFamily(
            "regplan_registry_requests",
            "Requests sent to registries, by registry, method and kind of request",
            labels=["registry", "method", "kind"],
        )
        for key, n in client.counter.snapshot().items():  # "registry METHOD kind"
            registry, method, kind = [*key.split(" ", 2), "", ""][:3]
            requests.add_metric([registry, method, kind], n)
        yield remaining
        yield limit
        yield requests


class WatchMetrics:
    """Every metric `regplan watch` exposes. Thread-safe (prometheus-client's own locks)."""

    def __init__(self, client: Callable[[], RegistryClient]) -> None:
        r = self.registry = CollectorRegistry()
        Info("regplan_build", "regplan version", registry=r).info({"version": __version__})
        self.runs = Counter(
            "regplan_runs",
            "Finished step runs, by mode (missing: initial pass; full: scheduled) and outcome",
            ["step", "mode", "outcome"],
            registry=r,
        )
        self.runs_skipped = Counter(
            "regplan_runs_skipped",
            "Scheduled runs skipped because the step's previous run was still going",
            ["step"],
            registry=r,
        )
        self.images = Counter(
            "regplan_images_copied",
            "Images written to targets (tags, digest tags, backups)",
            ["step"],
            registry=r,
        )
        self.manifests = Counter(
            "regplan_manifests_copied",
            "Manifests pushed (images, index children, referrers)",
            ["step"],
            registry=r,
        )
        self.blobs = Counter(
            "regplan_blobs_copied",
            "Blobs copied, streamed or mounted",
            ["step"],
            registry=r,
        )
        self.blobs_mounted = Counter(
            "regplan_blobs_mounted",
            "Blobs mounted from another repository of the same registry (no bytes moved)",
            ["step"],
            registry=r,
        )
        self.bytes = Counter(
            "regplan_bytes_copied",
            "Blob bytes streamed from sources to targets",
            ["step"],
            registry=r,
        )
        self.errors = Counter(
            "regplan_errors",
            "Errors: planning errors, failed actions, failed runs, bad schedules",
            ["step"],
            registry=r,
        )
        self.ratelimit_delays = Counter(
            "regplan_ratelimit_delays",
            "Times an image was deferred because the source's remaining pulls were below ratelimit.min",
            ["step"],
            registry=r,
        )
        self.last_success = Gauge(
            "regplan_last_success_timestamp_seconds",
            "When the step's last successful run finished (Unix time)",
            ["step"],
            registry=r,
        )
        self.last_duration = Gauge(
            "regplan_last_run_duration_seconds",
            "How long the step's last run took (plan and apply)",
            ["step"],
            registry=r,
        )
        self.next_run = Gauge(
            "regplan_next_run_timestamp_seconds",
            "When the step is scheduled to run next (Unix time)",
            ["step"],
            registry=r,
        )
        self.running = Gauge(
            "regplan_step_running", "1 while a run of the step is going", ["step"], registry=r
        )
        self.prune_pending = Gauge(
            "regplan_prune_pending",
            "Tags the last run would delete but did not (watch runs without --prune)",
            ["step"],
            registry=r,
        )
        self.step_info = Gauge(
            "regplan_step_info",
            "The configured steps (value 1): what each `step` label stands for",
            ["step", "source", "target", "type", "schedule"],
            registry=r,
        )
        self.ready = Gauge(
            "regplan_ready", "1 once the initial pass finished, 0 before it and while stopping",
            registry=r,
        )  # fmt: skip
        self.reloads = Counter(
            "regplan_config_reloads", "Config reloads (SIGHUP), by outcome", ["outcome"], registry=r
        )
        for outcome in ("success", "failure"):
            self.reloads.labels(outcome)
        r.register(_ClientCollector(client))

    def describe_steps(self, entries: Sequence[ScheduledStep]) -> None:
        """Create every step's series at zero, so rates and absences work from the start."""
        self.step_info.clear()
        for entry in entries:
            step = entry.step
            label = str(step.index)
            self.step_info.labels(
                label, step.source, step.target, step.type, entry.schedule.text
            ).set(1)
            for mode in MODES:
                for outcome in OUTCOMES:
                    self.runs.labels(label, mode, outcome)
            for counter in (
                self.runs_skipped,
                self.images,
                self.manifests,
                self.blobs,
                self.blobs_mounted,
                self.bytes,
                self.errors,
                self.ratelimit_delays,
            ):
                counter.labels(label)
            self.running.labels(label).set(0)

    def run_started(self, index: int) -> None:
        self.running.labels(str(index)).set(1)

    def run_finished(self, result: RunResult) -> None:
        label = str(result.step)
        self.running.labels(label).set(0)
        self.runs.labels(label, result.mode, result.outcome).inc()
        c = result.copied
        self.images.labels(label).inc(c.images)
        self.manifests.labels(label).inc(c.manifests)
        self.blobs.labels(label).inc(c.blobs)
        self.blobs_mounted.labels(label).inc(c.mounted)
        self.bytes.labels(label).inc(c.bytes)
        if result.errors:
            self.errors.labels(label).inc(len(result.errors))
        self.last_duration.labels(label).set(result.seconds)
        if result.prune_pending is not None:
            self.prune_pending.labels(label).set(result.prune_pending)
        if result.outcome == "success":
            self.last_success.labels(label).set(result.finished_at)

    def error(self, index: int, count: int = 1) -> None:
        self.errors.labels(str(index)).inc(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)
