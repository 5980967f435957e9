"""The SpendLogs writer: one row per RPC, written in batches off the hot path.

``submit`` only appends to a bounded in-memory queue (a full queue drops the
row and counts it); a background task turns records into rows and writes
them by count and by time. A batch the database rejects is retried row by
row, so one poison row costs only itself.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from service.settings import Settings
from service.store.backends import SpendLogBackend, SpendLogRow, open_backend
from service.telemetry.logging import get_logger
from service.telemetry.metrics import Metrics
from service.types import CallRecord, Finding, GuardrailOutcome

__all__ = ["MAX_FINDINGS", "SpendLogWriter", "to_row"]

MAX_FINDINGS = 500  # per row; the rest are counted in findings_truncated
DROP_WARNING_INTERVAL_S = 1.0
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _storable(text: str) -> str:
    # PostgreSQL text and jsonb refuse NUL and lone surrogates.
    if "\x00" in text:
        text = text.replace("\x00", "")
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def _timestamp(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _guardrail_information(record: CallRecord) -> list[dict[str, Any]]:
    by_guardrail: dict[str, list[Finding]] = {}
    for finding in record.findings:
        by_guardrail.setdefault(finding.guardrail, []).append(finding)
    mode = record.direction.value if record.direction else ""

    return [_guardrail_entry(o, by_guardrail.get(o.name, []), mode) for o in record.outcomes]


def _guardrail_entry(
    outcome: GuardrailOutcome, findings: list[Finding], mode: str
) -> dict[str, Any]:
    response: dict[str, Any] = {
        "finding_count": outcome.finding_count,
        "rule_ids": sorted({_storable(f.rule_id) for f in findings}),
        "categories": sorted({_storable(f.category) for f in findings}),
        "action": outcome.action.value,
    }
    if outcome.reason:
        response["reason"] = _storable(outcome.reason)

    return {
        "guardrail_name": _storable(outcome.name),
        "guardrail_mode": mode,
        "guardrail_status": outcome.status.value,
        "guardrail_response": response,
        "guardrail_version": outcome.version,
    }


def _finding_entry(finding: Finding) -> dict[str, Any]:
    return {
        "guardrail": _storable(finding.guardrail),
        "rule_id": _storable(finding.rule_id),
        "category": _storable(finding.category),
        "path": _storable(finding.path),
        "json_pointer": _storable(finding.json_pointer),
        "start": finding.start,
        "end": finding.end,
    }


def _metadata(record: CallRecord) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "guardrail_information": _guardrail_information(record),
        "applied_guardrails": [_storable(n) for n in record.applied_guardrails],
        "findings": [_finding_entry(f) for f in record.findings[:MAX_FINDINGS]],
        "direction": record.direction.value if record.direction else "",
        "chunk_count": record.chunk_count,
        "stream_end": record.stream_end,
    }
    if len(record.findings) > MAX_FINDINGS:
        metadata["findings_truncated"] = len(record.findings) - MAX_FINDINGS
    if record.error_reason or record.grpc_code != "OK":
        metadata["error"] = {
            "reason": _storable(record.error_reason),
            "message": _storable(record.error_message),
        }

    return metadata


def to_row(record: CallRecord) -> SpendLogRow:
    """A record as a ``spend_logs`` row, in ``backends.COLUMNS`` order."""
    caller = record.caller
    failed = record.grpc_code != "OK"

    return (
        record.request_id,
        record.call_type,
        record.api_key_hash,
        _storable(caller.user),
        _storable(caller.team_id),
        _storable(caller.end_user),
        _storable(caller.session_id),
        _timestamp(record.start_time),
        _timestamp(record.end_time or record.start_time),
        record.duration_ns / 1e6,
        "failure" if failed else "success",
        _dumps([_storable(t) for t in caller.request_tags]),
        _dumps(_metadata(record)),
        _storable(record.client_request_id),
        record.grpc_code,
        "" if failed or record.decision is None else record.decision.value,
        record.registry_generation,
        record.worker,
    )


class SpendLogWriter:
    """Implements ``SpendLogSink``: never blocks, never raises into the RPC."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        *,
        backend: SpendLogBackend | None = None,
        table: str = "spend_logs",
    ) -> None:
        url = settings.database_url.get_secret_value()
        self._backend = backend or open_backend(url, table)
        self._capacity = settings.spend_log_queue_size
        self._batch_size = settings.spend_log_batch_size
        self._interval = settings.spend_log_flush_interval_s
        self._metrics = metrics
        self._log = get_logger("service.store.spend_logs")
        # A deque, not asyncio.Queue: append is cheaper than put_nowait, and
        # the writer is woken only when a batch is full, not on every row.
        self._pending: deque[CallRecord] = deque()
        self._accepted = 0
        self._finished = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._dropped_unreported = 0
        self._last_drop_warning = 0.0
        metrics.track_queue_depth(self.queue_depth)

    def queue_depth(self) -> float:
        return float(len(self._pending))

    def submit(self, record: CallRecord) -> None:
        """Queue one record; when the queue is full, drop it and count that."""
        if len(self._pending) >= self._capacity:
            self._drop()
            return
        self._pending.append(record)
        self._accepted += 1
        if len(self._pending) >= self._batch_size:
            self._wakeup.set()

    def _drop(self) -> None:
        self._metrics.count_spend_rows("dropped")
        self._dropped_unreported += 1
        now = time.monotonic()
        # One warning a second at most: an overloaded writer must not flood stdout.
        if now - self._last_drop_warning >= DROP_WARNING_INTERVAL_S:
            self._log.warning(
                "spend-log queue full; rows dropped",
                dropped=self._dropped_unreported,
                queue_size=self._capacity,
            )
            self._dropped_unreported = 0
            self._last_drop_warning = now

    async def start(self) -> None:
        """Open the database and start the background writer."""
        await self._backend.open()
        self._task = asyncio.create_task(self._run(), name="spend-log-writer")

    async def flush(self) -> None:
        """Wait until every record submitted so far has been written (or failed)."""
        target = self._accepted
        if self._finished >= target:
            return
        if self._task is None or self._task.done():
            raise RuntimeError("SpendLogWriter is not running; call start() first")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, waiter))
        self._wakeup.set()
        await waiter

    async def aclose(self) -> None:
        """Flush, stop the background task and close the database."""
        if self._task is not None and not self._task.done():
            await self.flush()
            self._closing = True
            self._wakeup.set()
            await self._task
        self._task = None
        await self._backend.close()

    async def _run(self) -> None:
        while not self._closing:
            if len(self._pending) < self._batch_size:
                await self._sleep()
            try:
                await self._drain()
            except Exception:  # a bug here must not stop recording
                self._log.exception("spend-log writer failed; continuing")
        await self._drain()  # what arrived between the last flush and close

    async def _sleep(self) -> None:
        try:
            async with asyncio.timeout(self._interval):
                await self._wakeup.wait()
        except TimeoutError:
            pass
        self._wakeup.clear()

    async def _drain(self) -> None:
        while self._pending:
            count = min(len(self._pending), self._batch_size)
            batch = [self._pending.popleft() for _ in range(count)]
            try:
                await self._write(batch)
            finally:
                self._finished += count
                self._release_waiters()

    def _release_waiters(self) -> None:
        still_waiting = []
        for target, waiter in self._waiters:
            if self._finished >= target:
                if not waiter.done():
                    waiter.set_result(None)
            else:
                still_waiting.append((target, waiter))
        self._waiters = still_waiting

    async def _write(self, batch: Sequence[CallRecord]) -> None:
        rows = self._rows(batch)
        if not rows:
            return
        try:
            await self._backend.insert_many(rows)
        except Exception as exc:
            self._log.warning(
                "spend-log batch rejected; retrying row by row",
                rows=len(rows),
                error=type(exc).__name__,
            )
            await self._write_one_by_one(rows)
        else:
            self._metrics.count_spend_rows("written", len(rows))

    def _rows(self, batch: Sequence[CallRecord]) -> list[SpendLogRow]:
        rows = []
        for record in batch:
            try:
                rows.append(to_row(record))
            except Exception:
                self._metrics.count_spend_rows("failed")
                self._log.exception("spend-log row not built", request_id=record.request_id)

        return rows

    async def _write_one_by_one(self, rows: Sequence[SpendLogRow]) -> None:
        for row in rows:
            try:
                await self._backend.insert_many([row])
            except Exception as exc:
                self._metrics.count_spend_rows("failed")
                # The driver's message may quote the value; log its type only.
                self._log.warning(
                    "spend-log row rejected", request_id=row[0], error=type(exc).__name__
                )
            else:
                self._metrics.count_spend_rows("written")
