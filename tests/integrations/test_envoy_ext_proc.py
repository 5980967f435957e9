"""ext_proc driven as Envoy drives it, over a real channel to a real server."""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest

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


async def test_an_event_nested_past_the_parser_ends_the_stream(ext_proc):
    """An event too deep to parse cannot be scanned, so it is not let through."""
    nested = "[" * 100_000 + "]" * 100_000
    deep = (
        'data: {"choices": [{"index": 0, "delta": {"content": "x"}}], "z": '
        + nested
        + "}\n\n"
    )
    messages = [
        request_headers(),
        request_body(chat("hi")),
        response_headers("text/event-stream"),
        response_chunk(sse("hello ", finish=False)),
        response_chunk(deep.encode(), end=True),
    ]

    answers = await exchange(ext_proc, messages)

    assert len(answers) == len(messages)
    out = answers[-1].response_body.response.body_mutation.body
    assert nested.encode() not in out
    _, finishes = streamed_text(out)
    assert finishes == ["content_filter"]


# -- streamed tool calls


def tool_call_sse(calls: list[tuple[str, str, list[str]]]) -> bytes:
    """OpenAI chunks for tool calls (id, name, argument fragments) of choice 0."""
    envelope = {"id": "c1", "object": "chat.completion.chunk", "model": "m"}

    def event(delta: dict, finish: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return f"data: {json.dumps({**envelope, 'choices': [choice]})}\n\n"

    events = [event({"role": "assistant", "content": None})]
    for index, (call_id, name, fragments) in enumerate(calls):
        first = {"index": index, "id": call_id, "type": "function"}
        first["function"] = {"name": name, "arguments": ""}
        events.append(event({"tool_calls": [first]}))
        for fragment in fragments:
            piece = {"index": index, "function": {"arguments": fragment}}
            events.append(event({"tool_calls": [piece]}))
    events.append(event({}, "tool_calls") + "data: [DONE]\n\n")
    return "".join(events).encode()


def streamed_tool_calls(body: bytes) -> tuple[list[dict], list[str]]:
    """Every tool_calls delta entry of an SSE body, and its finish reasons."""
    entries, finishes = [], []
    for event in body.decode().split("\n\n"):
        data = event.removeprefix("data: ")
        if not data or data == "[DONE]":
            continue
        for choice in json.loads(data)["choices"]:
            entries.extend(choice["delta"].get("tool_calls") or [])
            if choice.get("finish_reason"):
                finishes.append(choice["finish_reason"])
    return entries, finishes


def answer_messages(
    body: bytes,
    cuts: list[int],
    path: str = "/v1/chat/completions",
    request_id: str = "",
):
    """Envoy's messages for a streamed answer cut at these byte offsets."""
    bounds = [0, *cuts, len(body)]
    pieces = [body[a:b] for a, b in itertools.pairwise(bounds)]
    extra = {"x-request-id": request_id} if request_id else {}
    return [
        request_headers(path, **extra),
        request_body(chat("hi")),
        response_headers("text/event-stream"),
        *[response_chunk(p, end=i == len(pieces) - 1) for i, p in enumerate(pieces)],
    ]


def emitted(answers) -> bytes:
    return b"".join(a.response_body.response.body_mutation.body for a in answers[3:])


async def row_metadata(server, request_id: str, tries: int = 100) -> dict:
    """The metadata of the one SpendLogs row of the exchange with this x-request-id."""
    rows: list[dict] = []
    for _ in range(tries):
        await server.writer.flush()
        rows = [r for r in spend_rows(server) if r["client_request_id"] == request_id]
        if rows:
            break
        await asyncio.sleep(0.05)
    assert len(rows) == 1 and rows[0]["call_type"] == "process"
    return json.loads(rows[0]["metadata"])


async def test_secret_split_across_tool_call_deltas_ends_with_content_filter(
    ext_proc, envoy_server
):
    """A key split over argument deltas and body chunks is never emitted; content_filter ends the stream."""
    key, request_id = aws_access_key_id(seed=11), "tool-secret"
    fragments = ['{"cmd": "export K=', key[:9], key[9:15], key[15:], '"}']
    body = tool_call_sse([("call_1", "run", fragments)])
    cut = body.index(key[9:15].encode()) + 2

    messages = answer_messages(body, [cut], request_id=request_id)
    answers = await exchange(ext_proc, messages)

    out = emitted(answers)
    for piece in (key, key[:9], key[9:15], key[15:]):
        assert piece.encode() not in out
    entries, finishes = streamed_tool_calls(out)
    assert entries == [] and finishes == ["content_filter"]
    assert out.endswith(b"data: [DONE]\n\n")
    metadata = await row_metadata(envoy_server, request_id)
    assert metadata["stream_end"] == "blocked"
    assert any(
        f["guardrail"] == "secrets"
        and f["path"].startswith("choices[0].tool_calls[0].arguments_json")
        for f in metadata["findings"]
    )


async def test_email_in_streamed_arguments_is_masked_in_one_synthetic_delta(
    ext_proc, envoy_server
):
    """Arguments with an e-mail come out whole and masked, as one well-formed tool_calls delta."""
    address, request_id = email(seed=12), "tool-email"
    fragments = ['{"to": "', address[:5], address[5:], '", "subject": "hi"}']
    body = tool_call_sse([("call_9", "send_mail", fragments)])

    messages = answer_messages(body, [90, 200], request_id=request_id)
    answers = await exchange(ext_proc, messages)

    out = emitted(answers)
    assert address[:5].encode() not in out
    entries, finishes = streamed_tool_calls(out)
    assert finishes == ["tool_calls"]
    assert len(entries) == 1
    entry = entries[0]
    assert entry["index"] == 0 and entry["id"] == "call_9"
    assert entry["type"] == "function" and entry["function"]["name"] == "send_mail"
    arguments = json.loads(entry["function"]["arguments"])
    assert arguments == {"to": "[EMAIL]", "subject": "hi"}
    assert out.index(b"send_mail") < out.index(b'"tool_calls"}')
    metadata = await row_metadata(envoy_server, request_id)
    assert metadata["stream_end"] == "completed"
    paths = [f["path"] for f in metadata["findings"] if f["guardrail"] == "pii"]
    assert paths == ["choices[0].tool_calls[0].arguments_json"]
    statuses = {
        entry["guardrail_name"]: entry["guardrail_status"]
        for entry in metadata["guardrail_information"]
    }
    assert statuses["pii"] == "guardrail_intervened"
    assert statuses["secrets"] == "success"
    assert set(statuses) >= set(metadata["applied_guardrails"])


async def test_clean_tool_calls_come_out_whole_and_unchanged(ext_proc):
    """Two clean calls each come out once, arguments equal to their fragments joined, in order."""
    first = ['{"city": ', '"Par', 'is", "days": ', "3}"]
    second = ['{"query": "wea', 'ther \\u00e9t\\u00e9"}']
    body = tool_call_sse([("call_a", "forecast", first), ("call_b", "search", second)])

    answers = await exchange(ext_proc, answer_messages(body, [50, 333]))

    entries, finishes = streamed_tool_calls(emitted(answers))
    assert finishes == ["tool_calls"]
    assert [(e["index"], e["id"], e["function"]["name"]) for e in entries] == [
        (0, "call_a", "forecast"),
        (1, "call_b", "search"),
    ]
    assert entries[0]["function"]["arguments"] == "".join(first)
    assert entries[1]["function"]["arguments"] == "".join(second)


def anthropic_tool_sse(fragments: list[str]) -> bytes:
    """An Anthropic stream: a text block, then a tool_use block built from fragments."""
    text_block = {"type": "text", "text": ""}
    tool_block = {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}}
    events = [
        ("message_start", {"type": "message_start", "message": {"id": "m1"}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": text_block}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "Let me look."}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("content_block_start", {"type": "content_block_start", "index": 1,
                                 "content_block": tool_block}),
        *[
            ("content_block_delta", {"type": "content_block_delta", "index": 1,
                                     "delta": {"type": "input_json_delta",
                                               "partial_json": f}})
            for f in fragments
        ],
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        ("message_delta", {"type": "message_delta",
                           "delta": {"stop_reason": "tool_use"}}),
        ("message_stop", {"type": "message_stop"}),
    ]  # fmt: skip
    return "".join(f"event: {n}\ndata: {json.dumps(d)}\n\n" for n, d in events).encode()


