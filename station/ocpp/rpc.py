"""OCPP-J RPC framing for OCPP 2.0.1 and 2.1 (Part 4 §4 "RPC framework").

This module owns the wrapper around every OCPP message: text <-> typed frames (``parse_frame`` /
``encode``), the schema check of a payload, and the exact CALLERROR that each malformed inbound
frame must get (Part 4 §4.2.3 and the error code table of §4.3). It is pure: no I/O, no asyncio,
no logging, no state. The link shell reads a WebSocket message, calls ``parse_frame`` and
``check_call``, and on ``FrameError`` sends ``encode(call_error_for(exc))`` when ``exc.reply``
is true, or only logs it when false.

Why it exists: ``ocpp.messages.unpack`` (ocpp 2.1.0) raises without any reply for malformed JSON,
answers a missing required field with ProtocolError, a too-long string with
TypeConstraintViolation, an unknown message type with PropertyConstraintViolation, and swaps
NotImplemented and NotSupported (``_raise_key_error``). This module applies Part 4 as written.

Schema validation uses the library's cached ``Draft4Validator``s (``ocpp.messages.get_validator``)
and picks one error per payload with a documented, version-stable priority (see
``_schema_error``), not ``jsonschema.exceptions.best_match``, whose heuristic "may change ... from
version to version" (its docstring).
"""

from __future__ import annotations

import functools
import importlib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from importlib import resources
from typing import Any, TypeAlias

from ocpp.messages import get_validator

from station.errors import OcppError

__all__ = [
    "Call",
    "CallError",
    "CallResult",
    "CallResultError",
    "ErrorCode",
    "Frame",
    "FrameError",
    "MessageType",
    "Send",
    "call_error_for",
    "check_call",
    "check_payload",
    "encode",
    "is_known_action",
    "parse_frame",
]

# Table 4 "Unique Message ID": messageId is string[36]. ErrorDescription is string[255] (Table 7).
MAX_MESSAGE_ID_LENGTH = 36
MAX_DESCRIPTION_LENGTH = 255
_UNREADABLE_ID = "-1"  # §4.2.3: "When also the MessageId cannot be read, ... "-1" as MessageId."


class MessageType(IntEnum):
    """Message Type Numbers (Part 4 §4.1.3, Table 3; 5 and 6 are new in OCPP 2.1)."""

    CALL = 2
    CALLRESULT = 3
    CALLERROR = 4
    CALLRESULTERROR = 5
    SEND = 6


class ErrorCode(StrEnum):
    """The RPC Framework Error Codes (Part 4 §4.3, Table 8 in 2.0.1 / Table 9 in 2.1)."""

    FORMAT_VIOLATION = "FormatViolation"
    GENERIC_ERROR = "GenericError"
    INTERNAL_ERROR = "InternalError"
    MESSAGE_TYPE_NOT_SUPPORTED = "MessageTypeNotSupported"
    NOT_IMPLEMENTED = "NotImplemented"
    NOT_SUPPORTED = "NotSupported"
    OCCURRENCE_CONSTRAINT_VIOLATION = "OccurrenceConstraintViolation"
    PROPERTY_CONSTRAINT_VIOLATION = "PropertyConstraintViolation"
    PROTOCOL_ERROR = "ProtocolError"
    RPC_FRAMEWORK_ERROR = "RpcFrameworkError"
    SECURITY_ERROR = "SecurityError"
    TYPE_CONSTRAINT_VIOLATION = "TypeConstraintViolation"


