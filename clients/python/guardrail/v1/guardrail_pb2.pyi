import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.rpc import status_pb2 as _status_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Direction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DIRECTION_UNSPECIFIED: _ClassVar[Direction]
    DIRECTION_INPUT: _ClassVar[Direction]
    DIRECTION_OUTPUT: _ClassVar[Direction]
    DIRECTION_TOOL_DESCRIPTION: _ClassVar[Direction]
    DIRECTION_TOOL_RESULT: _ClassVar[Direction]

class Decision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECISION_UNSPECIFIED: _ClassVar[Decision]
    DECISION_ALLOW: _ClassVar[Decision]
    DECISION_MASK: _ClassVar[Decision]
    DECISION_BLOCK: _ClassVar[Decision]
    DECISION_FLAG: _ClassVar[Decision]

class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACTION_UNSPECIFIED: _ClassVar[Action]
    ACTION_BLOCK: _ClassVar[Action]
    ACTION_MASK: _ClassVar[Action]
    ACTION_FLAG: _ClassVar[Action]

class Severity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEVERITY_UNSPECIFIED: _ClassVar[Severity]
    SEVERITY_LOW: _ClassVar[Severity]
    SEVERITY_MEDIUM: _ClassVar[Severity]
    SEVERITY_HIGH: _ClassVar[Severity]
    SEVERITY_CRITICAL: _ClassVar[Severity]

class GuardrailStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GUARDRAIL_STATUS_UNSPECIFIED: _ClassVar[GuardrailStatus]
    GUARDRAIL_STATUS_PASSED: _ClassVar[GuardrailStatus]
    GUARDRAIL_STATUS_INTERVENED: _ClassVar[GuardrailStatus]
    GUARDRAIL_STATUS_FAILED_OPEN: _ClassVar[GuardrailStatus]
    GUARDRAIL_STATUS_NOT_RUN: _ClassVar[GuardrailStatus]

class FailMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAIL_MODE_UNSPECIFIED: _ClassVar[FailMode]
    FAIL_MODE_OPEN: _ClassVar[FailMode]
    FAIL_MODE_CLOSED: _ClassVar[FailMode]

class GuardrailMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GUARDRAIL_MODE_UNSPECIFIED: _ClassVar[GuardrailMode]
    GUARDRAIL_MODE_ENFORCE: _ClassVar[GuardrailMode]
    GUARDRAIL_MODE_MONITOR: _ClassVar[GuardrailMode]
    GUARDRAIL_MODE_DRY_RUN: _ClassVar[GuardrailMode]

class GuardrailChangeAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GUARDRAIL_CHANGE_ACTION_UNSPECIFIED: _ClassVar[GuardrailChangeAction]
    GUARDRAIL_CHANGE_ACTION_CREATE: _ClassVar[GuardrailChangeAction]
    GUARDRAIL_CHANGE_ACTION_UPDATE: _ClassVar[GuardrailChangeAction]
    GUARDRAIL_CHANGE_ACTION_OVERRIDE: _ClassVar[GuardrailChangeAction]
    GUARDRAIL_CHANGE_ACTION_DELETE: _ClassVar[GuardrailChangeAction]
