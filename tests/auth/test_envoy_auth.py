"""Envoy authenticates with its client certificate (mTLS) or a check key."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from envoy.service.auth.v3 import external_auth_pb2_grpc
from google.rpc import code_pb2

from service.app import start_server
from tests.auth.certs import Authority
from tests.auth.conftest import write_keys
from tests.conftest import make_settings
from tests.integrations.test_envoy_ext_authz import authz_request, chat

NAME_OVERRIDE = (("grpc.ssl_target_name_override", "localhost"),)


async def _authz(port: int, credentials, metadata=()):
    async with grpc.aio.secure_channel(
        f"127.0.0.1:{port}", credentials, options=NAME_OVERRIDE
    ) as channel:
        stub = external_auth_pb2_grpc.AuthorizationStub(channel)
        return await stub.Check(
            authz_request(chat("hello")), metadata=metadata, timeout=5
        )


async def test_envoy_with_client_certificate_needs_no_key(tmp_path: Path):
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
        envoy = clients.issue("envoy", server=False)
        credentials = grpc.ssl_channel_credentials(ca.pem, envoy.key, envoy.cert)
        answer = await _authz(running.port, credentials)
        assert answer.status.code == code_pb2.OK
        # A wrong key is refused even with a certificate: a key, once sent, counts.
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _authz(
                running.port, credentials, (("authorization", "Bearer gr_wrong"),)
            )
        assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
    finally:
        await running.stop(grace=1.0)


async def test_envoy_without_certificate_needs_a_check_key(tmp_path: Path):
    ca = Authority()
    cert, key = ca.issue("localhost", server=True).write(tmp_path, "server")
    keys = write_keys(tmp_path)
    running = await start_server(
        make_settings(
            tmp_path, workers=1, tls_cert_file=cert, tls_key_file=key,
            api_keys_file=keys.path,
        )
    )  # fmt: skip
    try:
        credentials = grpc.ssl_channel_credentials(ca.pem)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _authz(running.port, credentials)
        assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
        with_key = (("authorization", f"Bearer {keys.check}"),)
        answer = await _authz(running.port, credentials, with_key)
        assert answer.status.code == code_pb2.OK
    finally:
        await running.stop(grace=1.0)
