"""The Generic Guardrail HTTP API takes the same keys as the gRPC port."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from service.app import start_server
from tests.auth.conftest import Keys
from tests.auth.status import rows_when
from tests.conftest import make_settings

PATH = "/beta/litellm_basic_guardrail_api"
BODY = {"input_type": "request", "texts": ["hello there"], "request_data": {}}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
async def http_server(tmp_path: Path, keys: Keys):
    settings = make_settings(
        tmp_path, workers=1, http_port=_free_port(), api_keys_file=keys.path
    )
    running = await start_server(settings)
    try:
        yield running
    finally:
        await running.stop(grace=1.0)


async def _post(server, **headers: str) -> httpx.Response:
    url = f"http://127.0.0.1:{server.http.port}{PATH}"
    async with httpx.AsyncClient() as client:
        return await client.post(url, json=BODY, headers=headers, timeout=10)


async def test_missing_key_is_401_and_recorded(http_server):
    response = await _post(http_server)
    assert response.status_code == 401
    assert response.json()["error"]["reason"] == "UNAUTHENTICATED"
    (row,) = await rows_when(http_server, 1)
    assert row["grpc_code"] == "UNAUTHENTICATED"


async def test_wrong_scope_is_403(http_server, keys):
    response = await _post(http_server, authorization=f"Bearer {keys.admin}")
    assert response.status_code == 403


async def test_bearer_and_litellm_x_api_key_both_work(http_server, keys):
    """LiteLLM's api_key option sends x-api-key; others send Authorization."""
    assert (
        await _post(http_server, authorization=f"Bearer {keys.check}")
    ).status_code == 200
    response = await _post(http_server, **{"x-api-key": keys.check})
    assert response.status_code == 200
    rows = await rows_when(http_server, 2)
    assert {r["api_key"] for r in rows} == {Keys.prefix(keys.check)}
    assert keys.check not in repr(rows)
