"""Server interceptors; the recording interceptor goes outermost."""

from __future__ import annotations

from service.api.interceptors.recording import (
    EXCLUDED_PREFIXES,
    REQUEST_ID_KEY,
    RecordingInterceptor,
)

__all__ = ["EXCLUDED_PREFIXES", "REQUEST_ID_KEY", "RecordingInterceptor"]
