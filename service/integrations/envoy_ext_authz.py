"""Envoy ``ext_authz``: allow or deny a chat request by its buffered body.

Envoy must be configured with ``with_request_body`` (and, for bodies with any
non-UTF-8 bytes, ``pack_as_bytes``). BLOCK → denied with 400 and an
OpenAI-style JSON error; ALLOW → ok. ext_authz cannot rewrite a body, so a
MASK verdict is allowed through with ``x-guardrail-decision: MASK`` on the
upstream request: use ext_proc where masking must happen.
"""

from __future__ import annotations

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2 as ea
from envoy.service.auth.v3 import external_auth_pb2_grpc as ea_grpc
from envoy.type.v3 import http_status_pb2
from google.rpc import code_pb2, status_pb2
from guardrail.v1 import guardrail_pb2 as pb

from service.api.call_context import current_call
from service.checking import Checker
from service.integrations._envoy_common import (
    EnvoyPolicy,
    ScanFailed,
    guardrail_names,
    headers_of,
    json_headers,
    note_failure,
    run_check,
)
from service.integrations.openai_bodies import (
    BodyError,
    UnscannableBody,
    error_body,
    parse_chat_body,
)

__all__ = ["SERVICE_NAME", "ExtAuthzServicer"]

SERVICE_NAME = ea.DESCRIPTOR.services_by_name["Authorization"].full_name
DECISION_HEADER = "x-guardrail-decision"


def _ok(decision: str, request_id: str) -> ea.CheckResponse:
    headers = [
        base_pb2.HeaderValueOption(
            header=base_pb2.HeaderValue(key=key, raw_value=value.encode())
        )
        for key, value in (
            (DECISION_HEADER, decision),
            ("x-guardrail-request-id", request_id),
        )
    ]
    return ea.CheckResponse(
        status=status_pb2.Status(code=code_pb2.OK),
        ok_response=ea.OkHttpResponse(headers=headers),
    )


def _denied(status: int, code: int, body: bytes, request_id: str) -> ea.CheckResponse:
    denied = ea.DeniedHttpResponse(
        status=http_status_pb2.HttpStatus(code=status),  # type: ignore[arg-type]
        headers=json_headers([("x-guardrail-request-id", request_id)]),
        body=body.decode(),
    )
    return ea.CheckResponse(status=status_pb2.Status(code=code), denied_response=denied)


def _request_headers(http: object) -> dict[str, str]:
    headers = headers_of(http.header_map)  # type: ignore[attr-defined]
    headers.update({k.lower(): v for k, v in http.headers.items()})  # type: ignore[attr-defined]
    return headers


class ExtAuthzServicer(ea_grpc.AuthorizationServicer):
    """``envoy.service.auth.v3.Authorization`` over our checker."""

    def __init__(self, checker: Checker, policy: EnvoyPolicy) -> None:
        self._checker = checker
        self._policy = policy

    async def Check(
        self, request: ea.CheckRequest, context: grpc.aio.ServicerContext
    ) -> ea.CheckResponse:
        http = request.attributes.request.http
        headers = _request_headers(http)
        raw = http.raw_body or http.body.encode()
        try:
            body = parse_chat_body(raw)
        except BodyError:
            return _ok("NOT_SCANNED", _request_id())  # not a chat request: not ours
        except UnscannableBody as exc:
            return self._failed(ScanFailed(exc.reason, str(exc)))
        if body.empty:
            return _ok("NOT_SCANNED", _request_id())
        check = pb.CheckRequest(
            payload=body.payload,
            direction=pb.DIRECTION_INPUT,
            guardrails=guardrail_names(headers),
            client_request_id=headers.get("x-request-id", "")[:128],
        )
        try:
            response = await run_check(self._checker, check, self._policy)
        except ScanFailed as failure:
            return self._failed(failure)
        return _verdict(response)

    def _failed(self, failure: ScanFailed) -> ea.CheckResponse:
        note_failure(failure, self._policy)
        if self._policy.fail_open:
            return _ok("FAILED_OPEN", _request_id())
        body = error_body(
            "The guardrail could not check this request.",
            code="guardrail_unavailable",
            kind="server_error",
        )
        return _denied(
            http_status_pb2.ServiceUnavailable,
            code_pb2.UNAVAILABLE,
            body,
            _request_id(),
        )


def _verdict(response: pb.CheckResponse) -> ea.CheckResponse:
    if response.decision != pb.DECISION_BLOCK:
        return _ok(
            pb.Decision.Name(response.decision).removeprefix("DECISION_"),
            response.request_id,
        )
    names = sorted(
        {f.guardrail for f in response.findings if f.action == pb.ACTION_BLOCK}
    )
    body = error_body(
        f"Blocked by guardrail: {', '.join(names) or 'policy'}",
        code="guardrail_blocked",
    )
    return _denied(
        http_status_pb2.BadRequest,
        code_pb2.PERMISSION_DENIED,
        body,
        response.request_id,
    )


def _request_id() -> str:
    record = current_call.get(None)
    return record.request_id if record is not None else ""