@dataclass(frozen=True, slots=True)
class Call:
    """``[2, "<MessageId>", "<Action>", {<Payload>}]`` (Part 4 §4.2.1)."""

    message_id: str
    action: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallResult:
    """``[3, "<MessageId>", {<Payload>}]`` (Part 4 §4.2.2)."""

    message_id: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallError:
    """``[4, "<MessageId>", "<errorCode>", "<errorDescription>", {<errorDetails>}]`` (§4.2.3)."""

    message_id: str
    error_code: str
    error_description: str
    error_details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Send:
    """``[6, "<MessageId>", "<Action>", {<Payload>}]``: unconfirmed, OCPP 2.1 only (§4.2.4)."""

    message_id: str
    action: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallResultError:
    """``[5, "<MessageId>", "<errorCode>", "<errorDescription>", {<errorDetails>}]``.

    The answer to a CALLRESULT that could not be processed; OCPP 2.1 only (§4.2.3).
    """

    message_id: str
    error_code: str
    error_description: str
    error_details: dict[str, Any]


Frame: TypeAlias = Call | CallResult | CallError | Send | CallResultError


class FrameError(OcppError):
    """A frame that must be answered with a CALLERROR, or (``reply`` false) only logged.

    Attributes:
        message_id: the frame's MessageId, or ``"-1"`` when it could not be read (§4.2.3).
        error_code: one of the codes of Part 4 §4.3.
        description: at most 255 characters (Table 7 ErrorDescription string[255]); untrusted
            input in it is clipped and escaped, never embedded raw.
        details: a JSON object for ErrorDetails; ``{}`` when there are none (Table 7).
        reply: false when the frame was a CALLRESULT, CALLERROR or CALLRESULTERROR (never answer
            a response with a CALLERROR) or a SEND (§4.2.4: "The receiver SHALL NOT respond to
            a SEND message with a CALLRESULT or CALLERROR message").
    """

    message_id: str
    error_code: ErrorCode
    description: str
    details: dict[str, Any]
    reply: bool

    def __init__(
        self,
        message_id: str,
        error_code: ErrorCode,
        description: str,
        details: dict[str, Any] | None = None,
        *,
        reply: bool = True,
    ) -> None:
        self.message_id = message_id
        self.error_code = error_code
        self.description = _clip(description, MAX_DESCRIPTION_LENGTH)
        self.details = {} if details is None else details
        self.reply = reply
        super().__init__(f"{error_code}: {self.description} (message id {message_id!r})")


# --- decoding -------------------------------------------------------------------------------