DIRECTION_UNSPECIFIED: Direction
DIRECTION_INPUT: Direction
DIRECTION_OUTPUT: Direction
DIRECTION_TOOL_DESCRIPTION: Direction
DIRECTION_TOOL_RESULT: Direction
DECISION_UNSPECIFIED: Decision
DECISION_ALLOW: Decision
DECISION_MASK: Decision
DECISION_BLOCK: Decision
DECISION_FLAG: Decision
ACTION_UNSPECIFIED: Action
ACTION_BLOCK: Action
ACTION_MASK: Action
ACTION_FLAG: Action
SEVERITY_UNSPECIFIED: Severity
SEVERITY_LOW: Severity
SEVERITY_MEDIUM: Severity
SEVERITY_HIGH: Severity
SEVERITY_CRITICAL: Severity
GUARDRAIL_STATUS_UNSPECIFIED: GuardrailStatus
GUARDRAIL_STATUS_PASSED: GuardrailStatus
GUARDRAIL_STATUS_INTERVENED: GuardrailStatus
GUARDRAIL_STATUS_FAILED_OPEN: GuardrailStatus
GUARDRAIL_STATUS_NOT_RUN: GuardrailStatus
FAIL_MODE_UNSPECIFIED: FailMode
FAIL_MODE_OPEN: FailMode
FAIL_MODE_CLOSED: FailMode
GUARDRAIL_MODE_UNSPECIFIED: GuardrailMode
GUARDRAIL_MODE_ENFORCE: GuardrailMode
GUARDRAIL_MODE_MONITOR: GuardrailMode
GUARDRAIL_MODE_DRY_RUN: GuardrailMode
GUARDRAIL_CHANGE_ACTION_UNSPECIFIED: GuardrailChangeAction
GUARDRAIL_CHANGE_ACTION_CREATE: GuardrailChangeAction
GUARDRAIL_CHANGE_ACTION_UPDATE: GuardrailChangeAction
GUARDRAIL_CHANGE_ACTION_OVERRIDE: GuardrailChangeAction
GUARDRAIL_CHANGE_ACTION_DELETE: GuardrailChangeAction

class Payload(_message.Message):
    __slots__ = ("text", "messages", "tools")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    text: str
    messages: _containers.RepeatedCompositeFieldContainer[Message]
    tools: _containers.RepeatedCompositeFieldContainer[ToolDefinition]
    def __init__(self, text: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[Message, _Mapping]]] = ..., tools: _Optional[_Iterable[_Union[ToolDefinition, _Mapping]]] = ...) -> None: ...

class Message(_message.Message):
    __slots__ = ("role", "content", "tool_calls", "tool_call_id", "name")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    role: str
    content: _containers.RepeatedCompositeFieldContainer[ContentPart]
    tool_calls: _containers.RepeatedCompositeFieldContainer[ToolCall]
    tool_call_id: str
    name: str
    def __init__(self, role: _Optional[str] = ..., content: _Optional[_Iterable[_Union[ContentPart, _Mapping]]] = ..., tool_calls: _Optional[_Iterable[_Union[ToolCall, _Mapping]]] = ..., tool_call_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ContentPart(_message.Message):
    __slots__ = ("text", "image_url")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URL_FIELD_NUMBER: _ClassVar[int]
    text: str
    image_url: str
    def __init__(self, text: _Optional[str] = ..., image_url: _Optional[str] = ...) -> None: ...

class ToolCall(_message.Message):
    __slots__ = ("id", "name", "arguments_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    arguments_json: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., arguments_json: _Optional[str] = ...) -> None: ...

class ToolDefinition(_message.Message):
    __slots__ = ("name", "description", "input_schema_json", "server")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    INPUT_SCHEMA_JSON_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    input_schema_json: str
    server: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., input_schema_json: _Optional[str] = ..., server: _Optional[str] = ...) -> None: ...

class Caller(_message.Message):
    __slots__ = ("user", "team_id", "end_user", "session_id", "request_tags")
    USER_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    END_USER_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_TAGS_FIELD_NUMBER: _ClassVar[int]
    user: str
    team_id: str
    end_user: str
    session_id: str
    request_tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, user: _Optional[str] = ..., team_id: _Optional[str] = ..., end_user: _Optional[str] = ..., session_id: _Optional[str] = ..., request_tags: _Optional[_Iterable[str]] = ...) -> None: ...

class CheckRequest(_message.Message):
    __slots__ = ("payload", "direction", "guardrails", "client_request_id", "caller")
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    GUARDRAILS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    payload: Payload
    direction: Direction
    guardrails: _containers.RepeatedScalarFieldContainer[str]
    client_request_id: str
    caller: Caller
    def __init__(self, payload: _Optional[_Union[Payload, _Mapping]] = ..., direction: _Optional[_Union[Direction, str]] = ..., guardrails: _Optional[_Iterable[str]] = ..., client_request_id: _Optional[str] = ..., caller: _Optional[_Union[Caller, _Mapping]] = ...) -> None: ...

