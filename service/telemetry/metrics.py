"""Every Prometheus metric of the service, declared once on its own registry.

Label values come only from fixed sets: the methods of the generated
``guardrail.v1.GuardrailService`` descriptor, the gRPC status codes, our enums,
and the guardrail names and categories an operator registered (capped; the
rest count as ``other``). Children are bound up front, so recording a call is
a few dict lookups and ``inc()`` calls, never a ``labels()`` call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIServer

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from guardrail.v1 import guardrail_pb2
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import start_http_server

from service.settings import Settings
from service.telemetry.fast import FastCounter, FastHistogram
from service.telemetry.multiprocess import (
    configure_worker_metrics,
    is_multiprocess,
    mark_worker_dead,
    prepare_metrics_dir,
    remove_metrics_dir,
    serve_merged_metrics,
)
from service.types import CallRecord, Decision, GuardrailStatus

if TYPE_CHECKING:  # the registry imports the engine; metrics need only its shape
    from service.registry import Snapshot

__all__ = [
    "GRPC_CODES",
    "MAX_CATEGORY_LABELS",
    "MAX_GUARDRAIL_LABELS",
    "OVERFLOW_LABEL",
    "LabelAllowlist",
    "MethodInfo",
    "MethodMetrics",
    "Metrics",
    "configure_worker_metrics",
    "grpc_type_of",
    "mark_worker_dead",
    "prepare_metrics_dir",
    "remove_metrics_dir",
    "serve_merged_metrics",
    "service_methods",
    "start_metrics_server",
]

GRPC_LABELS = ("grpc_type", "grpc_service", "grpc_method")
GRPC_CODES = tuple(code.name for code in grpc.StatusCode)
OVERFLOW_LABEL = "other"
UNKNOWN_LABEL = "unknown"
MAX_GUARDRAIL_LABELS = 64
MAX_CATEGORY_LABELS = 64
SPEND_ROW_RESULTS = ("written", "journalled", "dropped", "failed")
DEPTH_COPY_INTERVAL_S = 1.0
HANDLING_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
)  # fmt: skip
QUEUE_WAIT_BUCKETS = (
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
)  # fmt: skip
SCAN_BUCKETS = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class MethodInfo:
    """One RPC method as the gRPC metrics label it."""

    service: str  # "guardrail.v1.GuardrailService"
    name: str  # "Check"
    grpc_type: str  # unary | client_stream | server_stream | bidi_stream

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.name}"


def grpc_type_of(client_streaming: bool, server_streaming: bool) -> str:
    """The go-grpc-prometheus ``grpc_type`` value for a call shape."""
    if client_streaming:
        return "bidi_stream" if server_streaming else "client_stream"
    return "server_stream" if server_streaming else "unary"


def service_methods(service: ServiceDescriptor | None = None) -> tuple[MethodInfo, ...]:
    """The methods of a service descriptor (default: GuardrailService)."""
    if service is None:
        service = guardrail_pb2.DESCRIPTOR.services_by_name["GuardrailService"]
    return tuple(
        MethodInfo(
            service.full_name,
            method.name,
            grpc_type_of(method.client_streaming, method.server_streaming),
        )
        for method in service.methods
    )


class LabelAllowlist:
    """Label values an operator registered, capped; everything else is one value.

    The cap (``GUARDRAIL_METRICS_MAX_GUARDRAILS`` for guardrail names) bounds
    the series count whatever the registry holds; names past it, and names
    never registered, are ``other``. Admission is first come: a name once
    admitted keeps its series for the life of the process.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._allowed: set[str] = set()

    def allow(self, names: Iterable[str]) -> list[str]:
        """Admit names while there is room; returns the ones newly admitted."""
        added = []
        for name in names:
            if name in self._allowed or len(self._allowed) >= self._limit:
                continue
            self._allowed.add(name)
            added.append(name)

        return added

    def label(self, name: str) -> str:
        return name if name in self._allowed else OVERFLOW_LABEL

    def __len__(self) -> int:
        return len(self._allowed)


class MethodMetrics:
    """The gRPC server metric children of one method, bound once."""

    __slots__ = ("_handled", "handling", "received", "sent", "started")

    def __init__(self, metrics: Metrics, method: MethodInfo) -> None:
        labels = (method.grpc_type, method.service, method.name)
        self.started = FastCounter(metrics.started.labels(*labels))
        self.received = FastCounter(metrics.msg_received.labels(*labels))
        self.sent = FastCounter(metrics.msg_sent.labels(*labels))
        self.handling = FastHistogram(metrics.handling.labels(*labels))
        # Every code up front, as go-grpc-prometheus does, so rate() sees zeros.
        self._handled = {
            code: FastCounter(metrics.handled.labels(*labels, code)) for code in GRPC_CODES
        }

    def finish(self, code: str, seconds: float, trace_id: str = "") -> None:
        """Count one handled call with its final status code and latency.

        ``trace_id`` (sampled calls, single-process mode) becomes an exemplar.
        """
        (self._handled.get(code) or self._handled["UNKNOWN"]).inc()
        if trace_id:
            self.handling.observe_traced(seconds, trace_id)
        else:
            self.handling.observe(seconds)


