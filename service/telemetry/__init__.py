"""Metrics, traces and logs: each declared once, bounded, and free of content."""

from __future__ import annotations

from service.telemetry.logging import AccessLog, configure_logging, get_logger
from service.telemetry.metrics import Metrics, start_metrics_server
from service.telemetry.tracing import ServerTracer, configure_tracing, shutdown

__all__ = [
    "AccessLog",
    "Metrics",
    "ServerTracer",
    "configure_logging",
    "configure_tracing",
    "get_logger",
    "shutdown",
    "start_metrics_server",
]