class Location(_message.Message):
    __slots__ = ("path", "json_pointer", "start", "end")
    PATH_FIELD_NUMBER: _ClassVar[int]
    JSON_POINTER_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    path: str
    json_pointer: str
    start: int
    end: int
    def __init__(self, path: _Optional[str] = ..., json_pointer: _Optional[str] = ..., start: _Optional[int] = ..., end: _Optional[int] = ...) -> None: ...

class Finding(_message.Message):
    __slots__ = ("guardrail", "rule_id", "category", "severity", "action", "location", "redacted_preview", "decoded")
    GUARDRAIL_FIELD_NUMBER: _ClassVar[int]
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    REDACTED_PREVIEW_FIELD_NUMBER: _ClassVar[int]
    DECODED_FIELD_NUMBER: _ClassVar[int]
    guardrail: str
    rule_id: str
    category: str
    severity: Severity
    action: Action
    location: Location
    redacted_preview: str
    decoded: bool
    def __init__(self, guardrail: _Optional[str] = ..., rule_id: _Optional[str] = ..., category: _Optional[str] = ..., severity: _Optional[_Union[Severity, str]] = ..., action: _Optional[_Union[Action, str]] = ..., location: _Optional[_Union[Location, _Mapping]] = ..., redacted_preview: _Optional[str] = ..., decoded: _Optional[bool] = ...) -> None: ...

class GuardrailResult(_message.Message):
    __slots__ = ("name", "version", "status", "reason", "finding_count", "action", "score", "mode", "fail_mode")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FINDING_COUNT_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    FAIL_MODE_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    status: GuardrailStatus
    reason: str
    finding_count: int
    action: Action
    score: float
    mode: GuardrailMode
    fail_mode: FailMode
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., status: _Optional[_Union[GuardrailStatus, str]] = ..., reason: _Optional[str] = ..., finding_count: _Optional[int] = ..., action: _Optional[_Union[Action, str]] = ..., score: _Optional[float] = ..., mode: _Optional[_Union[GuardrailMode, str]] = ..., fail_mode: _Optional[_Union[FailMode, str]] = ...) -> None: ...

class CheckResponse(_message.Message):
    __slots__ = ("request_id", "decision", "findings", "guardrail_results", "masked_payload", "registry_generation", "scan_duration", "applied_guardrails", "no_guardrails", "policy_layers", "dry_run_decision")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    GUARDRAIL_RESULTS_FIELD_NUMBER: _ClassVar[int]
    MASKED_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_GENERATION_FIELD_NUMBER: _ClassVar[int]
    SCAN_DURATION_FIELD_NUMBER: _ClassVar[int]
    APPLIED_GUARDRAILS_FIELD_NUMBER: _ClassVar[int]
    NO_GUARDRAILS_FIELD_NUMBER: _ClassVar[int]
    POLICY_LAYERS_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_DECISION_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    decision: Decision
    findings: _containers.RepeatedCompositeFieldContainer[Finding]
    guardrail_results: _containers.RepeatedCompositeFieldContainer[GuardrailResult]
    masked_payload: Payload
    registry_generation: int
    scan_duration: _duration_pb2.Duration
    applied_guardrails: _containers.RepeatedScalarFieldContainer[str]
    no_guardrails: bool
    policy_layers: _containers.RepeatedScalarFieldContainer[str]
    dry_run_decision: Decision
    def __init__(self, request_id: _Optional[str] = ..., decision: _Optional[_Union[Decision, str]] = ..., findings: _Optional[_Iterable[_Union[Finding, _Mapping]]] = ..., guardrail_results: _Optional[_Iterable[_Union[GuardrailResult, _Mapping]]] = ..., masked_payload: _Optional[_Union[Payload, _Mapping]] = ..., registry_generation: _Optional[int] = ..., scan_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., applied_guardrails: _Optional[_Iterable[str]] = ..., no_guardrails: _Optional[bool] = ..., policy_layers: _Optional[_Iterable[str]] = ..., dry_run_decision: _Optional[_Union[Decision, str]] = ...) -> None: ...

