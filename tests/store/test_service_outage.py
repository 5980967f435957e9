"""A real server whose PostgreSQL goes away in the middle of a run: no row lost.

The database is reached through a proxy the test cuts (the shared server is
never stopped). Calls made before, during and after the outage each end up
as exactly one row once the database is back, and the secret one carried is
nowhere in the table.
"""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest
from guardrail.v1 import guardrail_pb2 as pb
from guardrail.v1 import guardrail_pb2_grpc as pb_grpc

from service.app import start_server
from tests.conftest import make_settings
from tests.store.test_service_rows import BENIGN, _stream, _unary
from tests.tokens import aws_access_key_id, email

pytestmark = pytest.mark.postgres
REPLAY_DEADLINE_S = 60


async def _round(stub, secret: str, mail: str, tag: str) -> list[tuple[str, str]]:
    """Allow, block, mask, an error and a stream: five calls, five rows."""
    return [
        await _unary(stub.Check, pb.CheckRequest(payload=pb.Payload(text=BENIGN), client_request_id=tag)),
        await _unary(stub.Check, pb.CheckRequest(payload=pb.Payload(text=f"key {secret}"))),
        await _unary(stub.Check, pb.CheckRequest(payload=pb.Payload(text=f"write to {mail}"))),
        await _unary(stub.Check, pb.CheckRequest(payload=pb.Payload(text="x"), guardrails=["no-such"])),
        await _stream(stub, "The key is ", f"{secret} there."),
    ]  # fmt: skip


async def test_outage_in_the_middle_of_a_run_loses_no_row(pg_proxy, pg_url, tmp_path, read_rows):
    proxy, url = pg_proxy
    secret, mail = aws_access_key_id(seed=31), email(seed=31)
    settings = make_settings(
        tmp_path, database_url=url, spend_log_journal_path=tmp_path / "journal",
        spend_log_flush_interval_s=0.05, spend_log_write_timeout_s=1.0,
    )  # fmt: skip
    running = await start_server(settings)
    seen: list[tuple[str, str]] = []
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = pb_grpc.GuardrailServiceStub(channel)
            seen += await _round(stub, secret, mail, "before")
            await running.writer.flush()
            proxy.cut()
            for i in range(5):  # the outage: every call is still answered
                seen += await _round(stub, secret, mail, f"during-{i}")
            await running.writer.flush()  # the rows are journalled by now
            assert running.writer.journal_bytes > 0
            proxy.restore()
            seen += await _round(stub, secret, mail, "after")
            async with asyncio.timeout(REPLAY_DEADLINE_S):
                await running.writer.wait_replayed()
    finally:
        await running.stop(grace=2.0)

    rows = await read_rows(pg_url)
    by_id = {r["request_id"]: r for r in rows}
    assert len(rows) == len(seen) == len(by_id)
    assert {rid: by_id[rid]["grpc_code"] for rid, _ in seen} == dict(seen)
    assert {"ALLOW", "BLOCK", "MASK"} <= {r["decision"] for r in rows}
    everything = json.dumps(rows, default=str)
    assert secret not in everything and mail not in everything