def parse_frame(raw: str | bytes, version: str) -> Frame:
    """Decode one OCPP-J message into a typed frame, checking only the RPC wrapper.

    The payload is not checked against the action's schema here: ``check_call`` does that for
    a CALL or SEND, and the shell calls ``check_payload`` for a CALLRESULT once it has matched
    the message id to the action it sent.

    Args:
        raw: one WebSocket message, as text or as bytes (which must be UTF-8, §4.1.2).
        version: ``"2.0.1"`` or ``"2.1"``; 2.1 adds CALLRESULTERROR (5) and SEND (6).

    Returns:
        A ``Call``, ``CallResult``, ``CallError``, ``Send`` or ``CallResultError``.

    Raises:
        FrameError: the message is not a valid frame of ``version``; see the rules inline.
        ValueError: ``version`` is not supported.
    """
    known_types = _message_types(version)
    if isinstance(raw, bytes | bytearray):
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            # §4.1.2: the whole message MUST be valid JSON encoded with UTF-8.
            raise FrameError(
                _UNREADABLE_ID, ErrorCode.RPC_FRAMEWORK_ERROR, "Message is not valid UTF-8"
            ) from exc
    else:
        text = raw
    try:
        message = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        # §4.1.2 / §4.2.3: "invalid JSON"; the id cannot be read, so "-1".
        # ValueError covers JSONDecodeError, NaN/Infinity and over-long integers;
        # RecursionError covers absurdly deep nesting.
        raise FrameError(
            _UNREADABLE_ID, ErrorCode.RPC_FRAMEWORK_ERROR, "Message is not valid JSON"
        ) from exc

    if not isinstance(message, list) or not message:
        # §4.2: every message is an array [<MessageTypeId>, "<MessageId>", ...].
        raise FrameError(
            _readable_id(message) or _UNREADABLE_ID,
            ErrorCode.RPC_FRAMEWORK_ERROR,
            "Message is not a non-empty JSON array",
        )
    type_id = message[0]
    if not isinstance(type_id, int) or isinstance(type_id, bool):
        # Table 5: MessageTypeId is an integer.
        raise FrameError(
            _readable_id(message) or _UNREADABLE_ID,
            ErrorCode.RPC_FRAMEWORK_ERROR,
            "MessageTypeId is not an integer",
        )
    # Responses (and 2.1 SENDs) are never answered; everything else is.
    reply = type_id not in known_types or type_id == MessageType.CALL
    message_id = _readable_id(message)
    if message_id is None:
        # Table 4: messageId is string[36]. RpcFrameworkError "e.g. MessageId could not be read".
        raise FrameError(
            _UNREADABLE_ID,
            ErrorCode.RPC_FRAMEWORK_ERROR,
            f"MessageId could not be read (a string of at most {MAX_MESSAGE_ID_LENGTH} characters)",
            reply=reply,
        )
    if type_id not in known_types:
        # §4.1.3 / §4.4: an unknown Message Type Number is answered with MessageTypeNotSupported
        # (2.0.1 "SHALL respond"; 2.1 still lists the code and says to ignore the payload).
        raise FrameError(
            message_id,
            ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED,
            f"Message Type Number {_clip(str(type_id), 20)} is not supported by OCPP {version}",
        )

    message_type = MessageType(type_id)
    if message_type in (MessageType.CALL, MessageType.SEND):
        # §4.2.1 / §4.2.4: [<MessageTypeId>, "<MessageId>", "<Action>", {<Payload>}].
        if len(message) != 4 or not isinstance(message[2], str):
            raise FrameError(
                message_id,
                ErrorCode.RPC_FRAMEWORK_ERROR,
                f"A {message_type.name} has 4 elements and its Action is a string",
                reply=reply,
            )
        if not isinstance(message[3], dict):
            # §4.1.5: the payload is a JSON object; `null` is not accepted (only {}).
            raise FrameError(
                message_id,
                ErrorCode.FORMAT_VIOLATION,
                f"The {message_type.name} payload is not a JSON object",
                reply=reply,
            )
        if message_type is MessageType.CALL:
            return Call(message_id, message[2], message[3])
        return Send(message_id, message[2], message[3])

    if message_type is MessageType.CALLRESULT:
        # §4.2.2: [<MessageTypeId>, "<MessageId>", {<Payload>}]. Never answered (reply=False).
        if len(message) != 3:
            raise FrameError(
                message_id,
                ErrorCode.RPC_FRAMEWORK_ERROR,
                "A CALLRESULT has 3 elements",
                reply=False,
            )
        if not isinstance(message[2], dict):
            raise FrameError(
                message_id,
                ErrorCode.FORMAT_VIOLATION,
                "The CALLRESULT payload is not a JSON object",
                reply=False,
            )
        return CallResult(message_id, message[2])

    # §4.2.3: CALLERROR / CALLRESULTERROR always consist of 5 elements:
    # [<MessageTypeId>, "<MessageId>", "<errorCode>", "<errorDescription>", {<errorDetails>}].
    if len(message) != 5 or not isinstance(message[2], str) or not isinstance(message[3], str):
        raise FrameError(
            message_id,
            ErrorCode.RPC_FRAMEWORK_ERROR,
            f"A {message_type.name} has 5 elements: id, errorCode and errorDescription strings,"
            " errorDetails object",
            reply=False,
        )
    if not isinstance(message[4], dict):
        raise FrameError(
            message_id,
            ErrorCode.FORMAT_VIOLATION,
            f"The {message_type.name} errorDetails is not a JSON object",
            reply=False,
        )
    if message_type is MessageType.CALLERROR:
        return CallError(message_id, message[2], message[3], message[4])
    return CallResultError(message_id, message[2], message[3], message[4])


def _reject_constant(name: str) -> Any:
    # RFC 8259 JSON has no NaN or Infinity; Python's json accepts them unless told not to.
    raise ValueError(f"{name} is not JSON")