class CheckStreamRequest(_message.Message):
    __slots__ = ("open", "chunk", "end")
    OPEN_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    open: StreamOpen
    chunk: StreamChunk
    end: StreamEnd
    def __init__(self, open: _Optional[_Union[StreamOpen, _Mapping]] = ..., chunk: _Optional[_Union[StreamChunk, _Mapping]] = ..., end: _Optional[_Union[StreamEnd, _Mapping]] = ...) -> None: ...

class StreamOpen(_message.Message):
    __slots__ = ("direction", "guardrails", "client_request_id", "caller")
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    GUARDRAILS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    direction: Direction
    guardrails: _containers.RepeatedScalarFieldContainer[str]
    client_request_id: str
    caller: Caller
    def __init__(self, direction: _Optional[_Union[Direction, str]] = ..., guardrails: _Optional[_Iterable[str]] = ..., client_request_id: _Optional[str] = ..., caller: _Optional[_Union[Caller, _Mapping]] = ...) -> None: ...

class StreamChunk(_message.Message):
    __slots__ = ("text", "choice_index", "tool_calls", "finish_reason", "choices")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CHOICE_INDEX_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    CHOICES_FIELD_NUMBER: _ClassVar[int]
    text: str
    choice_index: int
    tool_calls: _containers.RepeatedCompositeFieldContainer[ToolCallDelta]
    finish_reason: str
    choices: _containers.RepeatedCompositeFieldContainer[ChoiceDelta]
    def __init__(self, text: _Optional[str] = ..., choice_index: _Optional[int] = ..., tool_calls: _Optional[_Iterable[_Union[ToolCallDelta, _Mapping]]] = ..., finish_reason: _Optional[str] = ..., choices: _Optional[_Iterable[_Union[ChoiceDelta, _Mapping]]] = ...) -> None: ...

class ChoiceDelta(_message.Message):
    __slots__ = ("index", "text", "tool_calls", "finish_reason")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    index: int
    text: str
    tool_calls: _containers.RepeatedCompositeFieldContainer[ToolCallDelta]
    finish_reason: str
    def __init__(self, index: _Optional[int] = ..., text: _Optional[str] = ..., tool_calls: _Optional[_Iterable[_Union[ToolCallDelta, _Mapping]]] = ..., finish_reason: _Optional[str] = ...) -> None: ...

class ToolCallDelta(_message.Message):
    __slots__ = ("index", "id", "name", "arguments_fragment")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FRAGMENT_FIELD_NUMBER: _ClassVar[int]
    index: int
    id: str
    name: str
    arguments_fragment: str
    def __init__(self, index: _Optional[int] = ..., id: _Optional[str] = ..., name: _Optional[str] = ..., arguments_fragment: _Optional[str] = ...) -> None: ...

