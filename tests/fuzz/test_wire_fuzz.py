"""Malformed bytes below the message level must not take the server down.

Raw TCP garbage, an HTTP/2 preface followed by junk frames, gRPC frames whose
length prefix lies, and gRPC messages whose body is not a valid protobuf:
after each case the same server must still answer a normal call. Bodies that
reach our handlers must also be answered with a caller's-mistake status and
recorded like any other call.
"""

from __future__ import annotations

import sqlite3
import struct
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from guardrail.v1 import guardrail_pb2 as pb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz import h2wire
from tests.fuzz.conftest import MAX_MESSAGE_BYTES
from tests.fuzz.test_rpc_fuzz import CALLER_CODES, DEADLINE_S, _request_id

# Raw-socket cases wait up to 0.25 s for the server's answer: few of them.
WIRE = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
SERVICE = "/guardrail.v1.GuardrailService/"
UNARY = ("Check", "ListGuardrails", "GetGuardrail", "DeleteGuardrail")
STREAMING = ("CheckStream", "Register")


def _frames() -> st.SearchStrategy[bytes]:
    """One HTTP/2 frame of any type, flags and stream, with an honest or lying length."""
    return st.builds(
        h2wire.frame,
        kind=st.integers(0, 255),
        flags=st.integers(0, 255),
        stream=st.one_of(st.integers(0, 7), st.integers(0, 2**31 - 1)),
        payload=st.binary(max_size=300),
        length=st.one_of(st.none(), st.integers(0, 2**24 - 1)),
    )


def test_raw_tcp_garbage(fuzz_server):
    @WIRE
    @given(data=st.binary(min_size=1, max_size=4096))
    def run(data: bytes) -> None:
        h2wire.exchange(fuzz_server.running.port, data, wait_s=0.2)
        fuzz_server.cases["raw_tcp_garbage"] += 1

    run()
    assert fuzz_server.alive()


def test_preface_then_junk_frames(fuzz_server):
    @WIRE
    @given(
        frames=st.lists(_frames(), min_size=1, max_size=6), tail=st.binary(max_size=64)
    )
    def run(frames: list[bytes], tail: bytes) -> None:
        settings_frame = h2wire.frame(h2wire.SETTINGS, 0, 0, b"")
        data = h2wire.PREFACE + settings_frame + b"".join(frames) + tail
        h2wire.exchange(fuzz_server.running.port, data, wait_s=0.2)
        fuzz_server.cases["h2_junk_frames"] += 1

    run()
    assert fuzz_server.alive()


def test_grpc_length_prefix_lies(fuzz_server):
    """A gRPC message whose prefix claims more (or less) than the body holds."""
    port = fuzz_server.running.port

    @WIRE
    @given(
        method=st.sampled_from(UNARY + STREAMING),
        body=st.binary(max_size=200),
        declared=st.one_of(
            st.integers(0, 2**32 - 1),
            st.just(MAX_MESSAGE_BYTES + 1),
            st.just(2**32 - 1),
        ),
        end_stream=st.booleans(),
    )
    def run(method: str, body: bytes, declared: int, end_stream: bool) -> None:
        headers = h2wire.grpc_headers(SERVICE + method, f"127.0.0.1:{port}")
        data = (
            h2wire.PREFACE
            + h2wire.frame(h2wire.SETTINGS, 0, 0, b"")
            + h2wire.frame(h2wire.HEADERS, h2wire.END_HEADERS, 1, headers)
            + h2wire.frame(
                h2wire.DATA,
                h2wire.END_STREAM if end_stream else 0,
                1,
                h2wire.grpc_message(body, declared),
            )
        )
        h2wire.exchange(port, data, wait_s=0.25)
        fuzz_server.cases["grpc_length_prefix"] += 1

    run()
    assert fuzz_server.alive()


def _corrupt_bodies() -> st.SearchStrategy[bytes]:
    """Bytes that are not a valid protobuf encoding of any message."""
    return st.one_of(
        # A field key with wire type 7 (does not exist).
        st.builds(lambda rest: b"\x0f" + rest, st.binary(max_size=50)),
        # A length-delimited field that claims more bytes than follow.
        st.builds(
            lambda n, rest: b"\x0a" + bytes((0x80 | (n & 0x7F), 0x7F)) + rest,
            st.integers(0, 127),
            st.binary(max_size=20),
        ),
        # A varint that never ends.
        st.just(b"\x10" + b"\xff" * 11),
        # Field number zero.
        st.just(b"\x00\x01"),
        # A string field with invalid UTF-8 (protobuf rejects it for proto3 strings).
        st.builds(
            lambda junk: b"\x1a" + bytes((len(junk),)) + junk, st.just(b"\xff\xfe\xc0")
        ),
        st.binary(min_size=1, max_size=200),
    )