def _readable_id(message: Any) -> str | None:
    """``message[1]`` when it is a usable MessageId (Table 4: string[36]), else None.

    An id that cannot be encoded as UTF-8 (a lone surrogate from a ``\\ud800`` escape) could not
    be echoed back in the CALLERROR, so it counts as unreadable too.
    """
    if not isinstance(message, list) or len(message) < 2:
        return None
    candidate = message[1]
    if not isinstance(candidate, str) or len(candidate) > MAX_MESSAGE_ID_LENGTH:
        return None
    try:
        candidate.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return candidate


# --- checking -------------------------------------------------------------------------------


def is_known_action(action: str, version: str) -> bool:
    """Whether ``action`` is an action of this OCPP version (a CALL or, in 2.1, a SEND).

    The actions are those the version's JSON schemas define (``<Action>Request.json``, and in
    2.1 the SEND message ``NotifyPeriodicEventStream.json``); for CALLs this is exactly the
    library's ``Action`` enum.

    Raises:
        ValueError: ``version`` is not supported.
    """
    actions = _actions(version)
    return action in actions[MessageType.CALL] or action in actions.get(MessageType.SEND, ())


def check_call(call: Call | Send, version: str, supported_actions: Collection[str]) -> None:
    """Check an inbound CALL (or 2.1 SEND) against Part 4 §4.1.7 "Message Validity".

    Order: the action must be an action of ``version`` (else NotImplemented, "Requested Action
    is not known by receiver"), then one we handle (else NotSupported, "Requested Action is
    recognized but not supported by the receiver"), then the payload must match the schema
    (see ``check_payload``).

    Args:
        call: the parsed frame.
        version: ``"2.0.1"`` or ``"2.1"``.
        supported_actions: the actions this station has handlers for.

    Raises:
        FrameError: with ``reply`` true for a CALL and false for a SEND (§4.2.4).
        ValueError: ``version`` is not supported.
    """
    message_type = MessageType.SEND if isinstance(call, Send) else MessageType.CALL
    reply = message_type is MessageType.CALL
    if call.action not in _actions(version).get(message_type, frozenset()):
        raise FrameError(
            call.message_id,
            ErrorCode.NOT_IMPLEMENTED,
            f"Requested Action {_clip(call.action, 64)!r} is not known by receiver"
            f" as a {message_type.name} of OCPP {version}",
            reply=reply,
        )
    if call.action not in supported_actions:
        raise FrameError(
            call.message_id,
            ErrorCode.NOT_SUPPORTED,
            f"Requested Action {call.action} is recognized but not supported by the receiver",
            reply=reply,
        )
    error = _schema_error(message_type, call.action, call.payload, version)
    if error is not None:
        code, description, details = error
        raise FrameError(call.message_id, code, description, details, reply=reply)


def check_payload(
    message_type: MessageType,
    action: str,
    payload: dict[str, Any],
    version: str,
    *,
    message_id: str = _UNREADABLE_ID,
) -> None:
    """Check a payload against the version's JSON schema for ``action`` (§4.1.2, §4.1.7).

    Used for inbound CALLs (via ``check_call``), inbound CALLRESULTs (the shell knows the action
    from the pending CALL) and our own outbound CALLs, SENDs and CALLRESULTs.

    Args:
        message_type: CALL (the ``...Request`` schema), CALLRESULT (``...Response``) or, in 2.1,
            SEND (the schema named after the action).
        action: the action name, e.g. ``"BootNotification"``.
        payload: the payload with wire (camelCase) keys.
        version: ``"2.0.1"`` or ``"2.1"``.
        message_id: copied into the ``FrameError``.

    Raises:
        FrameError: NotImplemented when there is no such schema, else the code chosen by
            ``_schema_error``. ``reply`` is true only for a CALL.
        ValueError: ``version`` or ``message_type`` is not supported.
    """
    actions = _actions(version)
    if message_type not in actions:
        raise ValueError(f"no payload schema for {message_type.name} in OCPP {version}")
    reply = message_type is MessageType.CALL
    if action not in actions[message_type]:
        raise FrameError(
            message_id,
            ErrorCode.NOT_IMPLEMENTED,
            f"Action {_clip(action, 64)!r} has no {message_type.name} schema in OCPP {version}",
            reply=reply,
        )
    error = _schema_error(message_type, action, payload, version)
    if error is not None:
        code, description, details = error
        raise FrameError(message_id, code, description, details, reply=reply)


