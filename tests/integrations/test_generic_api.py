"""The Generic Guardrail API endpoint over real HTTP, shapes as LiteLLM sends them."""

from __future__ import annotations

import httpx
import pytest

from service.app import start_server
from tests.conftest import make_settings, spend_rows
from tests.tokens import aws_access_key_id, email

PATH = "/beta/litellm_basic_guardrail_api"


@pytest.fixture(scope="module")
async def http_server(tmp_path_factory):
    settings = make_settings(
        tmp_path_factory.mktemp("http"), workers=1, http_port=_free_port()
    )
    running = await start_server(settings)
    try:
        yield running
    finally:
        await running.stop(grace=1.0)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def post(server, body: dict, **headers: str) -> httpx.Response:
    url = f"http://127.0.0.1:{server.http.port}{PATH}"
    async with httpx.AsyncClient() as client:
        return await client.post(url, json=body, headers=headers)


async def test_secret_text_is_blocked(http_server):
    """A request text with an AWS key answers action BLOCKED with a reason naming the guardrail."""
    response = await post(
        http_server,
        {
            "input_type": "request",
            "texts": [f"k {aws_access_key_id()}"],
            "request_data": {},
        },
    )

    assert response.status_code == 200
    assert response.json()["action"] == "BLOCKED"
    assert "secrets" in response.json()["blocked_reason"]
    assert response.headers["x-request-id"]


async def test_email_text_is_intervened_with_masked_texts(http_server):
    """Texts with an e-mail come back GUARDRAIL_INTERVENED with the masked texts in order."""
    body = {
        "input_type": "response",
        "texts": ["fine", f"mail {email()}"],
        "request_data": {},
    }
    response = await post(http_server, body)

    answer = response.json()
    holdback = answer.pop("stream_holdback_chars")
    assert answer == {
        "action": "GUARDRAIL_INTERVENED",
        "texts": ["fine", "mail [EMAIL]"],
    }
    # Model output: one hold-back per text, for LiteLLM's streaming rewrites.
    assert len(holdback) == 2 and holdback[0] == holdback[1] > 0


async def test_holdback_is_the_widest_match_of_the_guardrails_that_ran(http_server):
    """Output answers carry the hold-back of the named guardrails; request answers carry none."""
    from service.streaming import engine_for

    body = {"input_type": "response", "texts": ["fine"], "request_data": {},
            "additional_provider_specific_params": {"guardrails": ["secrets"]}}  # fmt: skip
    answer = (await post(http_server, body)).json()
    cap = http_server.settings.stream_holdback_chars
    expected = engine_for(http_server.registry.snapshot).holdback(["secrets"], cap).chars
    assert answer["action"] == "NONE"
    assert answer["stream_holdback_chars"] == [expected]
    assert 0 < expected <= cap

    body["input_type"] = "request"
    assert "stream_holdback_chars" not in (await post(http_server, body)).json()


async def test_clean_texts_and_tool_calls_are_no_action(http_server):
    """Clean texts and tool calls answer action NONE."""
    body = {
        "input_type": "request",
        "texts": ["hello"],
        "request_data": {},
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "get", "arguments": '{"q": "weather"}'},
            }
        ],
    }
    response = await post(http_server, body)

    assert response.json() == {"action": "NONE"}


async def test_secret_in_tool_call_arguments_is_blocked(http_server):
    """An AWS key inside tool-call arguments is BLOCKED."""
    arguments = f'{{"key": "{aws_access_key_id()}"}}'
    body = {
        "input_type": "request",
        "texts": [],
        "request_data": {},
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "put", "arguments": arguments},
            }
        ],
    }
    response = await post(http_server, body)

    assert response.json()["action"] == "BLOCKED"


async def test_structured_messages_alone_come_back_masked(http_server):
    """With only structured_messages, the masked rows are returned."""
    rows = [{"role": "user", "content": f"mail {email()}"}]
    response = await post(
        http_server,
        {"input_type": "request", "structured_messages": rows, "request_data": {}},
    )

    assert response.json() == {
        "action": "GUARDRAIL_INTERVENED",
        "structured_messages": [{"role": "user", "content": "mail [EMAIL]"}],
    }


async def test_bad_input_type_is_400_with_reason(http_server):
    """An unknown input_type is a 400 naming INVALID_ARGUMENT, never a 500."""
    response = await post(http_server, {"input_type": "sideways", "texts": ["x"]})

    assert response.status_code == 400
    assert response.json()["error"]["reason"] == "INVALID_ARGUMENT"


async def test_each_call_is_one_spend_log_row_with_the_key_hash(http_server):
    """An HTTP call writes one SpendLogs row with call_type generic_guardrail_api and a hashed key."""
    await http_server.writer.flush()
    before = [
        r for r in spend_rows(http_server) if r["call_type"] == "generic_guardrail_api"
    ]
    response = await post(
        http_server,
        {"input_type": "request", "texts": [f"mail {email()}"]},
        **{"x-api-key": "sk-test-123", "x-request-id": "litellm-abc"},
    )
    await http_server.writer.flush()

    rows = [
        r for r in spend_rows(http_server) if r["call_type"] == "generic_guardrail_api"
    ]
    assert len(rows) == len(before) + 1
    row = next(r for r in rows if r["request_id"] == response.headers["x-request-id"])
    assert row["client_request_id"] == "litellm-abc"
    assert row["api_key"] and "sk-test-123" not in row["api_key"]
    assert "pii" in row["metadata"]
