"""The real LiteLLM proxy with our adapter (gRPC) and its Generic Guardrail API (HTTP).

LiteLLM runs as a subprocess on 127.0.0.1 with mock model answers; a
callback (litellm_files/capture.py) writes what the model received and what
LiteLLM logged as guardrail information.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from guardrail_client import AsyncGuardrailClient
from service.app import start_server
from tests.conftest import make_settings
from tests.tokens import aws_access_key_id, email

litellm = pytest.importorskip("litellm", reason="needs the 'litellm[proxy]' test extra")

ROOT = Path(__file__).resolve().parents[2]
FILES = Path(__file__).parent / "litellm_files"
ADDRESS = email(3)
KEY = aws_access_key_id(3)
START_TIMEOUT_S = 240
MASTER_KEY = "sk-" + secrets.token_hex(
    32
)  # made per run: the proxy refuses to start without one


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def config(grpc_port: int, http_port: int) -> str:
    def model(name: str, answer: str) -> str:
        return (
            f"  - model_name: {name}\n    litellm_params:\n      model: openai/{name}\n"
            f"      api_key: sk-mock\n      mock_response: {json.dumps(answer)}\n"
        )

    return (
        "model_list:\n"
        + model("clean", "Sure, happy to help with that.")
        + model("leaks-email", f"You can write to {ADDRESS} for details.")
        + model("leaks-secret", f"The deploy key is {KEY} keep it safe.")
        + "litellm_settings:\n  callbacks: capture.handler\n"
        "guardrails:\n"
        "  - guardrail_name: grpc-guard\n    litellm_params:\n"
        "      guardrail: guardrail_client.litellm.GuardrailServiceGuardrail\n"
        "      mode: [pre_call, post_call]\n"
        f"      api_base: 127.0.0.1:{grpc_port}\n      default_on: false\n"
        "  - guardrail_name: http-guard\n    litellm_params:\n"
        "      guardrail: generic_guardrail_api\n      mode: [pre_call, post_call]\n"
        f"      api_base: http://127.0.0.1:{http_port}\n      default_on: false\n"
        "      streaming_end_of_stream_only: true\n"
        # Both paths again, running only a guardrail that masks AWS key ids.
        "  - guardrail_name: grpc-mask\n    litellm_params:\n"
        "      guardrail: guardrail_client.litellm.GuardrailServiceGuardrail\n"
        "      mode: [pre_call, post_call]\n"
        f"      api_base: 127.0.0.1:{grpc_port}\n      default_on: false\n"
        f"      guardrails: [{MASK_GUARDRAIL}]\n"
        "  - guardrail_name: http-mask\n    litellm_params:\n"
        "      guardrail: generic_guardrail_api\n      mode: [pre_call, post_call]\n"
        f"      api_base: http://127.0.0.1:{http_port}\n      default_on: false\n"
        # Rewrites reach a streaming client only in incremental_diff mode,
        # checked on every chunk; our answers carry stream_holdback_chars.
        "      streaming_end_of_stream_only: false\n"
        "      streaming_sampling_rate: 1\n"
        "      streaming_transform_mode: incremental_diff\n"
        f"      additional_provider_specific_params: {{guardrails: [{MASK_GUARDRAIL}]}}\n"
    )


MASK_GUARDRAIL = "aws-key-mask"


def masking_guardrail() -> dict:
    """Masks AWS access key ids: "AKIA" then 16 uppercase letters or digits (the documented format)."""
    return {
        "name": MASK_GUARDRAIL,
        "description": "mask AWS access key ids instead of blocking",
        "action": "ACTION_MASK",
        "rules": [
            {
                "id": "aws-access-key-id",
                "category": "secret",
                "pattern": "AKIA" + "[0-9A-Z]{16}",
                "mask_label": "[AWS_KEY]",
                "must_match": [aws_access_key_id(99)],
                "must_not_match": ["AKIA" + "short"],
            }
        ],
    }


@pytest.fixture(scope="module")
async def guard_server(tmp_path_factory):
    settings = make_settings(
        tmp_path_factory.mktemp("litellm-guard"), workers=1, http_port=free_port()
    )
    running = await start_server(settings)
    try:
        async with AsyncGuardrailClient(f"127.0.0.1:{running.port}") as client:
            (registered,) = await client.register([masking_guardrail()])
        assert registered.accepted, registered.error
        yield running
    finally:
        await running.stop(grace=1.0)


@pytest.fixture(scope="module")
async def proxy(guard_server, tmp_path_factory):
    if (
        shutil.which("litellm") is None
        and not (Path(sys.executable).parent / "litellm").exists()
    ):
        pytest.skip("the litellm proxy CLI is not installed")
    work = tmp_path_factory.mktemp("litellm-proxy")
    shutil.copy(FILES / "capture.py", work / "capture.py")
    (work / "config.yaml").write_text(config(guard_server.port, guard_server.http.port))
    capture = work / "capture.jsonl"
    port = free_port()
    env = {
        **os.environ,
        "CAPTURE_FILE": str(capture),
        "LITELLM_LOG": "ERROR",
        "PYTHONPATH": os.pathsep.join(
            [str(work), str(ROOT / "clients" / "python"), str(ROOT)]
        ),
        "DISABLE_SCHEMA_UPDATE": "true",
        "LITELLM_TELEMETRY": "False",
        "LITELLM_MASTER_KEY": MASTER_KEY,
    }
    env.pop("DATABASE_URL", None)
    cli = Path(sys.executable).parent / "litellm"
    log = open(work / "proxy.log", "w")
    process = subprocess.Popen(
        [
            str(cli),
            "--config",
            str(work / "config.yaml"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--num_workers",
            "1",
        ],
        cwd=work,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        await _wait_ready(base, process, work / "proxy.log")
        yield base, capture
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


async def _wait_ready(base: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"litellm exited early:\n{log.read_text()[-4000:]}")
            try:
                if (
                    await client.get(f"{base}/health/liveliness", timeout=2)
                ).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await _sleep(1.0)
    pytest.fail(
        f"litellm did not start in {START_TIMEOUT_S}s:\n{log.read_text()[-4000:]}"
    )


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


def captured(capture: Path) -> list[dict]:
    if not capture.exists():
        return []
    return [json.loads(line) for line in capture.read_text().splitlines()]


async def wait_captured(capture: Path, count: int) -> list[dict]:
    for _ in range(100):
        lines = captured(capture)
        if len(lines) >= count:
            return lines
        await _sleep(0.1)
    return captured(capture)


async def chat(
    base: str, model: str, text: str, guardrail: str, *, stream: bool = False
):
    body = {
        "model": model,
        "messages": [{"role": "user", "content": text}],
        "guardrails": [guardrail],
        "stream": stream,
    }
    async with httpx.AsyncClient(timeout=60) as client:
        response = await client.post(
            f"{base}/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {MASTER_KEY}"},
        )
        return response


def streamed(response: httpx.Response) -> tuple[str, list[str]]:
    text, finishes = [], []
    for line in response.text.splitlines():
        data = line.removeprefix("data: ").strip()
        if not line.startswith("data: ") or data == "[DONE]":
            continue
        event = json.loads(data)
        if "error" in event:
            finishes.append("error")
            continue
        for choice in event.get("choices", []):
            text.append((choice.get("delta") or {}).get("content") or "")
            if choice.get("finish_reason"):
                finishes.append(choice["finish_reason"])
    return "".join(text), finishes


@pytest.mark.parametrize("guardrail", ["grpc-guard", "http-guard"])
async def test_prompt_with_secret_is_blocked_with_400(proxy, guardrail):
    """A prompt carrying an AWS key is refused with a 400 whose message names the block."""
    base, _ = proxy
    response = await chat(base, "clean", f"store {KEY} for me", guardrail)

    assert response.status_code == 400, response.text
    assert "guardrail-service" in response.text or "Blocked" in response.text
    assert KEY not in response.text


@pytest.mark.parametrize("guardrail", ["grpc-guard", "http-guard"])
async def test_prompt_with_email_reaches_the_model_masked(proxy, guardrail):
    """The mock model receives the prompt with the e-mail masked, and the answer comes back."""
    base, capture = proxy
    before = len(captured(capture))
    response = await chat(base, "clean", f"please mail {ADDRESS} now", guardrail)

    assert response.status_code == 200, response.text
    lines = await wait_captured(capture, before + 1)
    sent = lines[-1]["messages"][0]["content"]
    assert sent == "please mail [EMAIL] now"


async def test_logged_guardrail_information_names_our_guardrail(proxy):
    """LiteLLM's standard guardrail information names the adapter and carries our per-guardrail results."""
    base, capture = proxy
    before = len(captured(capture))
    response = await chat(base, "clean", f"please mail {ADDRESS} now", "grpc-guard")
    assert response.status_code == 200

    line = (await wait_captured(capture, before + 1))[-1]
    info = line["guardrail_information"]
    entries = info if isinstance(info, list) else [info]
    ours = [e for e in entries if e and e.get("guardrail_name") == "grpc-guard"]
    assert ours and ours[0]["guardrail_provider"] == "guardrail-service"
    pre = next(e for e in ours if e["guardrail_mode"] == "pre_call")
    assert pre["guardrail_status"] == "guardrail_intervened"
    results = {
        r["name"]: r["status"] for r in pre["guardrail_response"]["guardrail_results"]
    }
    assert results["pii"] == "INTERVENED"


