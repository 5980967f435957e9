"""A LiteLLM callback for the end-to-end test: what the model got, what was logged.

Appends one JSON line per finished call to $CAPTURE_FILE: the messages the
(mock) model received and LiteLLM's standard guardrail information.
"""

from __future__ import annotations

import json
import os

from litellm.integrations.custom_logger import CustomLogger


def _line(kwargs, status):
    slo = kwargs.get("standard_logging_object") or {}
    return {
        "status": status,
        "model": kwargs.get("model"),
        "messages": kwargs.get("messages"),
        "guardrail_information": slo.get("guardrail_information"),
        "metadata_guardrails": (slo.get("metadata") or {}).get("applied_guardrails"),
        "response": slo.get("response"),
    }


class Capture(CustomLogger):
    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        self._write(_line(kwargs, "success"))

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self._write(_line(kwargs, "failure"))

    @staticmethod
    def _write(line):
        with open(os.environ["CAPTURE_FILE"], "a", encoding="utf-8") as out:
            out.write(json.dumps(line, default=str) + "\n")


handler = Capture()
