"""MCP rug-pull detection: pinned tool definitions and the check against them.

A caller pins an MCP server's tools (``PinMcpTools``): one SHA-256 per tool
over the canonical JSON (sorted keys, no spaces) of its name, description and
input schema (parsed when it is JSON, so key order and whitespace do not
count). Later ``TOOL_DESCRIPTION`` checks of tools naming that server are
compared with the pins of the caller's team/tenant by the built-in guardrail
``mcp_rug_pull``: a changed hash, a tool not pinned and a pinned tool missing
from the payload are findings (rule ids ``tool_changed``, ``tool_added``,
``tool_removed``) with the action of ``GUARDRAIL_MCP_RUG_PULL_ACTION``.

Pins live in the database (``mcp_pins_store``); each worker keeps all of them
in memory, so a check is dictionary lookups plus hashing. A worker's own
changes update its cache at once; other workers (and instances sharing
PostgreSQL) reload when the pin generation moves, polled every
``RELOAD_INTERVAL_S``. Known shortcomings: another worker may compare against
the previous pins for up to that interval; "removed" assumes the payload
lists the server's whole tool list; every pin is held in memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from guardrail.v1 import guardrail_pb2 as pb

from service.errors import FieldViolation, InvalidArgumentError
from service.telemetry.logging import get_logger
from service.types import Action, Finding, Principal, Severity

__all__ = [
    "RUG_PULL_GUARDRAIL",
    "McpPins",
    "PinCheck",
    "check_tools",
    "pin_scope",
    "tool_hash",
]

RUG_PULL_GUARDRAIL = "mcp_rug_pull"
RELOAD_INTERVAL_S = 0.5
_CATEGORY = "mcp_rug_pull"

PinMap = Mapping[str, str]  # tool name -> sha256


def pin_scope(principal: Principal | None, request_team: str) -> str:
    """Pins belong to a tenant/team: the principal's, else the request's team."""
    if principal is not None:
        return f"{principal.tenant}/{principal.team}"
    return f"/{request_team}"


def _schema(text: str) -> object:
    try:
        return json.loads(text) if text else None
    except (ValueError, RecursionError):
        return text  # not JSON, or nested past the parser: hashed as it is


def _canonical(tool: pb.ToolDefinition, schema: object) -> str:
    document = {"name": tool.name, "description": tool.description, "input_schema": schema}
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def tool_hash(tool: pb.ToolDefinition) -> str:
    try:
        canonical = _canonical(tool, _schema(tool.input_schema_json))
    except RecursionError:  # parsed at the parser's limit, one level too deep to dump
        canonical = _canonical(tool, tool.input_schema_json)
    # A \ud800 escape in the schema parses to a lone surrogate: surrogatepass
    # gives it bytes, and leaves every valid string's UTF-8 (so stored pins) as is.
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def pins_for_request(
    server: str, tools: Sequence[pb.ToolDefinition]
) -> dict[str, str]:
    """Validate a PinMcpTools request's tools; tool name -> hash."""
    problems = []
    if not server:
        problems.append(FieldViolation("server", "required"))
    seen: dict[str, str] = {}
    for index, tool in enumerate(tools):
        if not tool.name:
            problems.append(FieldViolation(f"tools[{index}].name", "required"))
        elif tool.name in seen:
            problems.append(FieldViolation(f"tools[{index}].name", "duplicate tool name"))
        if tool.server and tool.server != server:
            problems.append(
                FieldViolation(f"tools[{index}].server", "differs from the request's server")
            )
        seen[tool.name] = tool_hash(tool)
    if problems:
        raise InvalidArgumentError("invalid pin request", problems, reason="INVALID_PINS")
    return seen


@dataclass(frozen=True, slots=True)
class PinCheck:
    """What the rug-pull guardrail found, or why it did not run."""

    findings: list[Finding]
    not_run_reason: str = ""


def _finding(rule: str, action: Action, path: str, preview: str) -> Finding:
    return Finding(
        guardrail=RUG_PULL_GUARDRAIL,
        rule_id=rule,
        category=_CATEGORY,
        severity=Severity.HIGH,
        action=action,
        path=path,
        start=0,
        end=0,
        redacted_preview=preview,
    )


def check_tools(
    tools: Sequence[pb.ToolDefinition],
    pins: Mapping[str, PinMap],
    action: Action,
) -> PinCheck:
    """Compare the payload's tools with the pins, server by server."""
    by_server: dict[str, list[tuple[int, pb.ToolDefinition]]] = {}
    for index, tool in enumerate(tools):
        if tool.server:
            by_server.setdefault(tool.server, []).append((index, tool))
    if not by_server:
        return PinCheck([], "no tool in the payload names an MCP server")
    pinned_servers = [s for s in by_server if s in pins]
    if not pinned_servers:
        return PinCheck([], "no pins for the payload's MCP server(s)")
    findings = []
    for server in pinned_servers:
        pinned = pins[server]
        seen = set()
        for index, tool in by_server[server]:
            seen.add(tool.name)
            expected = pinned.get(tool.name)
            path = f"tools[{index}]"
            if expected is None:
                findings.append(_finding("tool_added", action, path, f"{server}/{tool.name}"))
            elif expected != tool_hash(tool):
                findings.append(_finding("tool_changed", action, path, f"{server}/{tool.name}"))
        for name in sorted(set(pinned) - seen):
            findings.append(_finding("tool_removed", action, "tools", f"{server}/{name}"))
    return PinCheck(findings)


class McpPins:
    """The pins of every team, cached per worker, backed by a PinStore."""

    def __init__(self, store: object) -> None:
        from service.mcp_pins_store import PinStore

        self._store: PinStore = store  # type: ignore[assignment]
        self._pins: dict[str, dict[str, dict[str, str]]] = {}
        self._generation = -1
        self._loaded = False
        self._poller: asyncio.Task[None] | None = None

    @property
    def loaded(self) -> bool:
        return self._loaded

    def for_scope(self, scope: str) -> Mapping[str, PinMap]:
        return self._pins.get(scope, {})

    async def start(self) -> None:
        await self._store.open()
        await self.reload()
        self._poller = asyncio.create_task(self._poll(), name="mcp-pins-reload")

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            try:
                await self._poller
            except asyncio.CancelledError:
                pass
        await self._store.close()

    async def reload(self) -> None:
        generation = await self._store.generation()
        rows = await self._store.load_all()
        pins: dict[str, dict[str, dict[str, str]]] = {}
        for scope, server, tool, digest in rows:
            pins.setdefault(scope, {}).setdefault(server, {})[tool] = digest
        self._pins, self._generation, self._loaded = pins, generation, True

    async def _poll(self) -> None:
        log = get_logger("service.mcp_pins")
        while True:
            await asyncio.sleep(RELOAD_INTERVAL_S)
            try:
                if await self._store.generation() != self._generation:
                    await self.reload()
            except Exception as exc:  # the store is down: keep the last pins, say so
                log.warning("mcp pins reload failed", error=type(exc).__name__)

    async def pin(self, scope: str, server: str, tools: Mapping[str, str]) -> None:
        await self._store.replace(scope, server, tools)
        await self.reload()

    async def clear(self, scope: str, server: str) -> int:
        cleared = await self._store.clear(scope, server)
        await self.reload()
        return cleared

    def listed(self, scope: str, server: str) -> list[tuple[str, str, str]]:
        out = []
        for name, tools in sorted(self.for_scope(scope).items()):
            if server and name != server:
                continue
            out.extend((name, tool, digest) for tool, digest in sorted(tools.items()))
        return out