def anthropic_events(body: bytes) -> list[tuple[str, dict]]:
    out = []
    for event in body.decode().split("\n\n"):
        if event:
            name, data = event.split("\n")
            out.append((name.removeprefix("event: "), json.loads(data[6:])))
    return out


async def test_anthropic_input_json_delta_with_a_secret_is_blocked(ext_proc):
    """A key split over input_json_delta fragments is never emitted; the stream ends with an error event."""
    key = aws_access_key_id(seed=13)
    fragments = ['{"token": "', key[:8], key[8:], '"}']
    body = anthropic_tool_sse(fragments)
    cut = body.index(key[8:].encode()) + 3

    answers = await exchange(ext_proc, answer_messages(body, [cut], "/v1/messages"))

    out = emitted(answers)
    assert key[:8].encode() not in out and key[8:].encode() not in out
    events = anthropic_events(out)
    assert events[-1][0] == "error"
    assert not any(
        d.get("delta", {}).get("type") == "input_json_delta" for _, d in events
    )


async def test_anthropic_input_json_delta_with_an_email_is_masked_before_stop(
    ext_proc,
):
    """The tool input comes out as one input_json_delta, masked, between its start and stop."""
    address = email(seed=14)
    fragments = ['{"user": ', '"', address[:4], address[4:], '"}']
    body = anthropic_tool_sse(fragments)

    answers = await exchange(ext_proc, answer_messages(body, [300], "/v1/messages"))

    events = anthropic_events(emitted(answers))
    kinds = [(n, d.get("index")) for n, d in events]
    assert kinds == [
        ("message_start", None),
        ("content_block_start", 0),
        ("content_block_delta", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_delta", 1),
        ("content_block_stop", 1),
        ("message_delta", None),
        ("message_stop", None),
    ]
    assert events[4][1]["content_block"]["name"] == "lookup"
    delta = events[5][1]["delta"]
    assert delta["type"] == "input_json_delta"
    assert json.loads(delta["partial_json"]) == {"user": "[EMAIL]"}


async def test_arguments_over_the_hold_limit_end_the_stream_unsent(ext_proc):
    """Arguments longer than what is held are never passed unscanned: content_filter."""
    filler = "x" * 250_000
    fragments = ['{"blob": "', *[filler] * 5, '"}']
    body = tool_call_sse([("call_big", "store", fragments)])

    answers = await exchange(ext_proc, answer_messages(body, [400_000, 900_000]))

    out = emitted(answers)
    assert filler[:1000].encode() not in out
    entries, finishes = streamed_tool_calls(out)
    assert entries == [] and finishes == ["content_filter"]


async def test_calls_of_a_stream_cut_short_are_released_at_its_end(ext_proc):
    """Without a finish or [DONE], held calls still go out, scanned, when the body ends."""
    address = email(seed=15)
    body = tool_call_sse([("call_1", "note", ['{"text": "', address, '"}'])])
    body = body[: body.rindex(b"data: {")]  # no finishing event, no [DONE]

    answers = await exchange(ext_proc, answer_messages(body, [120]))

    entries, finishes = streamed_tool_calls(emitted(answers))
    assert finishes == []
    assert [json.loads(e["function"]["arguments"]) for e in entries] == [
        {"text": "[EMAIL]"}
    ]


async def test_text_then_a_tool_call_then_usage_keep_their_order(ext_proc):
    """Text, the whole call, the finish and a choice-less usage chunk come out in order."""
    envelope = {"id": "c1", "object": "chat.completion.chunk", "model": "m"}
    call = {"index": 0, "id": "call_u", "type": "function"}
    deltas = [
        ({"role": "assistant", "content": "Checking now."}, None),
        ({"tool_calls": [{**call, "function": {"name": "f", "arguments": ""}}]}, None),
        ({"tool_calls": [{"index": 0, "function": {"arguments": '{"a": 1}'}}]}, None),
        ({}, "tool_calls"),
    ]
    events = [
        {**envelope, "choices": [{"index": 0, "delta": d, "finish_reason": f}]}
        for d, f in deltas
    ]
    events.append({**envelope, "choices": [], "usage": {"total_tokens": 9}})
    body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"

    answers = await exchange(ext_proc, answer_messages(body.encode(), [200]))

    out = emitted(answers).decode()
    text, finishes = streamed_text(out.encode())
    entries, _ = streamed_tool_calls(out.encode())
    assert text == "Checking now." and finishes == ["tool_calls"]
    assert [e["function"]["arguments"] for e in entries] == ['{"a": 1}']
    order = [out.index(s) for s in ("Checking", "call_u", '"tool_calls"}', "usage")]
    assert order == sorted(order) and out.endswith("data: [DONE]\n\n")


async def test_arguments_nested_past_the_json_depth_end_the_stream(ext_proc):
    """Arguments too deep to walk cannot be scanned key by key, so they are not sent."""
    deep = '{"a": ' + "[" * 100 + '"x"' + "]" * 100 + "}"
    body = tool_call_sse([("call_d", "nest", [deep[:150], deep[150:]])])

    answers = await exchange(ext_proc, answer_messages(body, [256]))

    entries, finishes = streamed_tool_calls(emitted(answers))
    assert entries == [] and finishes == ["content_filter"]


@pytest.mark.parametrize(
    "choice",
    [{"index": "first", "delta": {"content": "x"}}, {"index": 64, "delta": {"content": "x"}}, 5],
)
async def test_an_event_whose_fields_cannot_be_read_ends_the_stream(ext_proc, choice):
    """A chunk of a known kind that cannot be read cannot be scanned: content_filter, not INTERNAL."""
    event = "data: " + json.dumps({"id": "c1", "choices": [choice]}) + "\n\n"
    messages = [
        request_headers(),
        request_body(chat("hi")),
        response_headers("text/event-stream"),
        response_chunk(sse("hello ", finish=False)),
        response_chunk(event.encode(), end=True),
    ]

    answers = await exchange(ext_proc, messages)

    assert len(answers) == len(messages)
    out = answers[-1].response_body.response.body_mutation.body
    _, finishes = streamed_text(out)
    assert finishes == ["content_filter"]


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
