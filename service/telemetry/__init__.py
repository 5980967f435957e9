"""Metrics, traces and logs: each declared once, bounded, and free of content."""

from __future__ import annotations

from service.telemetry.correlation import TraceIds, current_ids, parse_traceparent
from service.telemetry.logging import AccessLog, configure_logging, get_logger
from service.telemetry.metrics import (
    Metrics,
    configure_worker_metrics,
    mark_worker_dead,
    prepare_metrics_dir,
    remove_metrics_dir,
    serve_merged_metrics,
    start_metrics_server,
)
from service.telemetry.tracing import ServerTracer, configure_tracing, shutdown

__all__ = [
    "AccessLog",
    "Metrics",
    "ServerTracer",
    "TraceIds",
    "configure_logging",
    "configure_tracing",
    "configure_worker_metrics",
    "current_ids",
    "get_logger",
    "mark_worker_dead",
    "parse_traceparent",
    "prepare_metrics_dir",
    "remove_metrics_dir",
    "serve_merged_metrics",
    "shutdown",
    "start_metrics_server",
]