def test_corrupt_protobuf_is_a_caller_mistake_and_recorded(fuzz_server):
    """A body that does not decode: INVALID_ARGUMENT (not UNKNOWN), with a row."""
    channel = fuzz_server.channel
    request_ids: list[str] = []
    before = fuzz_server.row_count()

    @settings(WIRE, max_examples=200)
    @given(method=st.sampled_from(UNARY + STREAMING), body=_corrupt_bodies())
    def run(method: str, body: bytes) -> None:
        try:
            if method in STREAMING:
                call = channel.stream_stream(SERVICE + method)(
                    iter([body]), timeout=DEADLINE_S
                )
                list(call)
            else:
                _, call = channel.unary_unary(SERVICE + method).with_call(
                    body, timeout=DEADLINE_S
                )
            code, trailers = grpc.StatusCode.OK, call.trailing_metadata()
        except grpc.RpcError as error:
            code, trailers = error.code(), error.trailing_metadata()  # type: ignore[attr-defined]
            assert code in CALLER_CODES, f"{method}: {code.name}: {error.details()}"  # type: ignore[attr-defined]
        request_id = _request_id(trailers)
        assert request_id, f"{method} {code.name}: no request id, so no row"
        request_ids.append(request_id)
        fuzz_server.cases["corrupt_protobuf"] += 1

    run()
    rows = fuzz_server.rows_for(request_ids)
    assert all(rows[r] == 1 for r in request_ids)
    assert fuzz_server.row_count() - before == len(request_ids)
    assert fuzz_server.alive()


def _oversize_check(fuzz_server, size: int) -> tuple[grpc.StatusCode, dict[str, Any]]:
    request = pb.CheckRequest(payload=pb.Payload(text="a" * size))
    try:
        fuzz_server.stub.Check(request, timeout=DEADLINE_S)
    except grpc.RpcError as error:
        trailers = dict(error.trailing_metadata() or ())  # type: ignore[attr-defined]
        return error.code(), trailers  # type: ignore[attr-defined]
    raise AssertionError("an oversize message was accepted")


def test_oversize_message_is_refused_with_a_reason_and_a_row(fuzz_server):
    """Over GUARDRAIL_MAX_MESSAGE_BYTES: RESOURCE_EXHAUSTED naming the limit, one row."""
    before = fuzz_server.row_count()
    code, trailers = _oversize_check(fuzz_server, MAX_MESSAGE_BYTES + 10)
    fuzz_server.cases["oversize"] += 1

    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    info = error_details_pb2.ErrorInfo()
    assert any(detail.Unpack(info) for detail in status.details)
    assert info.reason == "MESSAGE_TOO_LARGE"
    assert str(MAX_MESSAGE_BYTES) in status.message
    assert trailers["x-request-id"]
    assert fuzz_server.row_count() - before == 1
    assert fuzz_server.alive()


def test_a_message_past_the_transport_cap_is_refused_by_grpc(fuzz_server):
    """Past twice the limit grpc core refuses it before any handler; the server goes on."""
    code, trailers = _oversize_check(fuzz_server, 2 * MAX_MESSAGE_BYTES + 10)
    fuzz_server.cases["oversize"] += 1

    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "x-request-id" not in trailers
    assert fuzz_server.alive()


def test_prefix_struct_packs_lengths_big_endian():
    """The hand-built framing helper itself: 3-byte length, type, flags, stream."""
    built = h2wire.frame(h2wire.DATA, 1, 3, b"xy")
    assert built == b"\x00\x00\x02" + b"\x00\x01" + struct.pack(">I", 3) + b"xy"
    assert h2wire.grpc_message(b"ab", declared=9) == b"\x00\x00\x00\x00\x09ab"


def test_corrupt_body_answer_and_row_name_the_reason(fuzz_server):
    """One fixed case: the status details and the row say what went wrong."""
    check = fuzz_server.channel.unary_unary(SERVICE + "Check")
    try:
        check(b"\x0f\x00", timeout=DEADLINE_S)
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
        trailers = dict(error.trailing_metadata())  # type: ignore[attr-defined]
    else:
        raise AssertionError("a corrupt body was accepted")
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    info = error_details_pb2.ErrorInfo()
    assert any(detail.Unpack(info) for detail in status.details)
    assert info.reason == "MALFORMED_MESSAGE"
    fuzz_server.flush()
    with sqlite3.connect(fuzz_server.db) as db:
        [row] = db.execute(
            "SELECT call_type, grpc_code FROM spend_logs WHERE request_id = ?",
            (trailers["x-request-id"],),
        ).fetchall()
    assert row == ("check", "INVALID_ARGUMENT")
