"""TLS and mutual TLS on a real port, with certificates made at run time."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.app import start_server
from service.errors import SettingsError
from tests.auth.certs import Authority
from tests.conftest import make_settings

# The server certificate names "localhost"; connect to 127.0.0.1 under that name.
NAME_OVERRIDE = (("grpc.ssl_target_name_override", "localhost"),)


async def _healthy(port: int, credentials: grpc.ChannelCredentials) -> bool:
    """One health call over a fresh channel; False when the handshake fails."""
    async with grpc.aio.secure_channel(
        f"127.0.0.1:{port}", credentials, options=NAME_OVERRIDE
    ) as channel:
        try:
            answer = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
        except grpc.aio.AioRpcError as exc:
            assert exc.code() is grpc.StatusCode.UNAVAILABLE, exc
            return False
    return answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_tls_serves_clients_that_trust_the_ca(tmp_path: Path):
    ca = Authority()
    cert, key = ca.issue("localhost", server=True).write(tmp_path, "server")
    running = await start_server(
        make_settings(tmp_path, workers=1, tls_cert_file=cert, tls_key_file=key)
    )
    try:
        trusted = grpc.ssl_channel_credentials(root_certificates=ca.pem)
        assert await _healthy(running.port, trusted)
        other = grpc.ssl_channel_credentials(root_certificates=Authority("other").pem)
        assert not await _healthy(running.port, other)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as plain:
            with pytest.raises(grpc.aio.AioRpcError):
                await health_pb2_grpc.HealthStub(plain).Check(
                    health_pb2.HealthCheckRequest(), timeout=2
                )
    finally:
        await running.stop(grace=1.0)


async def test_mutual_tls_requires_a_client_certificate(tmp_path: Path):
    ca, clients = Authority(), Authority("client CA")
    cert, key = ca.issue("localhost", server=True).write(tmp_path, "server")
    client_ca = tmp_path / "client-ca.crt"
    client_ca.write_bytes(clients.pem)
    running = await start_server(
        make_settings(
            tmp_path, workers=1, tls_cert_file=cert, tls_key_file=key,
            tls_client_ca_file=client_ca,
        )
    )  # fmt: skip
    try:
        good = clients.issue("envoy", server=False)
        with_cert = grpc.ssl_channel_credentials(ca.pem, good.key, good.cert)
        assert await _healthy(running.port, with_cert)
        assert not await _healthy(running.port, grpc.ssl_channel_credentials(ca.pem))
        stranger = Authority("stranger").issue("envoy", server=False)
        wrong_ca = grpc.ssl_channel_credentials(ca.pem, stranger.key, stranger.cert)
        assert not await _healthy(running.port, wrong_ca)
    finally:
        await running.stop(grace=1.0)


async def test_replaced_certificate_serves_new_connections(tmp_path: Path):
    """A renewed certificate written over the old files is used without a restart."""
    old_ca, new_ca = Authority("old CA"), Authority("new CA")
    cert, key = old_ca.issue("localhost", server=True).write(tmp_path, "server")
    running = await start_server(
        make_settings(tmp_path, workers=1, tls_cert_file=cert, tls_key_file=key)
    )
    try:
        trusts_old = grpc.ssl_channel_credentials(old_ca.pem)
        trusts_new = grpc.ssl_channel_credentials(new_ca.pem)
        assert await _healthy(running.port, trusts_old)
        assert not await _healthy(running.port, trusts_new)

        # Replace both files atomically (write aside, rename), as Kubernetes does.
        fresh = new_ca.issue("localhost", server=True)
        (tmp_path / "staged").mkdir()
        staged = fresh.write(tmp_path / "staged", "server")
        os.replace(staged[1], key)
        os.replace(staged[0], cert)

        for _ in range(
            50
        ):  # mtime granularity: a new stamp is seen at once in practice
            if await _healthy(running.port, trusts_new):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the replaced certificate was never served")
        assert not await _healthy(running.port, trusts_old)
    finally:
        await running.stop(grace=1.0)


def test_client_ca_without_certificate_is_a_settings_error(tmp_path: Path):
    from service.tls import server_credentials

    settings = make_settings(tmp_path, tls_client_ca_file=tmp_path / "ca.crt")
    with pytest.raises(SettingsError):
        server_credentials(settings)
