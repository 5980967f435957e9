from __future__ import annotations

import json
import logging

from opentelemetry import trace

from service.telemetry.correlation import current_ids
from service.telemetry.logging import AccessLog, get_logger
from service.types import (
    Action,
    CallRecord,
    Decision,
    Finding,
    GuardrailOutcome,
    GuardrailStatus,
    Severity,
)

from .conftest import SECRET


def access_record() -> CallRecord:
    return CallRecord(
        request_id="req-9",
        method="Check",
        call_type="check",
        start_time=0.0,
        start_ns=0,
        duration_ns=1_234_567,
        client_request_id="client-1",
        api_key_hash="cd" * 32,
        decision=Decision.BLOCK,
        outcomes=[GuardrailOutcome("secrets", 1, GuardrailStatus.INTERVENED, Action.BLOCK, 1)],
        findings=[
            Finding(
                "secrets", "aws-key", "credential", Severity.HIGH, Action.BLOCK, "text",
                0, 20, redacted_preview=SECRET,
            )
        ],  # fmt: skip
    )


def test_line_is_json_with_the_current_span_ids(logs, tracing):
    """A line logged inside a span is valid JSON carrying its trace and Datadog ids."""
    started = tracing.tracer.start("svc/M", "svc", None)
    token = current_ids.set(started.ids)
    get_logger("test").info("hello", n=1)
    current_ids.reset(token)
    context = started.span.get_span_context()
    tracing.tracer.finish(started, access_record())

    (line,) = logs.lines()
    assert line["event"] == "hello" and line["level"] == "info"
    assert line["logger.name"] == "test"
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["span_id"] == format(context.span_id, "016x")
    assert line["dd.trace_id"] == str(context.trace_id & 0xFFFF_FFFF_FFFF_FFFF)
    assert line["dd.span_id"] == str(context.span_id)
    assert (line["dd.service"], line["dd.env"]) == ("guardrail-service", "test")
    assert line["timestamp"].endswith("Z")


def test_line_outside_a_span_has_no_trace_ids(logs):
    """Without a current span there is no trace_id to invent."""
    assert not trace.get_current_span().get_span_context().is_valid
    get_logger("test").info("plain")

    (line,) = logs.lines()
    assert "trace_id" not in line and "dd.trace_id" not in line


def test_level_filter_drops_debug(logs):
    """At level info, debug calls produce nothing."""
    get_logger("test").debug("noise")

    assert logs.lines() == []


def test_access_line_has_ids_and_outcomes_but_no_content(logs):
    """The access line has method, code, decision, ids and rule ids, never the match."""
    AccessLog().write(access_record())

    (line,) = logs.lines()
    assert line["event"] == "rpc"
    assert (line["method"], line["code"], line["decision"]) == ("Check", "OK", "BLOCK")
    assert line["duration_ms"] == 1.235
    assert (line["request_id"], line["client_request_id"]) == ("req-9", "client-1")
    assert line["api_key_hash"] == "cd" * 32
    assert line["guardrails"] == [{"name": "secrets", "status": "intervened", "findings": 1}]
    assert line["rule_ids"] == ["aws-key"]
    assert SECRET not in logs.stream.getvalue()


def test_exception_lines_keep_frames_but_not_messages(logs):
    """A logged exception shows its frames and type, not its (maybe secret) message."""
    try:
        raise ValueError(SECRET)
    except ValueError:
        get_logger("test").exception("failed")

    (line,) = logs.lines()
    assert "builtins.ValueError" in line["exception"]
    assert "test_exception_lines_keep_frames_but_not_messages" in line["exception"]
    assert SECRET not in json.dumps(line)


def test_stdlib_warnings_share_the_json_format(logs):
    """A library's stdlib warning becomes one JSON line with level and logger name."""
    logging.getLogger("grpc._cython").warning("channel %s closed", "x")
    logging.getLogger("grpc._cython").info("too chatty")

    (line,) = logs.lines()
    assert (line["event"], line["level"]) == ("channel x closed", "warning")
    assert line["logger.name"] == "grpc._cython"
    assert line["dd.service"] == "guardrail-service"
