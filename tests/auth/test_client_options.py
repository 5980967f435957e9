"""The Python client's api_key and TLS options against a real mTLS server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from guardrail_client import AsyncGuardrailClient, GuardrailClient
from guardrail_client import UnauthenticatedError as ClientUnauthenticated

from service.app import start_server
from tests.auth.certs import Authority
from tests.auth.conftest import write_keys
from tests.conftest import make_settings

NAME_OVERRIDE = [("grpc.ssl_target_name_override", "localhost")]


@pytest.fixture
async def mtls_server(tmp_path: Path):
    ca, clients = Authority(), Authority("client CA")
    cert, key = ca.issue("localhost", server=True).write(tmp_path, "server")
    client_ca = tmp_path / "client-ca.crt"
    client_ca.write_bytes(clients.pem)
    keys = write_keys(tmp_path)
    running = await start_server(
        make_settings(
            tmp_path, workers=1, tls_cert_file=cert, tls_key_file=key,
            tls_client_ca_file=client_ca, api_keys_file=keys.path,
        )
    )  # fmt: skip
    try:
        yield running, ca, clients.issue("app", server=False), keys
    finally:
        await running.stop(grace=1.0)


async def test_async_client_sends_key_over_mtls(mtls_server):
    running, ca, client_pem, keys = mtls_server
    tls = {
        "root_certificates": ca.pem,
        "client_certificate": client_pem.cert,
        "client_key": client_pem.key,
        "options": NAME_OVERRIDE,
    }
    target = f"127.0.0.1:{running.port}"
    async with AsyncGuardrailClient(target, api_key=keys.check, **tls) as client:
        result = await client.check("hello there")
        assert result.decision.name == "ALLOW"
    async with AsyncGuardrailClient(target, **tls) as anonymous:
        with pytest.raises(ClientUnauthenticated):
            await anonymous.check("hello there")


async def test_blocking_client_sends_key_over_mtls(mtls_server):
    running, ca, client_pem, keys = mtls_server
    target = f"127.0.0.1:{running.port}"

    def call() -> str:
        with GuardrailClient(
            target,
            api_key=keys.check,
            root_certificates=ca.pem,
            client_certificate=client_pem.cert,
            client_key=client_pem.key,
            options=NAME_OVERRIDE,
        ) as client:
            return client.check("hello there").decision.name

    # The server runs on this loop: call the blocking client from a thread.
    assert await asyncio.to_thread(call) == "ALLOW"
