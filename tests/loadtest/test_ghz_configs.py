"""The ghz configs in loadtest/ghz are complete and their bodies parse into the real requests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import json_format
from google.protobuf.message_factory import GetMessageClass
from guardrail.v1 import guardrail_pb2 as pb

from loadtest import make_payloads
from loadtest.scenarios import (
    GHZ_DIR,
    REPO_ROOT,
    REQUIRED_KEYS,
    load_body,
    load_scenario,
    parse_go_duration,
    scenario_names,
)
from service.checking import build_default_checker

SCENARIOS = (
    "check_1kb",
    "check_chat_4kb",
    "check_16kb_hits",
    "check_tools",
    "check_stream_50",
    "register_churn",
)
SERVICE = pb.DESCRIPTOR.services_by_name["GuardrailService"]


def _config(name: str) -> dict:
    return json.loads((GHZ_DIR / f"{name}.json").read_text(encoding="utf-8"))


def test_every_scenario_has_a_config():
    """The six documented scenarios each have a config, and there are no strays."""
    assert set(scenario_names()) == set(SCENARIOS)


@pytest.mark.parametrize("name", SCENARIOS)
def test_config_has_what_ghz_needs(name):
    """Each config names the proto, import paths, call, host, limits and one body source."""
    config = _config(name)

    assert REQUIRED_KEYS <= config.keys()
    assert ("data" in config) != ("data-file" in config)
    assert "total" in config or "duration" in config
    assert parse_go_duration(config["duration"]) > 0
    assert config["insecure"] is True
    assert (REPO_ROOT / config["proto"]).is_file()
    assert config["proto"] == "proto/guardrail/v1/guardrail.proto"
    assert "third_party/proto" in config["import-paths"]
    assert all((REPO_ROOT / p).is_dir() for p in config["import-paths"])
    assert all(isinstance(v, str) for v in config.get("metadata", {}).values())


@pytest.mark.parametrize("name", SCENARIOS)
def test_call_names_a_real_method(name):
    """The call is package.Service.Method of a method in the compiled descriptor."""
    service, _, method = _config(name)["call"].rpartition(".")

    assert service == SERVICE.full_name
    assert method in SERVICE.methods_by_name


@pytest.mark.parametrize("name", SCENARIOS)
def test_body_parses_into_the_request_message(name):
    """Every element of the body parses strictly with json_format into the method's request."""
    config = _config(name)
    method = SERVICE.methods_by_name[config["call"].rpartition(".")[2]]
    request_class = GetMessageClass(method.input_type)

    bodies = load_body(config, REPO_ROOT)

    assert bodies
    for body in bodies:
        message = json_format.ParseDict(body, request_class())
        assert message.ByteSize() > 0
    if method.client_streaming:
        assert len(bodies) > 1


def test_parse_go_duration_reads_go_syntax():
    """Go duration strings become seconds, and anything else is refused."""
    assert parse_go_duration("10s") == 10
    assert parse_go_duration("1m30s") == 90
    assert parse_go_duration("250ms") == 0.25
    with pytest.raises(ValueError):
        parse_go_duration("10 seconds")


def test_committed_payloads_are_what_the_generator_makes():
    """Regenerating the bodies gives exactly the committed JSON files."""
    for name, body in make_payloads.build_all().items():
        committed = json.loads(
            (make_payloads.DATA_DIR / f"{name}.json").read_text("utf-8")
        )
        assert committed == body, name


def test_payload_sizes_and_verdicts_match_their_scenario():
    """1 KB and 4 KB bodies are clean, the 16 KB body is full of hits, the stream has 50 chunks."""
    checker = build_default_checker()
    sizes = {}
    for name in ("check_1kb", "check_chat_4kb", "check_16kb_hits", "check_tools"):
        (request,) = load_scenario(name).messages
        sizes[name] = request.ByteSize()
        response = checker.check(request)
        if name == "check_16kb_hits":
            assert response.decision == pb.DECISION_BLOCK
            assert len(response.findings) >= 50
            assert {"email", "credit-card", "aws-access-key-id", "iban"} <= {
                f.rule_id for f in response.findings
            }
        else:
            assert response.decision == pb.DECISION_ALLOW, name

    assert 900 <= sizes["check_1kb"] <= 1100
    assert 3500 <= sizes["check_chat_4kb"] <= 4500
    assert 15_000 <= sizes["check_16kb_hits"] <= 17_000
    stream = load_scenario("check_stream_50").messages
    assert stream[0].HasField("open") and sum(m.HasField("chunk") for m in stream) == 50


def test_load_scenario_accepts_a_path(tmp_path: Path):
    """A config outside loadtest/ghz, with inline data, loads too."""
    path = tmp_path / "inline.json"
    path.write_text(
        json.dumps(
            {
                "proto": "proto/guardrail/v1/guardrail.proto",
                "import-paths": ["third_party/proto"],
                "call": "guardrail.v1.GuardrailService/Check",
                "concurrency": 2,
                "total": 5,
                "insecure": True,
                "host": "127.0.0.1:50051",
                "data": {"payload": {"text": "hi"}},
            }
        )
    )

    scenario = load_scenario(path)

    assert scenario.path == "/guardrail.v1.GuardrailService/Check"
    assert scenario.total == 5 and scenario.messages[0].payload.text == "hi"
