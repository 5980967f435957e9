"""Pre-bound metric children that skip prometheus_client's per-call checks.

``Counter.inc`` and ``Histogram.observe`` validate their arguments and walk
the buckets on every call (~1 µs each); a recorded call touches a dozen
series. These wrappers hold the children's value objects (in memory, or the
mmapped slot file in a worker) and write them directly: an increment is one
float add (in a worker, plus one store into the mmap), an observation a
bisect plus two adds. ``inc`` is the value's own bound method, so a call is
one Python call, not two. Only the event loop's thread may call them.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable
from typing import Any, Protocol

from prometheus_client.samples import Exemplar

__all__ = ["Cell", "FastCounter", "FastHistogram", "Value"]


class Value(Protocol):
    """prometheus_client's value objects (MutexValue or an mmapped one)."""

    def inc(self, amount: float) -> None: ...

    def set_exemplar(self, exemplar: Exemplar) -> None: ...


class Cell:
    """An in-memory value written by the event loop's thread only.

    Replaces prometheus_client's MutexValue in a single process: the lock
    there costs more than the add. A scrape (another thread) reads one
    float, which the GIL keeps whole. Writes from a second thread could lose
    an increment; nothing in the service counts off the loop thread.
    """

    __slots__ = ("exemplar", "value")

    def __init__(self, value: float = 0.0) -> None:
        self.value = value
        self.exemplar: Exemplar | None = None

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def set(self, value: float, timestamp: float | None = None) -> None:
        self.value = value

    def get(self) -> float:
        return self.value

    def set_exemplar(self, exemplar: Exemplar) -> None:
        self.exemplar = exemplar

    def get_exemplar(self) -> Exemplar | None:
        return self.exemplar


def _own(value: Any) -> Any:
    # Multiprocess values write the worker's file and stay as they are.
    if getattr(value, "_multiprocess", False):
        return value
    return Cell(value.get())


def _incrementer(value: Any) -> Callable[..., None]:
    # A worker's slot values have a lock-free increment for the loop thread;
    # prometheus_client's own (other value classes) keep their locked one.
    inc: Callable[..., None] = getattr(value, "unlocked_inc", None) or value.inc
    return inc


class FastCounter:
    """A bound Counter child; ``inc()`` adds one, ``inc(n)`` adds n."""

    __slots__ = ("_value", "inc")

    def __init__(self, child: Any) -> None:
        self._value = child._value = _own(child._value)
        self.inc = _incrementer(self._value)


class FastHistogram:
    """A bound Histogram child; ``observe`` writes one bucket and the sum."""

    __slots__ = ("_bounds", "_buckets", "_incs", "_sum", "_sum_inc")

    def __init__(self, child: Any) -> None:
        self._bounds: list[float] = list(child._upper_bounds)
        child._buckets[:] = [_own(b) for b in child._buckets]  # non-cumulative
        self._buckets: list[Value] = child._buckets
        self._incs = [_incrementer(b) for b in self._buckets]
        self._sum: Value = _own(child._sum)
        child._sum = self._sum
        self._sum_inc = _incrementer(self._sum)

    def observe(self, seconds: float) -> None:
        self._incs[bisect_left(self._bounds, seconds)](1.0)
        self._sum_inc(seconds)

    def observe_traced(self, seconds: float, trace_id: str) -> None:
        """Observe and attach an OpenMetrics exemplar naming the trace."""
        index = bisect_left(self._bounds, seconds)
        self._incs[index](1.0)
        self._buckets[index].set_exemplar(
            Exemplar({"trace_id": trace_id}, seconds, time.time())
        )
        self._sum_inc(seconds)
