"""A real server with the integrations on, and Envoy-shaped message builders."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2_grpc
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc

from service.app import RunningServer, start_server
from tests.conftest import make_settings


@pytest.fixture(scope="module")
async def envoy_server(tmp_path_factory) -> AsyncIterator[RunningServer]:
    tmp_path = tmp_path_factory.mktemp("envoy")
    running = await start_server(make_settings(tmp_path, workers=1))
    try:
        yield running
    finally:
        await running.stop(grace=1.0)


@pytest.fixture(scope="module")
async def channel(envoy_server: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{envoy_server.port}") as channel:
        yield channel


@pytest.fixture
def ext_proc(channel):
    return external_processor_pb2_grpc.ExternalProcessorStub(channel)


@pytest.fixture
def ext_authz(channel):
    return external_auth_pb2_grpc.AuthorizationStub(channel)


def raw_headers(pairs: dict[str, str]) -> base_pb2.HeaderMap:
    """Headers as current Envoy sends them: raw_value bytes, value empty."""
    return base_pb2.HeaderMap(
        headers=[
            base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in pairs.items()
        ]
    )


def request_headers(
    path: str = "/v1/chat/completions", **extra: str
) -> ep.ProcessingRequest:
    pairs = {
        ":method": "POST",
        ":path": path,
        "content-type": "application/json",
        **extra,
    }
    return ep.ProcessingRequest(
        request_headers=ep.HttpHeaders(headers=raw_headers(pairs))
    )


def request_body(document: dict, *, end: bool = True) -> ep.ProcessingRequest:
    body = json.dumps(document).encode()
    return ep.ProcessingRequest(request_body=ep.HttpBody(body=body, end_of_stream=end))


def response_headers(content_type: str) -> ep.ProcessingRequest:
    pairs = {":status": "200", "content-type": content_type, "content-length": "100"}
    return ep.ProcessingRequest(
        response_headers=ep.HttpHeaders(headers=raw_headers(pairs))
    )


def response_chunk(data: bytes, *, end: bool = False) -> ep.ProcessingRequest:
    return ep.ProcessingRequest(response_body=ep.HttpBody(body=data, end_of_stream=end))