class StreamEnd(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CheckStreamResponse(_message.Message):
    __slots__ = ("release", "verdict", "tool_call")
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_FIELD_NUMBER: _ClassVar[int]
    release: StreamRelease
    verdict: StreamVerdict
    tool_call: StreamToolCall
    def __init__(self, release: _Optional[_Union[StreamRelease, _Mapping]] = ..., verdict: _Optional[_Union[StreamVerdict, _Mapping]] = ..., tool_call: _Optional[_Union[StreamToolCall, _Mapping]] = ...) -> None: ...

class StreamRelease(_message.Message):
    __slots__ = ("choice_index", "text", "findings")
    CHOICE_INDEX_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    choice_index: int
    text: str
    findings: _containers.RepeatedCompositeFieldContainer[Finding]
    def __init__(self, choice_index: _Optional[int] = ..., text: _Optional[str] = ..., findings: _Optional[_Iterable[_Union[Finding, _Mapping]]] = ...) -> None: ...

class StreamVerdict(_message.Message):
    __slots__ = ("request_id", "decision", "findings", "guardrail_results", "registry_generation", "chunk_count", "applied_guardrails", "holdback_chars", "capped_rules", "stream_bytes", "no_guardrails", "policy_layers", "dry_run_decision")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    GUARDRAIL_RESULTS_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_GENERATION_FIELD_NUMBER: _ClassVar[int]
    CHUNK_COUNT_FIELD_NUMBER: _ClassVar[int]
    APPLIED_GUARDRAILS_FIELD_NUMBER: _ClassVar[int]
    HOLDBACK_CHARS_FIELD_NUMBER: _ClassVar[int]
    CAPPED_RULES_FIELD_NUMBER: _ClassVar[int]
    STREAM_BYTES_FIELD_NUMBER: _ClassVar[int]
    NO_GUARDRAILS_FIELD_NUMBER: _ClassVar[int]
    POLICY_LAYERS_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_DECISION_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    decision: Decision
    findings: _containers.RepeatedCompositeFieldContainer[Finding]
    guardrail_results: _containers.RepeatedCompositeFieldContainer[GuardrailResult]
    registry_generation: int
    chunk_count: int
    applied_guardrails: _containers.RepeatedScalarFieldContainer[str]
    holdback_chars: int
    capped_rules: _containers.RepeatedScalarFieldContainer[str]
    stream_bytes: int
    no_guardrails: bool
    policy_layers: _containers.RepeatedScalarFieldContainer[str]
    dry_run_decision: Decision
    def __init__(self, request_id: _Optional[str] = ..., decision: _Optional[_Union[Decision, str]] = ..., findings: _Optional[_Iterable[_Union[Finding, _Mapping]]] = ..., guardrail_results: _Optional[_Iterable[_Union[GuardrailResult, _Mapping]]] = ..., registry_generation: _Optional[int] = ..., chunk_count: _Optional[int] = ..., applied_guardrails: _Optional[_Iterable[str]] = ..., holdback_chars: _Optional[int] = ..., capped_rules: _Optional[_Iterable[str]] = ..., stream_bytes: _Optional[int] = ..., no_guardrails: _Optional[bool] = ..., policy_layers: _Optional[_Iterable[str]] = ..., dry_run_decision: _Optional[_Union[Decision, str]] = ...) -> None: ...

class StreamToolCall(_message.Message):
    __slots__ = ("choice_index", "index", "id", "name", "arguments_json", "masked", "findings")
    CHOICE_INDEX_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_JSON_FIELD_NUMBER: _ClassVar[int]
    MASKED_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    choice_index: int
    index: int
    id: str
    name: str
    arguments_json: str
    masked: bool
    findings: _containers.RepeatedCompositeFieldContainer[Finding]
    def __init__(self, choice_index: _Optional[int] = ..., index: _Optional[int] = ..., id: _Optional[str] = ..., name: _Optional[str] = ..., arguments_json: _Optional[str] = ..., masked: _Optional[bool] = ..., findings: _Optional[_Iterable[_Union[Finding, _Mapping]]] = ...) -> None: ...

class Guardrail(_message.Message):
    __slots__ = ("name", "description", "rules", "action", "directions", "default_on", "fail_mode", "score_threshold", "version", "builtin", "disabled", "source", "updated_at", "mode")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    DIRECTIONS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_ON_FIELD_NUMBER: _ClassVar[int]
    FAIL_MODE_FIELD_NUMBER: _ClassVar[int]
    SCORE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BUILTIN_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    rules: _containers.RepeatedCompositeFieldContainer[Rule]
    action: Action
    directions: _containers.RepeatedScalarFieldContainer[Direction]
    default_on: bool
    fail_mode: FailMode
    score_threshold: float
    version: int
    builtin: bool
    disabled: bool
    source: str
    updated_at: _timestamp_pb2.Timestamp
    mode: GuardrailMode
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., rules: _Optional[_Iterable[_Union[Rule, _Mapping]]] = ..., action: _Optional[_Union[Action, str]] = ..., directions: _Optional[_Iterable[_Union[Direction, str]]] = ..., default_on: _Optional[bool] = ..., fail_mode: _Optional[_Union[FailMode, str]] = ..., score_threshold: _Optional[float] = ..., version: _Optional[int] = ..., builtin: _Optional[bool] = ..., disabled: _Optional[bool] = ..., source: _Optional[str] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., mode: _Optional[_Union[GuardrailMode, str]] = ...) -> None: ...

