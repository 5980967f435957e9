"""The SpendLogs writer: one row per RPC, written in batches off the hot path.

``submit`` builds the row, appends it to this worker slot's write-ahead file
(one ``write(2)``, no fsync; see ``service.store.write_ahead``) so that it
outlives a killed process, and queues it in a bounded in-memory queue; it
never awaits. A background task writes batches by count, bytes and time,
and tells the write-ahead file which rows are stored, so it stays small:

* a transient failure (connection lost, timeout, lock, serialization) is
  retried with exponential backoff and jitter, then the batch spills to the
  local journal and the writer keeps journalling until the database is back;
  a replay task then feeds the journal to the database oldest first (inserts
  are idempotent on request_id, so a replay never duplicates a row);
* a permanent failure bisects the batch until the refused row is alone; it
  goes to the dead-letter file and is counted ``failed``, the rest are kept;
* a write that hangs longer than the write timeout counts as an outage, and
  while any write is in flight a half-full queue is spilled to the journal;
* a record that finds the queue full goes to an overflow list that a task
  journals in small batches, yielding between them, and the replay task
  later writes it. The overflow list is bounded too (as long as the queue):
  when the event loop is so starved that it fills, ``submit`` journals one
  batch itself, a pause of a few milliseconds for that one call, rather
  than drop or grow without bound.

Rows are lost only when the journal is full; they are counted ``dropped``
and logged with how many. A worker that starts in a slot first stores what
the slot's write-ahead file holds (rows a killed predecessor answered but
had not stored). A row that does not fit in the write-ahead file is counted
``not_durable`` and logged; it is still queued and written as usual.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TypeVar

from structlog.typing import FilteringBoundLogger

from service.settings import Settings
from service.store.backends import SpendLogBackend, open_backend
from service.store.dead_letters import DeadLetters
from service.store.errors import StoreRejected, StoreUnavailable
from service.store.journal import Journal, JournalBusy
from service.store.rows import SpendLogRow, row_bytes, to_row
from service.store.write_ahead import Segment, WriteAhead
from service.telemetry.logging import get_logger
from service.telemetry.metrics import Metrics
from service.types import CallRecord

__all__ = ["SpendLogWriter", "journal_directory", "to_row"]

DROP_WARNING_INTERVAL_S = 1.0
RETRY_ATTEMPTS = 3  # tries per batch before it spills to the journal
RETRY_BASE_S = 0.05  # first backoff; doubled per attempt, with jitter
PROBE_MAX_S = 5.0  # longest wait between two "is the database back?" probes
WATCH_INTERVAL_S = 0.05  # how often a slow write checks the queue
SLOW_WRITE_S = 0.5  # a write in flight this long may spill a half-full queue
MAINTENANCE_INTERVAL_S = 3600.0  # partitions ahead and retention
JOURNAL_SLOTS = 64  # worker processes that can each own a journal directory
OVERFLOW_CHUNK = 128  # overflow rows journalled per step before yielding the loop
T = TypeVar("T")
# A queued row and the write-ahead segment that holds it (None: not durable).
Queued = tuple[SpendLogRow, Segment | None]


def journal_directory(settings: Settings) -> Path:
    """The configured journal directory, or one beside the SQLite file."""
    if settings.spend_log_journal_path is not None:
        return settings.spend_log_journal_path
    url = settings.database_url.get_secret_value()
    if url.startswith("sqlite:///") and not url.endswith(":memory:"):
        return Path(url.removeprefix("sqlite:///") + ".journal")
    return Path("guardrail-journal")


def _open_journal(base: Path, max_bytes: int) -> Journal:
    # One directory per live process: each takes the first slot nobody holds,
    # and replays whatever an earlier process left there.
    for slot in range(JOURNAL_SLOTS):
        journal = Journal(base / f"slot-{slot}", max_bytes)
        try:
            journal.open()
        except JournalBusy:
            continue
        return journal
    raise JournalBusy(f"all {JOURNAL_SLOTS} journal slots under {base} are in use")


def _open_write_ahead(
    base: Path, slot: int, max_bytes: int, fsync: bool
) -> tuple[WriteAhead, list[Path]]:
    # The worker's own slot, so that its successor finds what it left. Taken
    # only when two servers of one slot share a directory (tests, a second
    # instance): then the first free spare.
    spares = [f"write-ahead-{slot}.{n}" for n in range(1, JOURNAL_SLOTS)]
    for name in [f"write-ahead-{slot}", *spares]:
        write_ahead = WriteAhead(base / name, max_bytes, fsync=fsync)
        try:
            left = write_ahead.open()
        except JournalBusy:
            continue
        return write_ahead, left
    raise JournalBusy(f"every write-ahead directory of slot {slot} in {base} is in use")


class SpendLogWriter:
    """Implements ``SpendLogSink``: never blocks, never raises into the RPC."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        *,
        backend: SpendLogBackend | None = None,
        table: str = "spend_logs",
        slot: int = 0,
    ) -> None:
        url = settings.database_url.get_secret_value()
        self._backend = backend or open_backend(url, table)
        self._settings = settings
        self._capacity = settings.spend_log_queue_size
        self._spill_at = max(1, settings.spend_log_queue_size // 2)
        self._batch_size = settings.spend_log_batch_size
        self._batch_bytes = settings.spend_log_batch_max_bytes
        self._cut_by_bytes = False  # the last batch stopped at the byte cap, rows left
        self._interval = settings.spend_log_flush_interval_s
        self._timeout = settings.spend_log_write_timeout_s
        self._store_content = settings.spend_log_store_content
        self._journal_base = journal_directory(settings)
        self._journal: Journal | None = None
        self._slot = slot
        self._write_ahead: WriteAhead | None = None
        self._dead: DeadLetters | None = None
        self._metrics = metrics
        self._log = get_logger("service.store.spend_logs")
        # A deque, not asyncio.Queue: append is cheaper than put_nowait, and
        # the writer is woken only when a batch is full, not on every row.
        self._pending: deque[Queued] = deque()
        # Rows that found the queue full, journalled by _overflow_loop.
        self._overflow: deque[Queued] = deque()
        self._overflow_wakeup = asyncio.Event()
        self._overflow_logged = 0.0
        self._accepted = 0
        self._finished = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._wakeup = asyncio.Event()
        self._replay_wakeup = asyncio.Event()
        self._db_lock = asyncio.Lock()
        self._db_ok = True
        self._replayed: dict[Path, int] = {}  # rows of a segment already replayed
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._drops = _DropReport(metrics, self._log)
        self._not_durable = _DropReport(
            metrics,
            self._log,
            "not_durable",
            "spend-log rows not made durable before the answer",
        )
        metrics.track_queue_depth(self.queue_depth)

    # -- the hot path ---------------------------------------------------------

    def queue_depth(self) -> float:
        return float(len(self._pending))

    def submit(self, record: CallRecord) -> None:
        """Make one record's row durable and queue it; a full queue overflows to
        the journal. Called before the answer goes, so the row outlives a kill."""
        try:
            row = to_row(record, store_content=self._store_content)
        except Exception:
            self._metrics.count_spend_rows("failed")
            self._log.exception("spend-log row not built", request_id=record.request_id)
            return
        queued = (row, self._make_durable(row))
        self._accepted += 1
        # Once anything overflows, later rows follow it, keeping their order.
        if self._overflow or len(self._pending) >= self._capacity:
            self._overflow.append(queued)
            self._overflow_wakeup.set()
            if len(self._overflow) > self._capacity and self._journal is not None:
                self._journal_overflow()  # the loop is starved: bound the memory
            return
        self._pending.append(queued)
        if len(self._pending) >= self._batch_size:
            self._wakeup.set()

    def _make_durable(self, row: SpendLogRow) -> Segment | None:
        write_ahead = self._write_ahead
        if write_ahead is None:
            return None  # not started (benchmarks), or turned off
        try:
            segment = write_ahead.append(row)
        except OSError as exc:  # a full or failing disk: the call still answers
            self._not_durable.add(1, f"write-ahead file: {type(exc).__name__}")
            return None
        if segment is None:
            self._not_durable.add(1, "write-ahead file full")
        return segment

    # -- life cycle -----------------------------------------------------------

    async def start(self) -> None:
        """Open the journal and the database, then start the background tasks.

        An unreachable database does not stop start-up: rows are journalled
        until it answers. A database that refuses us (bad credentials, a
        failed migration) does.
        """
        max_bytes = self._settings.spend_log_journal_max_bytes
        self._journal = journal = _open_journal(self._journal_base, max_bytes)
        self._dead = DeadLetters(journal.directory / "dead-letter.jsonl", max_bytes)
        left: list[Path] = []
        try:
            left = self._open_write_ahead()
            async with asyncio.timeout(self._timeout):
                await self._backend.open()
        except (StoreUnavailable, TimeoutError) as exc:
            self._db_ok = False
            self._log.warning("spend-log database unreachable; journalling", error=_name(exc))
        except BaseException:
            journal.close()
            if self._write_ahead is not None:
                self._write_ahead.close()
            raise
        # Before serving: what a killed predecessor in this slot answered.
        await self._replay_write_ahead(left)
        self._tasks = [
            asyncio.create_task(self._run(), name="spend-log-writer"),
            asyncio.create_task(self._replay_loop(), name="spend-log-replay"),
            asyncio.create_task(self._maintenance_loop(), name="spend-log-maintenance"),
            asyncio.create_task(self._overflow_loop(), name="spend-log-overflow"),
        ]
        if self._journal.pending or not self._db_ok:
            self._replay_wakeup.set()

    def _open_write_ahead(self) -> list[Path]:
        """Take this slot's write-ahead file; the files left to replay."""
        max_bytes = self._settings.spend_log_write_ahead_max_bytes
        if max_bytes == 0:
            return []
        fsync = self._settings.spend_log_write_ahead_fsync
        self._write_ahead, left = _open_write_ahead(
            self._journal_base, self._slot, max_bytes, fsync
        )
        return left

    async def _replay_write_ahead(self, left: list[Path]) -> None:
        """Store the rows an earlier process of this slot answered but did not store.

        Inserts are idempotent, so rows it had stored already are skipped; with
        the database away they go to the journal, like any other row.
        """
        for path in left:
            rows, bad_bytes = WriteAhead.read(path)
            if not rows and not bad_bytes:  # every row was stored
                WriteAhead.discard(path)
                continue
            if bad_bytes:
                # A write cut by the kill: its call had not been answered.
                self._log.warning(
                    "spend-log write-ahead file has a torn tail",
                    file=str(path),
                    bad_bytes=bad_bytes,
                    rows=len(rows),
                )
            for start in range(0, len(rows), self._batch_size):
                await self._store(rows[start : start + self._batch_size])
            WriteAhead.discard(path)
            # Only an unclean exit leaves rows: worth a warning.
            self._log.warning(
                "spend-log write-ahead rows replayed", file=str(path), rows=len(rows)
            )

    async def flush(self) -> None:
        """Wait until every record submitted so far is written, journalled or failed."""
        target = self._accepted
        if self._finished >= target:
            return
        if not self._tasks or self._tasks[0].done():
            raise RuntimeError("SpendLogWriter is not running; call start() first")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, waiter))
        self._wakeup.set()
        self._overflow_wakeup.set()
        await waiter

    async def wait_replayed(self, poll_s: float = 0.05) -> None:
        """Wait until the queue is flushed and the journal replayed (for tests)."""
        await self.flush()
        while self._journal is not None and self._journal.pending:
            self._replay_wakeup.set()
            await asyncio.sleep(poll_s)

    @property
    def journal_bytes(self) -> int:
        return self._journal.size_bytes if self._journal is not None else 0

    async def aclose(self) -> None:
        """Write or journal every queued row, stop the tasks, close the database.

        Rows still journalled are replayed by the next process that starts.
        """
        if self._tasks:
            self._closing = True
            self._wakeup.set()
            self._overflow_wakeup.set()
            writer, overflow = self._tasks[0], self._tasks[-1]
            await writer
            await overflow  # journals what overflowed, then ends
            for task in self._tasks[1:-1]:
                task.cancel()
            await asyncio.gather(*self._tasks[1:-1], return_exceptions=True)
            self._tasks = []
        self._drops.report()
        self._not_durable.report()
        if self._write_ahead is not None:
            self._write_ahead.close()  # every row is stored or journalled: nothing left
        if self._journal is not None:
            self._journal.close()
        if self._dead is not None:
            self._dead.close()
        await self._backend.close()

    # -- the writer task ------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if len(self._pending) < self._batch_size and not self._closing:
                await self._sleep()
            if not self._pending and self._closing:
                return
            try:
                await self._drain()
            except Exception:  # a bug here must not stop recording
                self._log.exception("spend-log writer failed; continuing")

    async def _sleep(self) -> None:
        try:
            async with asyncio.timeout(self._interval):
                await self._wakeup.wait()
        except TimeoutError:
            pass
        self._wakeup.clear()

    async def _drain(self) -> None:
        while self._pending:
            batch = self._take_batch()
            try:
                await self._store([row for row, _ in batch])
                self._settle(batch)  # not after a bug: a restart replays them
            finally:
                self._done(len(batch))
            if not self._drain_on():
                return

    def _drain_on(self) -> bool:
        """Whether to store what queued meanwhile now, rather than after a wait.

        Storing a batch takes milliseconds; going straight on would store
        the few rows that queued meanwhile, and then the few after those:
        under steady load, batches of a handful of rows, each paying a whole
        transaction. A part batch waits for the flush interval instead; a
        full one (by count, or by bytes: the last batch stopped at the byte
        cap with rows left behind it) goes at once.
        """
        return (
            self._closing
            or bool(self._waiters)
            or self._cut_by_bytes
            or len(self._pending) >= self._batch_size
        )

    def _take_batch(self) -> list[Queued]:
        """Up to batch-size rows, or fewer when their text reaches the byte cap."""
        batch: list[Queued] = []
        size = 0
        pending, most = self._pending, self._batch_size
        while pending and len(batch) < most and size < self._batch_bytes:
            queued = pending.popleft()
            batch.append(queued)
            size += row_bytes(queued[0])
        self._cut_by_bytes = bool(pending) and size >= self._batch_bytes
        return batch

    def _settle(self, batch: list[Queued]) -> None:
        """Tell the write-ahead file these rows are stored, journalled or counted."""
        write_ahead = self._write_ahead
        if write_ahead is None:
            return
        # Neighbours share a segment: one call per run of them.
        segment, count = None, 0
        for _, each in batch:
            if each is not segment:
                if segment is not None:
                    write_ahead.settle(segment, count)
                segment, count = each, 0
            count += 1
        if segment is not None:
            write_ahead.settle(segment, count)

    def _done(self, count: int) -> None:
        self._finished += count
        still_waiting = []
        for target, waiter in self._waiters:
            if self._finished < target:
                still_waiting.append((target, waiter))
            elif not waiter.done():
                waiter.set_result(None)
        self._waiters = still_waiting

    async def _store(self, rows: list[SpendLogRow]) -> None:
        if not rows:
            return
        journal = self._journal
        # While anything waits in the journal, new rows queue up behind it.
        if not self._db_ok or (journal is not None and journal.pending):
            self._spill(rows)
            return
        try:
            await self._watching_queue(self._write(rows))
        except StoreUnavailable as exc:
            self._outage(exc)
            self._spill(rows)

    async def _watching_queue(self, work: Awaitable[T]) -> T:
        """Await a write; meanwhile, spill the queue to the journal if it fills."""
        task = asyncio.ensure_future(work)
        started = time.monotonic()
        while True:
            done, _ = await asyncio.wait({task}, timeout=WATCH_INTERVAL_S)
            if done:
                return task.result()
            # Only a slow write spills: a backlog behind fast writes is load,
            # and journalling it would cost more than writing it.
            slow = time.monotonic() - started >= SLOW_WRITE_S
            if slow and len(self._pending) >= self._spill_at:
                self._spill_queue()

    def _spill_queue(self) -> None:
        batch = list(self._pending)
        self._pending.clear()
        self._log.warning(
            "spend-log writes are slow; queue spilled to journal", rows=len(batch)
        )
        self._spill([row for row, _ in batch])
        self._settle(batch)
        self._done(len(batch))

    def _spill(self, rows: Sequence[SpendLogRow]) -> None:
        journal = self._journal
        taken = journal.append(rows) if journal is not None else 0
        if taken < len(rows):
            self._drops.add(len(rows) - taken, "journal full")
        self._replay_wakeup.set()

    def _outage(self, exc: BaseException) -> None:
        if self._db_ok:
            self._log.warning("spend-log database unavailable; journalling", error=_name(exc))
        self._db_ok = False
        self._replay_wakeup.set()

    # -- the overflow path ---------------------------------------------------

    async def _overflow_loop(self) -> None:
        while True:
            if not self._overflow:
                if self._closing:
                    return
                await self._overflow_wakeup.wait()
                self._overflow_wakeup.clear()
                continue
            try:
                self._journal_overflow()
            except Exception:  # a bug here must not stop recording
                self._log.exception("spend-log overflow failed; continuing")
            await asyncio.sleep(0)  # let RPCs run between two batches

    def _journal_overflow(self) -> None:
        """Journal up to one chunk of overflowing rows, oldest first."""
        batch: list[Queued] = []
        while self._overflow and len(batch) < OVERFLOW_CHUNK:
            batch.append(self._overflow.popleft())
        self._spill([row for row, _ in batch])
        self._settle(batch)
        taken = len(batch)
        self._done(taken)
        if time.monotonic() - self._overflow_logged >= DROP_WARNING_INTERVAL_S:
            self._overflow_logged = time.monotonic()
            self._log.warning("spend-log queue full; rows overflow to the journal",
                              rows=taken, still_waiting=len(self._overflow))  # fmt: skip

    # -- writing one batch ----------------------------------------------------

    async def _write(self, rows: list[SpendLogRow]) -> None:
        """Insert with retries; bisect on a permanent error. Raises StoreUnavailable."""
        try:
            await self._retrying(lambda: self._insert(rows), attempts=self._attempts())
        except StoreRejected:
            await self._isolate(rows)
        else:
            self._metrics.count_spend_rows("written", len(rows))

    def _attempts(self) -> int:
        return 1 if self._closing else RETRY_ATTEMPTS  # closing: journal, don't wait

    async def _insert(self, rows: Sequence[SpendLogRow]) -> None:
        async with self._db_lock:
            try:
                async with asyncio.timeout(self._timeout):
                    await self._backend.insert_many(rows)
            except TimeoutError as exc:
                raise StoreUnavailable("TimeoutError") from exc

    async def _retrying(self, call: Callable[[], Awaitable[None]], attempts: int) -> None:
        delay = RETRY_BASE_S
        for attempt in range(1, attempts + 1):
            try:
                await call()
                return
            except StoreUnavailable:
                if attempt == attempts:
                    raise
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            delay *= 2

    async def _isolate(self, rows: list[SpendLogRow]) -> None:
        """Bisect a refused batch: keep every good row, dead-letter the bad ones."""
        middle = len(rows) // 2
        for half in (rows[:middle], rows[middle:]):
            if not half:
                continue
            try:
                await self._retrying(lambda h=half: self._insert(h), attempts=self._attempts())
            except StoreRejected as exc:
                if len(half) == 1:
                    self._dead_letter(half[0], exc.reason)
                else:
                    await self._isolate(half)
            else:
                self._metrics.count_spend_rows("written", len(half))

    def _dead_letter(self, row: SpendLogRow, reason: str) -> None:
        kept = self._dead is not None and self._dead.add(row, reason)
        self._metrics.count_spend_rows("failed")
        self._log.warning(
            "spend-log row refused by the database",
            request_id=row[0],
            reason=reason,
            dead_letter=str(self._dead.path) if kept and self._dead else "full",
        )

    # -- replay and maintenance -----------------------------------------------

    async def _replay_loop(self) -> None:
        backoff = RETRY_BASE_S
        while True:
            await self._replay_wakeup.wait()
            self._replay_wakeup.clear()
            while self._journal is not None and self._journal.pending:
                if await self._replay_step():
                    backoff = RETRY_BASE_S
                    continue
                await asyncio.sleep(backoff * random.uniform(0.5, 1.5))
                backoff = min(backoff * 2, PROBE_MAX_S)

    async def _replay_step(self) -> bool:
        """Probe or replay one segment; False when the database is still away."""
        try:
            if not self._db_ok:
                async with self._db_lock, asyncio.timeout(self._timeout):
                    await self._backend.open()  # reconnects and migrates
                self._db_ok = True
                self._log.info("spend-log database reachable again; replaying journal")
            await self._replay_segment()
        except (StoreUnavailable, TimeoutError) as exc:
            self._outage(exc)
            return False
        return True

    async def _replay_segment(self) -> None:
        journal = self._journal
        path = journal.oldest() if journal is not None else None
        if journal is None or path is None:
            return
        rows, bad_bytes = journal.read(path)
        if bad_bytes:
            self._log.warning("spend-log journal segment has a torn or corrupt tail",
                              segment=path.name, bad_bytes=bad_bytes, rows=len(rows))  # fmt: skip
            self._metrics.count_spend_rows("dropped")  # at least one row is gone
        # Resume where a failed attempt stopped: a re-insert would be harmless
        # (idempotent) but would count the rows twice.
        first = self._replayed.get(path, 0)
        for start in range(first, len(rows), self._batch_size):
            await self._write(rows[start : start + self._batch_size])
            self._replayed[path] = start + self._batch_size
        journal.remove(path)
        self._replayed.pop(path, None)
        self._log.info("spend-log journal segment replayed", segment=path.name, rows=len(rows))

    async def _maintenance_loop(self) -> None:
        while True:
            if self._db_ok:
                await self._maintain()
            await asyncio.sleep(MAINTENANCE_INTERVAL_S)

    async def _maintain(self) -> None:
        now = datetime.now(UTC)
        days = self._settings.spend_log_retention_days
        try:
            async with self._db_lock, asyncio.timeout(self._timeout * 4):
                await self._backend.ensure_partitions(now)
                removed = await self._backend.apply_retention(days, now)
        except (StoreUnavailable, StoreRejected, TimeoutError) as exc:
            self._log.warning("spend-log maintenance failed", error=_name(exc))
            return
        if removed:
            self._log.info("spend-log retention applied", removed=removed, days=days)


class _DropReport:
    """Counts rows at once (as dropped, by default); logs them at most once a second."""

    def __init__(
        self,
        metrics: Metrics,
        log: FilteringBoundLogger,
        result: str = "dropped",
        message: str = "spend-log rows dropped",
    ) -> None:
        self._count: Callable[[int], None]
        if result == "dropped":
            self._count = partial(metrics.count_spend_rows, result)
        else:  # not one of the results Metrics binds ahead: the labelled child
            self._count = metrics.spend_rows.labels(result).inc
        self._log = log
        self._result = result
        self._message = message
        self._unreported: dict[str, int] = {}
        self._last = 0.0

    def add(self, count: int, why: str) -> None:
        self._count(count)
        self._unreported[why] = self._unreported.get(why, 0) + count
        if time.monotonic() - self._last >= DROP_WARNING_INTERVAL_S:
            self.report()

    def report(self) -> None:
        for why, count in self._unreported.items():
            self._log.warning(self._message, **{self._result: count}, reason=why)
        self._unreported.clear()
        self._last = time.monotonic()


def _name(exc: BaseException) -> str:
    return exc.reason if isinstance(exc, StoreUnavailable | StoreRejected) else type(exc).__name__
