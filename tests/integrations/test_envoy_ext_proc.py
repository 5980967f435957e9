"""ext_proc driven as Envoy drives it, over a real channel to a real server."""

from __future__ import annotations

import json

from envoy.service.ext_proc.v3 import external_processor_pb2 as ep

from tests.conftest import spend_rows
from tests.integrations.conftest import (
    request_body,
    request_headers,
    response_chunk,
    response_headers,
)
from tests.tokens import aws_access_key_id, email


async def exchange(stub, messages):
    """Send each message and read its one answer, as Envoy does."""
    call = stub.Process()
    answers = []
    for message in messages:
        await call.write(message)
        answer = await call.read()
        answers.append(answer)
        if answer.HasField("immediate_response"):
            break
    await call.done_writing()
    return answers


def chat(text: str) -> dict:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}


def sse(*deltas: str, finish: bool = True) -> bytes:
    events = []
    for text in deltas:
        chunk = {
            "id": "c1",
            "object": "chat.completion.chunk",
            "model": "m",
            "choices": [
                {"index": 0, "delta": {"content": text}, "finish_reason": None}
            ],
        }
        events.append(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n")
    if finish:
        last = {
            "id": "c1",
            "object": "chat.completion.chunk",
            "model": "m",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        }
        events.append(f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n")
    return "".join(events).encode()


def streamed_text(body: bytes) -> tuple[str, list[str]]:
    """The concatenated content deltas and finish reasons of an SSE body."""
    text, finishes = [], []
    for event in body.decode().split("\n\n"):
        data = event.removeprefix("data: ")
        if not data or data == "[DONE]":
            continue
        for choice in json.loads(data)["choices"]:
            text.append(choice["delta"].get("content") or "")
            if choice.get("finish_reason"):
                finishes.append(choice["finish_reason"])
    return "".join(text), finishes


async def test_secret_in_request_is_an_immediate_400_with_openai_error(
    ext_proc, envoy_server
):
    """A chat body carrying an AWS key gets an immediate 400, JSON content type, OpenAI-style error."""
    answers = await exchange(
        ext_proc,
        [
            request_headers(),
            request_body(chat(f"my key {aws_access_key_id()}")),
        ],
    )

    immediate = answers[-1].immediate_response
    assert immediate.status.code == 400
    headers = {
        h.header.key: h.header.raw_value.decode() for h in immediate.headers.set_headers
    }
    assert headers["content-type"] == "application/json"
    error = json.loads(immediate.body)["error"]
    assert error["code"] == "guardrail_blocked" and "secrets" in error["message"]
    assert aws_access_key_id() not in immediate.body.decode()
    await envoy_server.writer.flush()
    rows = [r for r in spend_rows(envoy_server) if r["call_type"] == "process"]
    assert rows and rows[-1]["status"] is not None


async def test_email_in_request_is_masked_with_content_length_fixed(ext_proc):
    """A body with an e-mail is rewritten with the mask and content-length set to the new length."""
    address = email()
    answers = await exchange(
        ext_proc,
        [
            request_headers(),
            request_body(chat(f"write to {address} today")),
        ],
    )

    common = answers[1].request_body.response
    new_body = common.body_mutation.body
    assert json.loads(new_body)["messages"][0]["content"] == "write to [EMAIL] today"
    lengths = [
        h.header.raw_value
        for h in common.header_mutation.set_headers
        if h.header.key == "content-length"
    ]
    assert lengths == [str(len(new_body)).encode()]


async def test_clean_anthropic_request_continues_unchanged(ext_proc):
    """An Anthropic-style body with nothing to find continues with no mutation."""
    body = {
        "model": "claude",
        "system": "be brief",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}]}],
    }
    answers = await exchange(
        ext_proc, [request_headers("/v1/messages"), request_body(body)]
    )

    assert answers[0].HasField("request_headers")
    common = answers[1].request_body.response
    assert not common.HasField("body_mutation") and not common.HasField(
        "header_mutation"
    )