class Rule(_message.Message):
    __slots__ = ("id", "category", "severity", "pattern", "keywords", "keywords_match_substrings", "prefilter", "validator", "must_match", "must_not_match", "mask_label", "weight", "ignore_case", "match_on")
    ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    KEYWORDS_FIELD_NUMBER: _ClassVar[int]
    KEYWORDS_MATCH_SUBSTRINGS_FIELD_NUMBER: _ClassVar[int]
    PREFILTER_FIELD_NUMBER: _ClassVar[int]
    VALIDATOR_FIELD_NUMBER: _ClassVar[int]
    MUST_MATCH_FIELD_NUMBER: _ClassVar[int]
    MUST_NOT_MATCH_FIELD_NUMBER: _ClassVar[int]
    MASK_LABEL_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    IGNORE_CASE_FIELD_NUMBER: _ClassVar[int]
    MATCH_ON_FIELD_NUMBER: _ClassVar[int]
    id: str
    category: str
    severity: Severity
    pattern: str
    keywords: _containers.RepeatedScalarFieldContainer[str]
    keywords_match_substrings: bool
    prefilter: _containers.RepeatedScalarFieldContainer[str]
    validator: str
    must_match: _containers.RepeatedScalarFieldContainer[str]
    must_not_match: _containers.RepeatedScalarFieldContainer[str]
    mask_label: str
    weight: float
    ignore_case: bool
    match_on: str
    def __init__(self, id: _Optional[str] = ..., category: _Optional[str] = ..., severity: _Optional[_Union[Severity, str]] = ..., pattern: _Optional[str] = ..., keywords: _Optional[_Iterable[str]] = ..., keywords_match_substrings: _Optional[bool] = ..., prefilter: _Optional[_Iterable[str]] = ..., validator: _Optional[str] = ..., must_match: _Optional[_Iterable[str]] = ..., must_not_match: _Optional[_Iterable[str]] = ..., mask_label: _Optional[str] = ..., weight: _Optional[float] = ..., ignore_case: _Optional[bool] = ..., match_on: _Optional[str] = ...) -> None: ...

class RegisterRequest(_message.Message):
    __slots__ = ("guardrail", "validate_only")
    GUARDRAIL_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    guardrail: Guardrail
    validate_only: bool
    def __init__(self, guardrail: _Optional[_Union[Guardrail, _Mapping]] = ..., validate_only: _Optional[bool] = ...) -> None: ...

class RegisterResponse(_message.Message):
    __slots__ = ("accepted", "error")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    accepted: RegisterAccepted
    error: _status_pb2.Status
    def __init__(self, accepted: _Optional[_Union[RegisterAccepted, _Mapping]] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ...) -> None: ...

class RegisterAccepted(_message.Message):
    __slots__ = ("name", "version", "registry_generation", "validate_only")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_GENERATION_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    registry_generation: int
    validate_only: bool
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., registry_generation: _Optional[int] = ..., validate_only: _Optional[bool] = ...) -> None: ...

class ListGuardrailsRequest(_message.Message):
    __slots__ = ("include_rules",)
    INCLUDE_RULES_FIELD_NUMBER: _ClassVar[int]
    include_rules: bool
    def __init__(self, include_rules: _Optional[bool] = ...) -> None: ...

class ListGuardrailsResponse(_message.Message):
    __slots__ = ("guardrails", "registry_generation")
    GUARDRAILS_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_GENERATION_FIELD_NUMBER: _ClassVar[int]
    guardrails: _containers.RepeatedCompositeFieldContainer[Guardrail]
    registry_generation: int
    def __init__(self, guardrails: _Optional[_Iterable[_Union[Guardrail, _Mapping]]] = ..., registry_generation: _Optional[int] = ...) -> None: ...

class GetGuardrailRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetGuardrailResponse(_message.Message):
    __slots__ = ("guardrail",)
    GUARDRAIL_FIELD_NUMBER: _ClassVar[int]
    guardrail: Guardrail
    def __init__(self, guardrail: _Optional[_Union[Guardrail, _Mapping]] = ...) -> None: ...

class DeleteGuardrailRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteGuardrailResponse(_message.Message):
    __slots__ = ("registry_generation",)
    REGISTRY_GENERATION_FIELD_NUMBER: _ClassVar[int]
    registry_generation: int
    def __init__(self, registry_generation: _Optional[int] = ...) -> None: ...

class McpToolPin(_message.Message):
    __slots__ = ("server", "tool", "sha256")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    TOOL_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    server: str
    tool: str
    sha256: str
    def __init__(self, server: _Optional[str] = ..., tool: _Optional[str] = ..., sha256: _Optional[str] = ...) -> None: ...

class PinMcpToolsRequest(_message.Message):
    __slots__ = ("server", "tools", "caller")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    server: str
    tools: _containers.RepeatedCompositeFieldContainer[ToolDefinition]
    caller: Caller
    def __init__(self, server: _Optional[str] = ..., tools: _Optional[_Iterable[_Union[ToolDefinition, _Mapping]]] = ..., caller: _Optional[_Union[Caller, _Mapping]] = ...) -> None: ...

class PinMcpToolsResponse(_message.Message):
    __slots__ = ("pins",)
    PINS_FIELD_NUMBER: _ClassVar[int]
    pins: _containers.RepeatedCompositeFieldContainer[McpToolPin]
    def __init__(self, pins: _Optional[_Iterable[_Union[McpToolPin, _Mapping]]] = ...) -> None: ...

class ListMcpPinsRequest(_message.Message):
    __slots__ = ("server", "caller")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    server: str
    caller: Caller
    def __init__(self, server: _Optional[str] = ..., caller: _Optional[_Union[Caller, _Mapping]] = ...) -> None: ...

class ListMcpPinsResponse(_message.Message):
    __slots__ = ("pins",)
    PINS_FIELD_NUMBER: _ClassVar[int]
    pins: _containers.RepeatedCompositeFieldContainer[McpToolPin]
    def __init__(self, pins: _Optional[_Iterable[_Union[McpToolPin, _Mapping]]] = ...) -> None: ...

class ClearMcpPinsRequest(_message.Message):
    __slots__ = ("server", "caller")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    server: str
    caller: Caller
    def __init__(self, server: _Optional[str] = ..., caller: _Optional[_Union[Caller, _Mapping]] = ...) -> None: ...

class ClearMcpPinsResponse(_message.Message):
    __slots__ = ("cleared",)
    CLEARED_FIELD_NUMBER: _ClassVar[int]
    cleared: int
    def __init__(self, cleared: _Optional[int] = ...) -> None: ...

class GetGuardrailHistoryRequest(_message.Message):
    __slots__ = ("name", "limit")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    name: str
    limit: int
    def __init__(self, name: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class GetGuardrailHistoryResponse(_message.Message):
    __slots__ = ("changes",)
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    changes: _containers.RepeatedCompositeFieldContainer[GuardrailChange]
    def __init__(self, changes: _Optional[_Iterable[_Union[GuardrailChange, _Mapping]]] = ...) -> None: ...

class GuardrailChange(_message.Message):
    __slots__ = ("registry_generation", "name", "version", "action", "actor", "source", "changed_at", "before", "after")
    REGISTRY_GENERATION_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    registry_generation: int
    name: str
    version: int
    action: GuardrailChangeAction
    actor: str
    source: str
    changed_at: _timestamp_pb2.Timestamp
    before: Guardrail
    after: Guardrail
    def __init__(self, registry_generation: _Optional[int] = ..., name: _Optional[str] = ..., version: _Optional[int] = ..., action: _Optional[_Union[GuardrailChangeAction, str]] = ..., actor: _Optional[str] = ..., source: _Optional[str] = ..., changed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., before: _Optional[_Union[Guardrail, _Mapping]] = ..., after: _Optional[_Union[Guardrail, _Mapping]] = ...) -> None: ...