async def test_streamed_answer_with_email_is_masked_by_adapter(proxy):
    """A streamed answer carrying an e-mail reaches the client masked through the adapter."""
    base, _ = proxy
    response = await chat(
        base, "leaks-email", "how do I reach you?", "grpc-guard", stream=True
    )

    text, finishes = streamed(response)
    assert ADDRESS not in response.text
    assert text == "You can write to [EMAIL] for details."
    assert finishes[-1] == "stop"


async def test_streamed_answer_with_secret_is_cut_by_adapter(proxy):
    """A streamed answer carrying an AWS key never shows the key; the stream ends content_filter."""
    base, _ = proxy
    response = await chat(
        base, "leaks-secret", "what is the key?", "grpc-guard", stream=True
    )

    text, finishes = streamed(response)
    assert KEY not in response.text and KEY[:8] not in text
    assert finishes[-1] == "content_filter"


async def test_streamed_answer_with_secret_is_stopped_by_generic_api(proxy):
    """Through the Generic Guardrail API the streamed answer with a key is stopped, the key unseen."""
    base, _ = proxy
    response = await chat(
        base, "leaks-secret", "what is the key?", "http-guard", stream=True
    )

    assert KEY not in response.text
    assert (
        "Blocked by guardrail-service" in response.text or response.status_code == 400
    )


@pytest.mark.parametrize("guardrail", ["grpc-mask", "http-mask"])
async def test_streamed_answer_with_secret_is_masked_by_a_masking_guardrail(proxy, guardrail):
    """With a guardrail that masks AWS key ids, a streamed answer carrying one reaches the client masked."""
    base, _ = proxy
    response = await chat(base, "leaks-secret", "what is the key?", guardrail, stream=True)

    assert response.status_code == 200, response.text
    text, finishes = streamed(response)
    assert KEY not in response.text
    assert text == "The deploy key is [AWS_KEY] keep it safe."
    assert finishes[-1] == "stop"
