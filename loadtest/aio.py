"""One way to run a coroutine to completion on uvloop (asyncio's loop without it)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["run_async"]

T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` with the loop the service uses, so client and server match."""
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:  # no Windows build; asyncio's loop works too
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)