class Metrics:
    """The service's metrics on a dedicated registry (not the global one).

    In a worker configured by ``configure_worker_metrics`` every value lives
    in the worker's slot file and the supervisor serves the merged view;
    otherwise values live in memory and ``serve`` exposes them.
    """

    def __init__(
        self,
        methods: Sequence[MethodInfo] | None = None,
        registry: CollectorRegistry | None = None,
        *,
        max_guardrails: int = MAX_GUARDRAIL_LABELS,
    ) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.multiprocess = is_multiprocess()
        # Exemplars are dropped by multiprocess files; skip building them.
        self.exemplars = not self.multiprocess
        self._declare_grpc()
        self._declare_domain()
        self._methods = {
            m.path: MethodMetrics(self, m) for m in methods or service_methods()
        }
        self._unknown: dict[str, MethodMetrics] = {}
        self.guardrails = LabelAllowlist(max_guardrails)
        self.categories = LabelAllowlist(MAX_CATEGORY_LABELS)
        self._bind_domain()
        self.port = 0  # of the /metrics server, once serving
        self._server: WSGIServer | None = None
        self._depth_thread: threading.Thread | None = None

    @classmethod
    def start(cls, settings: Settings) -> Metrics:
        """Declare the metrics and, if enabled, serve them on ``metrics_port``.

        A worker never serves: its supervisor serves the merged files.
        """
        metrics = cls(max_guardrails=settings.metrics_max_guardrails)
        if settings.metrics_enabled and not metrics.multiprocess:
            metrics.serve(settings.metrics_port)

        return metrics

    def serve(self, port: int, addr: str = "0.0.0.0") -> int:
        """Serve ``/metrics`` for this registry in a thread; returns the bound port."""
        server, _thread = start_http_server(port, addr, registry=self.registry)
        self._server = server
        self.port = int(server.server_port)

        return self.port

    def stop(self) -> None:
        """Stop the ``/metrics`` server, if serving."""
        self._depth_source = None
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server = None

    def _declare_grpc(self) -> None:
        reg = self.registry
        self.started = Counter(
            "grpc_server_started", "RPCs started on the server.", GRPC_LABELS,
            registry=reg,
        )  # fmt: skip
        self.handled = Counter(
            "grpc_server_handled", "RPCs completed on the server, by status code.",
            (*GRPC_LABELS, "grpc_code"), registry=reg,
        )  # fmt: skip
        self.msg_received = Counter(
            "grpc_server_msg_received", "Messages received by the server.",
            GRPC_LABELS, registry=reg,
        )  # fmt: skip
        self.msg_sent = Counter(
            "grpc_server_msg_sent", "Messages sent by the server.", GRPC_LABELS,
            registry=reg,
        )  # fmt: skip
        self.handling = Histogram(
            "grpc_server_handling_seconds", "RPC handling latency on the server.",
            GRPC_LABELS, buckets=HANDLING_BUCKETS, registry=reg,
        )  # fmt: skip

    def _declare_domain(self) -> None:
        reg = self.registry
        self.checks = Counter(
            "guardrail_checks", "Checks answered, by decision.", ("decision",),
            registry=reg,
        )  # fmt: skip
        self.evaluations = Counter(
            "guardrail_evaluations", "Guardrail evaluations, by guardrail and status.",
            ("guardrail_name", "status"), registry=reg,
        )  # fmt: skip
        self.findings = Counter(
            "guardrail_findings", "Findings reported, by category.", ("category",),
            registry=reg,
        )  # fmt: skip
        self.scan_seconds = Histogram(
            "guardrail_scan_seconds", "Time spent scanning one call.",
            buckets=SCAN_BUCKETS, registry=reg,
        )  # fmt: skip
        self.queue_wait_seconds = Histogram(
            "guardrail_queue_wait_seconds",
            "Time a SpendLogs row waited in the queue before it was written.",
            buckets=QUEUE_WAIT_BUCKETS, registry=reg,
        )  # fmt: skip
        self.queue_depth = Gauge(
            "guardrail_spend_log_queue_depth", "SpendLogs rows waiting to be written.",
            registry=reg, multiprocess_mode="livesum",
        )  # fmt: skip
        self.spend_rows = Counter(
            "guardrail_spend_log_rows", "SpendLogs rows, by what became of them.",
            ("result",), registry=reg,
        )  # fmt: skip
        # livemin: the generation that every live worker enforces.
        self.registry_generation = Gauge(
            "guardrail_registry_generation", "Guardrail registry generation in force.",
            registry=reg, multiprocess_mode="livemin",
        )  # fmt: skip
        self.reload_failures = Counter(
            "guardrail_registry_reload_failures",
            "Registry reloads that failed (the previous generation kept serving).",
            registry=reg,
        )  # fmt: skip
        self.label_values = Gauge(
            "guardrail_metrics_label_values",
            "Distinct values admitted for a capped label (overflow excluded).",
            ("label",), registry=reg, multiprocess_mode="livemax",
        )  # fmt: skip

    def _bind_domain(self) -> None:
        # Keyed by the enums' plain values: hashing an Enum member runs
        # Python code (Enum.__hash__), a str's hash is cached.
        self._checks = {d.value: FastCounter(self.checks.labels(d.value)) for d in Decision}
        self._evals: dict[tuple[str, str], FastCounter] = {}
        self._findings: dict[str, FastCounter] = {}
        self._bind_guardrail(OVERFLOW_LABEL)
        self._bind_category(OVERFLOW_LABEL)
        self._rows = {r: FastCounter(self.spend_rows.labels(r)) for r in SPEND_ROW_RESULTS}
        self._scan = FastHistogram(self.scan_seconds)
        self._queue_wait = FastHistogram(self.queue_wait_seconds)
        self._reload_failures = FastCounter(self.reload_failures)
        self._depth_source: Callable[[], float] | None = None

    def _bind_guardrail(self, name: str) -> None:
        for status in GuardrailStatus:
            child = self.evaluations.labels(name, status.value)
            self._evals[(name, status.value)] = FastCounter(child)
        self.label_values.labels("guardrail_name").set(len(self.guardrails))

    def _bind_category(self, category: str) -> None:
        self._findings[category] = FastCounter(self.findings.labels(category))
        self.label_values.labels("category").set(len(self.categories))

    # -- configuration (off the hot path)

    def allow_guardrails(self, names: Iterable[str]) -> None:
        """Admit registered guardrail names as label values (capped)."""
        for name in self.guardrails.allow(names):
            self._bind_guardrail(name)

    def allow_categories(self, categories: Iterable[str]) -> None:
        """Admit rule categories as label values (capped)."""
        for category in self.categories.allow(categories):
            self._bind_category(category)

    def track_queue_depth(self, depth: Callable[[], float]) -> None:
        """Read the spend-log queue depth at scrape time, not per call.

        Multiprocess files cannot call back into a worker, so a worker copies
        the depth into its file once a second instead.
        """
        if not self.multiprocess:
            self.queue_depth.set_function(depth)
            return
        self._depth_source = depth
        if self._depth_thread is None:
            self._depth_thread = threading.Thread(
                target=self._copy_depth, name="queue-depth", daemon=True
            )
            self._depth_thread.start()

    def _copy_depth(self) -> None:
        while True:
            source = self._depth_source
            if source is not None:
                self.queue_depth.set(source())
            time.sleep(DEPTH_COPY_INTERVAL_S)

    def set_registry_generation(self, generation: int) -> None:
        self.registry_generation.set(generation)

    def count_reload_failure(self) -> None:
        """A registry reload failed; the old generation keeps serving."""
        self._reload_failures.inc()

    def follow_registry(self, snapshot: Snapshot) -> None:
        """Admit a new registry generation's names and categories as labels."""
        guardrails = snapshot.guardrails.values()
        self.allow_guardrails(sorted(g.name for g in guardrails))
        self.allow_categories(sorted({r.category for g in guardrails for r in g.spec.rules}))
        self.set_registry_generation(snapshot.generation)

    # -- recording (hot path)

    def for_method(self, path: str, grpc_type: str) -> MethodMetrics:
        """The bound children of a method; unknown methods share one per type."""
        bound = self._methods.get(path)
        if bound is not None:
            return bound
        bound = self._unknown.get(grpc_type)
        if bound is None:
            info = MethodInfo(UNKNOWN_LABEL, UNKNOWN_LABEL, grpc_type)
            bound = self._unknown[grpc_type] = MethodMetrics(self, info)

        return bound

    def observe_call(self, record: CallRecord) -> None:
        """Count the guardrail side of one finished call."""
        if record.decision is not None:
            self._checks[record.decision._value_].inc()
        if record.scan_ns:
            self._scan.observe(record.scan_ns / 1e9)
        evals = self._evals
        for outcome in record.outcomes:
            status = outcome.status._value_
            child = evals.get((outcome.name, status))
            (child or evals[(OVERFLOW_LABEL, status)]).inc()
        findings = self._findings
        for finding in record.findings:
            (findings.get(finding.category) or findings[OVERFLOW_LABEL]).inc()

    def count_spend_rows(self, result: str, count: int = 1) -> None:
        """Count rows ``written``, ``journalled`` (spilled to disk), ``dropped``
        or ``failed``."""
        self._rows[result].inc(count)

    def observe_queue_wait(self, seconds: float) -> None:
        """How long a SpendLogs row waited between submit and write."""
        self._queue_wait.observe(seconds)


def start_metrics_server(settings: Settings, metrics: Metrics) -> int:
    """Serve ``metrics`` on ``settings.metrics_port``; returns the bound port."""
    return metrics.serve(settings.metrics_port)
