"""Errors built from real google.rpc.Status messages, as the service makes them."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import code_pb2, status_pb2

from guardrail_client import (
    GuardrailRpcError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
    from_status_proto,
)
from service.api.status import to_status_proto
from service.errors import (
    FieldViolation,
    GuardrailDefinitionError,
)
from service.errors import NotFoundError as ServiceNotFound
from service.errors import UnavailableError as ServiceUnavailable


def test_invalid_argument_carries_reason_and_field_violations():
    """BadRequest field violations and the ErrorInfo reason are read out."""
    status = to_status_proto(
        GuardrailDefinitionError(
            "acme", [FieldViolation("rules[2].pattern", "missing ): ("), FieldViolation("name", "empty")]
        )
    )
    error = from_status_proto(status)
    assert isinstance(error, InvalidArgumentError)
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert error.reason == "INVALID_GUARDRAIL"
    assert error.field_violations == [("rules[2].pattern", "missing ): ("), ("name", "empty")]
    assert "acme" in error.message


def test_not_found_carries_resource_names():
    """ResourceInfo details give the unknown guardrail names."""
    error = from_status_proto(to_status_proto(ServiceNotFound("unknown", ["nope", "gone"])))
    assert isinstance(error, NotFoundError)
    assert error.resource_names == ["nope", "gone"]
    assert error.reason == "GUARDRAIL_NOT_FOUND"


def test_unavailable_carries_retry_delay():
    """RetryInfo becomes retry_after_s in seconds."""
    error = from_status_proto(to_status_proto(ServiceUnavailable("busy", retry_after_s=1.25)))
    assert isinstance(error, UnavailableError)
    assert error.retry_after_s == pytest.approx(1.25)


def test_details_are_json_able_dicts_with_type():
    """Each detail becomes a dict with its "@type", as MessageToDict writes it."""
    error = from_status_proto(to_status_proto(ServiceNotFound("unknown", ["nope"]), {"request_id": "r"}))
    types = [d["@type"] for d in error.details]
    assert types == [
        "type.googleapis.com/google.rpc.ErrorInfo",
        "type.googleapis.com/google.rpc.ResourceInfo",
    ]
    assert error.details[0]["domain"] == "guardrail.v1"
    assert error.details[0]["metadata"] == {"request_id": "r"}
    assert error.to_dict()["code"] == "NOT_FOUND"


def test_unknown_detail_type_keeps_its_type_url():
    """A detail of a type the client cannot decode is kept by its type URL."""
    status = status_pb2.Status(code=code_pb2.INTERNAL, message="x")
    detail = status.details.add()
    detail.type_url = "type.googleapis.com/acme.Unknown"
    detail.value = b"\x08\x01"
    error = from_status_proto(status)
    assert isinstance(error, InternalError)
    assert error.details == [{"@type": "type.googleapis.com/acme.Unknown"}]


def test_status_without_details_still_builds_the_subclass():
    """A bare status gives the subclass with empty detail fields."""
    error = from_status_proto(status_pb2.Status(code=code_pb2.DATA_LOSS, message="m"))
    assert type(error) is GuardrailRpcError
    assert error.code is grpc.StatusCode.DATA_LOSS
    assert (error.reason, error.field_violations, error.retry_after_s) == ("", [], None)
