"""ext_authz driven as Envoy drives it, and the Envoy time budget and failure modes."""

from __future__ import annotations

import json

import grpc
import pytest
from envoy.service.auth.v3 import attribute_context_pb2 as ac
from envoy.service.auth.v3 import external_auth_pb2 as ea
from envoy.service.auth.v3 import external_auth_pb2_grpc
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc
from google.rpc import code_pb2

from service.app import start_server
from tests.conftest import make_settings
from tests.integrations.conftest import raw_headers, request_body, request_headers
from tests.tokens import aws_access_key_id, email


def authz_request(document: dict, *, as_bytes: bool = False) -> ea.CheckRequest:
    body = json.dumps(document)
    http = ac.AttributeContext.HttpRequest(
        method="POST",
        path="/v1/chat/completions",
        header_map=raw_headers(
            {"content-type": "application/json", "x-request-id": "gw-1"}
        ),
    )
    if as_bytes:
        http.raw_body = body.encode()
    else:
        http.body = body
    return ea.CheckRequest(
        attributes=ac.AttributeContext(request=ac.AttributeContext.Request(http=http))
    )


def chat(text: str) -> dict:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}


async def test_secret_is_denied_with_400_and_openai_error(ext_authz):
    """A chat body with an AWS key is denied: PERMISSION_DENIED, HTTP 400, JSON error body."""
    response = await ext_authz.Check(authz_request(chat(f"key {aws_access_key_id()}")))

    assert response.status.code == code_pb2.PERMISSION_DENIED
    denied = response.denied_response
    assert denied.status.code == 400
    headers = {h.header.key: h.header.raw_value.decode() for h in denied.headers}
    assert headers["content-type"] == "application/json"
    assert json.loads(denied.body)["error"]["code"] == "guardrail_blocked"


async def test_clean_raw_body_is_allowed(ext_authz):
    """A clean body sent packed as bytes is allowed with an ALLOW decision header."""
    response = await ext_authz.Check(authz_request(chat("hello there"), as_bytes=True))

    assert response.status.code == code_pb2.OK
    headers = {
        h.header.key: h.header.raw_value.decode() for h in response.ok_response.headers
    }
    assert headers["x-guardrail-decision"] == "ALLOW"


async def test_mask_verdict_is_allowed_and_says_so(ext_authz):
    """ext_authz cannot rewrite, so a MASK verdict passes with x-guardrail-decision: MASK."""
    response = await ext_authz.Check(authz_request(chat(f"mail {email()}")))

    headers = {
        h.header.key: h.header.raw_value.decode() for h in response.ok_response.headers
    }
    assert headers["x-guardrail-decision"] == "MASK"


@pytest.fixture(params=[False, True], ids=["fail_closed", "fail_open"])
async def slow_server(request, tmp_path):
    # A 1 ms budget and every body offloaded: a large scan cannot answer in time.
    settings = make_settings(
        tmp_path,
        workers=1,
        envoy_message_timeout_ms=1,
        offload_chars=1,
        envoy_failure_mode_allow=request.param,
    )
    running = await start_server(settings)
    try:
        yield running
    finally:
        await running.stop(grace=1.0)


def large_chat() -> dict:
    # About 3 MB over five messages: many milliseconds of scanning on any machine.
    text = ("lorem ipsum dolor sit amet " * 40 + "\n") * 550
    return {
        "model": "m",
        "messages": [{"role": "user", "content": f"{i} {text}"} for i in range(5)],
    }


async def test_overrunning_the_budget_answers_by_the_failure_mode(slow_server):
    """A scan that would overrun Envoy's message timeout answers before it: 503 closed, continue open."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{slow_server.port}") as channel:
        authz = external_auth_pb2_grpc.AuthorizationStub(channel)
        proc = external_processor_pb2_grpc.ExternalProcessorStub(channel)
        verdict = await authz.Check(authz_request(large_chat()))
        call = proc.Process()
        await call.write(request_headers())
        await call.read()
        await call.write(request_body(large_chat()))
        answer = await call.read()
        await call.done_writing()

    if slow_server.settings.envoy_failure_mode_allow:
        assert verdict.status.code == code_pb2.OK
        assert answer.HasField("request_body")
    else:
        assert verdict.denied_response.status.code == 503
        assert answer.immediate_response.status.code == 503
        assert (
            json.loads(answer.immediate_response.body)["error"]["code"]
            == "guardrail_unavailable"
        )


async def test_a_body_too_deep_to_parse_is_denied_not_allowed(ext_authz):
    """Deep nesting beside the messages once answered OK NOT_SCANNED, secret and all."""
    request = authz_request(chat(f"key {aws_access_key_id()}"))
    http = request.attributes.request.http
    http.body = http.body[:-1] + ', "metadata": ' + "[" * 5000 + "]" * 5000 + "}"

    response = await ext_authz.Check(request)

    assert response.status.code != code_pb2.OK
    assert response.denied_response.status.code == 503