# Which RPC error code each JSON-schema keyword maps to (Part 4 §4.3). Anything not listed,
# notably additionalProperties ("Payload for Action is syntactically incorrect"), is
# FormatViolation.
_CODE_BY_KEYWORD: Mapping[str, ErrorCode] = {
    # "at least one of the fields violates data type constraints (e.g. "somestring": 12)"
    "type": ErrorCode.TYPE_CONSTRAINT_VIOLATION,
    # "at least one of the fields violates occurrence constraints"
    "required": ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
    "minItems": ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
    "maxItems": ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
    "minProperties": ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
    "maxProperties": ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
    # "at least one field contains an invalid value"
    "enum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "maxLength": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "minLength": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "minimum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "maximum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "exclusiveMinimum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "exclusiveMaximum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "pattern": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "format": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "multipleOf": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
}

# Among errors at the same depth, the one that says most about the payload's structure wins.
_RANK: Mapping[ErrorCode, int] = {
    ErrorCode.FORMAT_VIOLATION: 0,
    ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION: 1,
    ErrorCode.TYPE_CONSTRAINT_VIOLATION: 2,
    ErrorCode.PROPERTY_CONSTRAINT_VIOLATION: 3,
}


def _schema_error(
    message_type: MessageType, action: str, payload: dict[str, Any], version: str
) -> tuple[ErrorCode, str, dict[str, Any]] | None:
    """Validate ``payload``; return ``(code, description, details)`` of the chosen error.

    Choice, among all errors ``iter_errors`` reports: the shallowest offending field first
    (where "field" is the missing property for ``required`` and the unexpected one for
    ``additionalProperties``), since more is wrong higher up; at equal depth FormatViolation,
    then OccurrenceConstraintViolation, TypeConstraintViolation, PropertyConstraintViolation;
    then the validator's own order (schema order). ``format`` is never reported: the library's
    validators run without a format checker.

    ``action`` must already be known for ``message_type``: the library builds a file path from
    it. For SEND the library looks up ``<Action>.json`` because it adds a suffix only for types
    2 and 3, which is exactly the 2.1 SEND schema's file name.
    """
    validator = get_validator(int(message_type), action, version)
    best: tuple[tuple[int, int, int], ErrorCode, str, list[str | int]] | None = None
    for index, error in enumerate(validator.iter_errors(payload)):
        keyword = str(error.validator)
        code = _CODE_BY_KEYWORD.get(keyword, ErrorCode.FORMAT_VIOLATION)
        path: list[str | int] = list(error.absolute_path)
        if keyword == "required" and isinstance(error.instance, dict):
            path += [name for name in error.validator_value if name not in error.instance][:1]
        elif keyword == "additionalProperties" and isinstance(error.instance, dict):
            allowed = error.schema.get("properties", {})
            path += [name for name in error.instance if name not in allowed][:1]
        rank = (len(path), _RANK.get(code, 0), index)
        if best is None or rank < best[0]:
            best = (rank, code, keyword, path)
    if best is None:
        return None
    _, code, keyword, path = best
    where = _format_path(path)
    schema_name = action + {MessageType.CALL: "Request", MessageType.CALLRESULT: "Response"}.get(
        message_type, ""
    )
    return (
        code,
        f"{schema_name}: '{keyword}' constraint violated at '{where}'",
        {"path": where, "constraint": keyword},
    )


