"""Read the google.rpc.Status of a failed call, and SpendLogs rows as they land."""

from __future__ import annotations

import asyncio

import grpc
from google.rpc import error_details_pb2, status_pb2

from service.app import RunningServer
from tests.conftest import spend_rows


def rich_status(error: grpc.aio.AioRpcError) -> status_pb2.Status:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            return status_pb2.Status.FromString(value)
    raise AssertionError(f"no google.rpc.Status in the trailers of {error.code()}")


def details(error: grpc.aio.AioRpcError, kind: type) -> list:
    found = []
    for detail in rich_status(error).details:
        message = kind()
        if detail.Unpack(message):
            found.append(message)
    return found


def reason(error: grpc.aio.AioRpcError) -> str:
    infos = details(error, error_details_pb2.ErrorInfo)
    assert len(infos) == 1, infos
    return infos[0].reason


async def rows_when(server: RunningServer, count: int) -> list[dict[str, object]]:
    """The SpendLogs rows once ``count`` are written (the writer batches)."""
    for _ in range(100):
        rows = spend_rows(server)
        if len(rows) >= count:
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} rows expected, {len(spend_rows(server))} written")
