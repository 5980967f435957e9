"""The record of the RPC in flight, shared by the interceptor and the servicer."""

from __future__ import annotations

from contextvars import ContextVar

from service.types import CallRecord

__all__ = ["current_call"]

#: Set by the recording interceptor at RPC entry; the servicer fills it in.
current_call: ContextVar[CallRecord] = ContextVar("guardrail_current_call")