def _format_path(path: list[str | int]) -> str:
    """``["getVariableData", 0, "component", "name"]`` -> ``getVariableData[0].component.name``.

    Keys come from the payload (an unexpected property's name is untrusted), so each is clipped
    and escaped; ``""`` is the payload itself.
    """
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + _clip(str(part), 64)
    return _clip(text, 160)


def _clip(text: str, limit: int) -> str:
    """``text`` made safe to embed in a CALLERROR string: UTF-8 encodable, at most ``limit``.

    Lone surrogates become ``\\udXXX`` escapes; the JSON encoder escapes everything else.
    """
    safe = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return safe if len(safe) <= limit else safe[: limit - 3] + "..."


@functools.cache
def _message_types(version: str) -> frozenset[int]:
    if version == "2.0.1":
        return frozenset({MessageType.CALL, MessageType.CALLRESULT, MessageType.CALLERROR})
    if version == "2.1":
        return frozenset(MessageType)  # §4.1.3 Table 3, updated in OCPP 2.1
    raise ValueError(f"unsupported OCPP version {version!r}; expected '2.0.1' or '2.1'")


@functools.cache
def _actions(version: str) -> Mapping[MessageType, frozenset[str]]:
    """The actions with a schema, per message type, read from the library's schema folder."""
    _message_types(version)  # validates version
    package = "v" + version.replace(".", "")
    names = [
        entry.name.removesuffix(".json")
        for entry in resources.files(f"ocpp.{package}").joinpath("schemas").iterdir()
        if entry.name.endswith(".json")
    ]
    requests = frozenset(n.removesuffix("Request") for n in names if n.endswith("Request"))
    responses = frozenset(n.removesuffix("Response") for n in names if n.endswith("Response"))
    sends = frozenset(n for n in names if not n.endswith(("Request", "Response")))
    enum_actions = {str(a.value) for a in importlib.import_module(f"ocpp.{package}.enums").Action}
    # Part 4 §4.1.6: the Action is the message name without "Request"; a CALL needs both the
    # library's Action enum entry and a request schema to validate against.
    calls = requests & enum_actions
    result = {MessageType.CALL: calls, MessageType.CALLRESULT: responses}
    if MessageType.SEND in _message_types(version):
        result[MessageType.SEND] = sends  # §4.2.4, new in OCPP 2.1
    return result


# --- encoding -------------------------------------------------------------------------------


def encode(frame: Frame) -> str:
    """Serialise a frame as compact JSON text (Part 4 §4.2), UTF-8 characters kept as they are.

    A lone surrogate (which a peer can send as a ``"\\ud800"`` escape, and a handler may echo
    back) cannot be encoded as UTF-8 (§4.1.2); when one is present, every non-ASCII character
    is written as a JSON ``\\u`` escape instead, so the text stays sendable.

    Raises:
        TypeError: the payload holds a value JSON cannot represent.
        ValueError: the payload holds NaN or Infinity.
    """
    body: list[Any]
    match frame:
        case Call(message_id, action, payload):
            body = [MessageType.CALL, message_id, action, payload]
        case CallResult(message_id, payload):
            body = [MessageType.CALLRESULT, message_id, payload]
        case CallError(message_id, code, description, details):
            body = [MessageType.CALLERROR, message_id, code, description, details]
        case Send(message_id, action, payload):
            body = [MessageType.SEND, message_id, action, payload]
        case CallResultError(message_id, code, description, details):
            body = [MessageType.CALLRESULTERROR, message_id, code, description, details]
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(body, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return text


def call_error_for(exc: FrameError) -> CallError:
    """The CALLERROR that answers a rejected frame (Part 4 §4.2.3).

    Raises:
        ValueError: ``exc.reply`` is false: the frame was a response or a SEND, which must not
            be answered with a CALLERROR.
    """
    if not exc.reply:
        raise ValueError(f"{exc.error_code} for message {exc.message_id!r} must not be answered")
    return CallError(exc.message_id, str(exc.error_code), exc.description, dict(exc.details))