async def test_anthropic_tool_use_input_is_masked_in_place(ext_proc):
    """An e-mail inside an Anthropic tool_use input object is masked and stays an object."""
    body = {
        "model": "claude",
        "messages": [
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "t1",
                        "name": "send",
                        "input": {"to": email()},
                    }
                ],
            }
        ],
    }
    answers = await exchange(
        ext_proc, [request_headers("/v1/messages"), request_body(body)]
    )

    new_body = json.loads(answers[1].request_body.response.body_mutation.body)
    assert new_body["messages"][0]["content"][0]["input"] == {"to": "[EMAIL]"}


async def test_streamed_answer_split_mid_event_and_mid_utf8_is_masked(ext_proc):
    """SSE chunks cut mid-event and mid-character come out whole, in order, with the e-mail masked."""
    address = email()
    body = sse(
        "Bonjour \u00e9t\u00e9 ", "mail ", address[:6], address[6:], " merci \u2603"
    )
    mid_char = body.index("\u00e9".encode()) + 1
    cuts = sorted({0, 7, 40, mid_char, 150, 151, len(body) - 3, len(body)})
    messages = [
        request_headers(),
        request_body(chat("hi")),
        response_headers("text/event-stream"),
    ]
    pieces = [body[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]
    messages += [
        response_chunk(p, end=i == len(pieces) - 1) for i, p in enumerate(pieces)
    ]

    answers = await exchange(ext_proc, messages)

    assert answers[2].response_headers.response.header_mutation.remove_headers == [
        "content-length"
    ]
    out = b"".join(a.response_body.response.body_mutation.body for a in answers[3:])
    text, finishes = streamed_text(out)
    assert text == "Bonjour \u00e9t\u00e9 mail [EMAIL] merci \u2603"
    assert finishes == ["stop"] and out.endswith(b"data: [DONE]\n\n")


async def test_streamed_secret_ends_the_stream_with_content_filter(ext_proc):
    """A secret in a streamed answer is never emitted; the stream ends with a content_filter finish."""
    key = aws_access_key_id()
    body = sse("here it is: ", key[:10], key[10:], " enjoy")
    messages = [
        request_headers(),
        request_body(chat("hi")),
        response_headers("text/event-stream"),
        response_chunk(body[:60]),
        response_chunk(body[60:], end=True),
    ]

    answers = await exchange(ext_proc, messages)

    out = b"".join(a.response_body.response.body_mutation.body for a in answers[3:])
    assert key[:10].encode() not in out and key[10:].encode() not in out
    _, finishes = streamed_text(out)
    assert finishes == ["content_filter"]


async def test_anthropic_stream_is_masked_before_block_stop(ext_proc):
    """Anthropic text_delta events are held back and the masked rest is emitted before content_block_stop."""
    address = email()
    events = [
        ("message_start", {"type": "message_start", "message": {"id": "m1"}}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": f"mail {address}"},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_stop", {"type": "message_stop"}),
    ]
    body = "".join(f"event: {n}\ndata: {json.dumps(d)}\n\n" for n, d in events).encode()
    messages = [
        request_headers("/v1/messages"),
        request_body(chat("hi")),
        response_headers("text/event-stream"),
        response_chunk(body, end=True),
    ]

    answers = await exchange(ext_proc, messages)

    out = answers[3].response_body.response.body_mutation.body.decode()
    assert address not in out
    assert '"text": "mail [EMAIL]"' in out
    assert out.index("mail [EMAIL]") < out.index("content_block_stop")


async def test_buffered_json_answer_is_masked(ext_proc):
    """A non-streamed JSON answer arriving in pieces is held, then emitted masked at the end."""
    answer = {
        "id": "x",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": f"reach me at {email()}"},
                "finish_reason": "stop",
            }
        ],
    }
    raw = json.dumps(answer).encode()
    messages = [
        request_headers(),
        request_body(chat("hi")),
        response_headers("application/json"),
        response_chunk(raw[:20]),
        response_chunk(raw[20:], end=True),
    ]

    answers = await exchange(ext_proc, messages)

    assert answers[3].response_body.response.body_mutation.body == b""
    final = json.loads(answers[4].response_body.response.body_mutation.body)
    assert final["choices"][0]["message"]["content"] == "reach me at [EMAIL]"


async def test_non_chat_body_passes_through(ext_proc):
    """A body that is not a chat request (no messages) continues untouched."""
    answers = await exchange(
        ext_proc,
        [request_headers("/v1/embeddings"), request_body({"input": "x", "model": "e"})],
    )

    assert answers[1].request_body.response == ep.CommonResponse()


async def test_lone_surrogate_escape_in_request_still_blocks_a_secret(ext_proc):
    """A \\ud800 escape (valid JSON) once failed the exchange with an exception;
    behind failure_mode_allow: true the key would have passed unscanned."""
    answers = await exchange(
        ext_proc,
        [request_headers(), request_body(chat(f"\ud800 my key {aws_access_key_id()}"))],
    )

    assert answers[-1].immediate_response.status.code == 400


async def test_lone_surrogate_escape_in_request_is_masked(ext_proc):
    """The rewritten body carries U+FFFD where the lone surrogate was."""
    answers = await exchange(
        ext_proc, [request_headers(), request_body(chat(f"\ud800 write to {email()}"))]
    )

    new_body = answers[1].request_body.response.body_mutation.body
    assert json.loads(new_body)["messages"][0]["content"] == "\ufffd write to [EMAIL]"


async def test_lone_surrogate_escape_in_a_streamed_answer_is_scanned(ext_proc):
    """An SSE event whose JSON holds a \\ud800 escape is scanned, not failed."""
    key = aws_access_key_id()
    delta = {"choices": [{"index": 0, "delta": {"content": f"\ud800 {key}"}}]}
    body = f"data: {json.dumps(delta)}\n\n".encode() + sse(" more")
    messages = [
        request_headers(),
        request_body(chat("hi")),
        response_headers("text/event-stream"),
        response_chunk(body, end=True),
    ]

    answers = await exchange(ext_proc, messages)

    out = b"".join(a.response_body.response.body_mutation.body for a in answers[3:])
    assert key.encode() not in out
    assert streamed_text(out)[1] == ["content_filter"]


def nested_past_the_parser(document: dict) -> bytes:
    """The document plus a field nested deeper than json.loads can follow."""
    return (json.dumps(document)[:-1] + ', "metadata": ' + "[" * 5000 + "]" * 5000 + "}").encode()


async def test_a_body_too_deep_to_parse_fails_closed_not_through(ext_proc):
    """Deep nesting beside the messages once made the body 'not a chat request':
    it went to the model unscanned, secret and all."""
    body = nested_past_the_parser(chat(f"my key {aws_access_key_id()}"))
    message = ep.ProcessingRequest(request_body=ep.HttpBody(body=body, end_of_stream=True))

    answers = await exchange(ext_proc, [request_headers(), message])

    assert answers[-1].immediate_response.status.code == 503


async def test_an_answer_too_deep_to_parse_fails_closed_not_through(ext_proc):
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}}]}
    messages = [
        request_headers(),
        request_body(chat("hi")),
        response_headers("application/json"),
        response_chunk(nested_past_the_parser(answer), end=True),
    ]

    answers = await exchange(ext_proc, messages)

    assert answers[-1].immediate_response.status.code == 503


async def test_a_duplicate_key_fails_closed_not_through(ext_proc):
    """json.loads keeps the last of duplicate keys; the body goes upstream as sent,
    where a first-wins parser would read the secret nobody scanned."""
    secret = json.dumps(f"my key {aws_access_key_id()}")
    user = f'{{"role": "user", "content": {secret}, "content": "hi"}}'
    body = f'{{"model": "m", "messages": [{user}]}}'
    message = ep.ProcessingRequest(
        request_body=ep.HttpBody(body=body.encode(), end_of_stream=True)
    )

    answers = await exchange(ext_proc, [request_headers(), message])

    assert answers[-1].immediate_response.status.code in (400, 503)
