"""Tests for station.ocpp.rpc: OCPP-J framing and CALLERROR codes per Part 4 §4."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ocpp.v21.enums import Action as Action21
from ocpp.v201.enums import Action as Action201

from station.ocpp.rpc import (
    Call,
    CallError,
    CallResult,
    CallResultError,
    ErrorCode,
    Frame,
    FrameError,
    MessageType,
    Send,
    call_error_for,
    check_call,
    check_payload,
    encode,
    is_known_action,
    parse_frame,
)

VERSIONS = ("2.0.1", "2.1")
SUPPORTED = frozenset({"Heartbeat", "GetVariables", "NotifyPeriodicEventStream"})

VALID_GET_VARIABLES = {
    "getVariableData": [
        {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
    ]
}
VALID_STREAM = {
    "id": 1,
    "pending": 0,
    "basetime": "2024-08-27T12:30:40Z",
    "data": [{"t": 0, "v": "230.4"}, {"t": 5, "v": "230.2"}],
}
ID_36 = "a" * 36
ID_37 = "a" * 37

RPC = ErrorCode.RPC_FRAMEWORK_ERROR
FORMAT = ErrorCode.FORMAT_VIOLATION
TYPE_NS = ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED

# (raw frame, expected message id, expected code, expected reply); the same on both versions.
BAD_FRAMES: list[tuple[str | bytes, str, ErrorCode, bool]] = [
    # §4.1.2: UTF-8 and JSON, else the id cannot be read: "-1" (§4.2.3).
    (b"\xff", "-1", RPC, True),
    (b'[2,"abc","Heartbeat",{"x":"\xc3"}]', "-1", RPC, True),
    ("not json", "-1", RPC, True),
    ("", "-1", RPC, True),
    ('[2,"abc","Heartbeat",{}', "-1", RPC, True),
    ("[NaN]", "-1", RPC, True),
    ('[2,"abc","Heartbeat",{"a":Infinity}]', "-1", RPC, True),
    ("[" * 100_000, "-1", RPC, True),
    ("[2" + "9" * 5000 + "]", "-1", RPC, True),
    # §4.2: a message is a non-empty array whose first element is an integer.
    ("{}", "-1", RPC, True),
    ('{"a":[2,"abc"]}', "-1", RPC, True),
    ("[]", "-1", RPC, True),
    ('"abc"', "-1", RPC, True),
    ("2", "-1", RPC, True),
    ("null", "-1", RPC, True),
    ('["2","x"]', "x", RPC, True),
    ('["2",12]', "-1", RPC, True),
    ('[2.0,"x","Heartbeat",{}]', "x", RPC, True),
    ('[true,"x","Heartbeat",{}]', "x", RPC, True),
    ('[null,"x"]', "x", RPC, True),
    (f'["x","{ID_37}"]', "-1", RPC, True),
    # Table 4: messageId is string[36].
    ('[2, 12, "Heartbeat", {}]', "-1", RPC, True),
    ('[2, null, "Heartbeat", {}]', "-1", RPC, True),
    ("[2]", "-1", RPC, True),
    (f'[2,"{ID_37}","Heartbeat",{{}}]', "-1", RPC, True),
    ('[2,"\\ud800","Heartbeat",{}]', "-1", RPC, True),
    ("[3, 12, {}]", "-1", RPC, False),
    # §4.1.3 / §4.4: unknown Message Type Number.
    ('[7,"abc","Heartbeat",{}]', "abc", TYPE_NS, True),
    ('[0,"abc"]', "abc", TYPE_NS, True),
    ('[-2,"abc","Heartbeat",{}]', "abc", TYPE_NS, True),
    ('[1,"abc"]', "abc", TYPE_NS, True),
    # §4.2.1: a CALL has 4 elements and a string Action ...
    ('[2,"abc","Heartbeat"]', "abc", RPC, True),
    ('[2,"abc"]', "abc", RPC, True),
    ('[2,"abc","Heartbeat",{},{}]', "abc", RPC, True),
    ('[2,"abc",7,{}]', "abc", RPC, True),
    ('[2,"abc",null,{}]', "abc", RPC, True),
    # ... and a payload that is a JSON object (§4.1.5: not null).
    ('[2,"abc","Heartbeat",null]', "abc", FORMAT, True),
    ('[2,"abc","Heartbeat",[]]', "abc", FORMAT, True),
    ('[2,"abc","Heartbeat","{}"]', "abc", FORMAT, True),
    # §4.2.2 / §4.2.3: broken responses are never answered with a CALLERROR.
    ('[3,"abc"]', "abc", RPC, False),
    ('[3,"abc",{},{}]', "abc", RPC, False),
    ('[3,"abc",null]', "abc", FORMAT, False),
    ('[3,"abc",[1]]', "abc", FORMAT, False),
    ('[4,"abc","NotSupported","x"]', "abc", RPC, False),
    ('[4,"abc",5,"x",{}]', "abc", RPC, False),
    ('[4,"abc","NotSupported",null,{}]', "abc", RPC, False),
    ('[4,"abc","NotSupported","x",null]', "abc", FORMAT, False),
    ('[4,"abc","NotSupported","x",{},1]', "abc", RPC, False),
]

# Frames whose outcome depends on the version: (raw, version, message id, code, reply).
VERSIONED_FRAMES: list[tuple[str, str, str, ErrorCode, bool]] = [
    # 5 and 6 are new in OCPP 2.1 (§4.1.3 Table 3).
    ('[6,"abc","NotifyPeriodicEventStream",{}]', "2.0.1", "abc", TYPE_NS, True),
    ('[5,"abc","FormatViolation","",{}]', "2.0.1", "abc", TYPE_NS, True),
    # §4.2.4: a SEND is never answered, so a broken one is only logged.
    ('[6,"abc","NotifyPeriodicEventStream"]', "2.1", "abc", RPC, False),
    ('[6,"abc","NotifyPeriodicEventStream",null]', "2.1", "abc", FORMAT, False),
    ('[6,12,"NotifyPeriodicEventStream",{}]', "2.1", "-1", RPC, False),
    ('[5,"abc","FormatViolation",""]', "2.1", "abc", RPC, False),
    ('[5,"abc","FormatViolation","",[]]', "2.1", "abc", FORMAT, False),
]


def frame_error(raw: str | bytes, version: str) -> FrameError:
    with pytest.raises(FrameError) as info:
        parse_frame(raw, version)
    return info.value


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("raw", "message_id", "code", "reply"), BAD_FRAMES)
def test_bad_frame_gives_the_part4_error(
    raw: str | bytes, message_id: str, code: ErrorCode, reply: bool, version: str
) -> None:
    exc = frame_error(raw, version)
    assert (exc.message_id, exc.error_code, exc.reply) == (message_id, code, reply)
    assert len(exc.description) <= 255


@pytest.mark.parametrize(("raw", "version", "message_id", "code", "reply"), VERSIONED_FRAMES)
def test_bad_frame_per_version(
    raw: str, version: str, message_id: str, code: ErrorCode, reply: bool
) -> None:
    exc = frame_error(raw, version)
    assert (exc.message_id, exc.error_code, exc.reply) == (message_id, code, reply)


# --- check_call -------------------------------------------------------------------------------


def get_variables(payload: Any) -> str:
    return json.dumps([2, "m1", "GetVariables", payload])


def component(name: str) -> dict[str, Any]:
    return {"component": {"name": name}, "variable": {"name": "HeartbeatInterval"}}


# (raw CALL, expected code, expected details path)
BAD_CALLS: list[tuple[str, ErrorCode, str | None]] = [
    ('[2,"m1","FooBar",{}]', ErrorCode.NOT_IMPLEMENTED, None),
    ('[2,"m1","heartbeat",{}]', ErrorCode.NOT_IMPLEMENTED, None),  # §4.2.1: case-sensitive
    ('[2,"m1","HeartbeatRequest",{}]', ErrorCode.NOT_IMPLEMENTED, None),  # §4.1.6
    ('[2,"m1","Reset",{"type":"Immediate"}]', ErrorCode.NOT_SUPPORTED, None),
    (get_variables({}), ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION, "getVariableData"),
    (get_variables({"getVariableData": []}), ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
     "getVariableData"),
    (get_variables({"getVariableData": "x"}), ErrorCode.TYPE_CONSTRAINT_VIOLATION,
     "getVariableData"),
    (get_variables({"getVariableData": [{**component("Ctrlr"), "attributeType": "Bogus"}]}),
     ErrorCode.PROPERTY_CONSTRAINT_VIOLATION, "getVariableData[0].attributeType"),
    (get_variables({"getVariableData": [component("x" * 51)]}),
     ErrorCode.PROPERTY_CONSTRAINT_VIOLATION, "getVariableData[0].component.name"),
    (get_variables({"getVariableData": [{**component("C"),
                                         "variable": {"name": "V", "instance": "i" * 51}}]}),
     ErrorCode.PROPERTY_CONSTRAINT_VIOLATION, "getVariableData[0].variable.instance"),
    (get_variables({**VALID_GET_VARIABLES, "extra": 1}), ErrorCode.FORMAT_VIOLATION, "extra"),
    (get_variables({"getVariableData": [{"component": {"name": "C"}, "variable": {}}]}),
     ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION, "getVariableData[0].variable.name"),
    (get_variables({"getVariableData": [{**component("C"), "component": {"name": 5}}]}),
     ErrorCode.TYPE_CONSTRAINT_VIOLATION, "getVariableData[0].component.name"),
    # At equal depth the structural error wins (documented priority in rpc._schema_error).
    (get_variables({"getVariableData": "x", "extra": 1}), ErrorCode.FORMAT_VIOLATION, "extra"),
    # The shallowest offending field wins.
    (get_variables({"getVariableData": [component("x" * 51)], "extra": 1}),
     ErrorCode.FORMAT_VIOLATION, "extra"),
]  # fmt: skip


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("raw", "code", "path"), BAD_CALLS)
def test_bad_call_gives_the_part4_error(
    raw: str, code: ErrorCode, path: str | None, version: str
) -> None:
    call = parse_frame(raw, version)
    assert isinstance(call, Call)
    with pytest.raises(FrameError) as info:
        check_call(call, version, SUPPORTED)
    exc = info.value
    assert (exc.message_id, exc.error_code, exc.reply) == ("m1", code, True)
    if path is None:
        assert exc.details == {}
    else:
        assert exc.details["path"] == path
        assert exc.details["constraint"] in exc.description


def test_missing_nested_required_field_names_the_field() -> None:
    payload = {"reason": "PowerUp", "chargingStation": {"vendorName": "VendorX"}}
    with pytest.raises(FrameError) as info:
        check_call(Call("m1", "BootNotification", payload), "2.0.1", {"BootNotification"})
    assert info.value.error_code is ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION
    assert info.value.details == {"path": "chargingStation.model", "constraint": "required"}


def test_evse_id_minimum_is_new_in_2_1() -> None:
    evse = {"name": "C", "evse": {"id": -1}}
    call = Call("m1", "GetVariables", {"getVariableData": [{**component("C"), "component": evse}]})
    check_call(call, "2.0.1", SUPPORTED)  # the 2.0.1 schema has no minimum on EVSEType.id
    with pytest.raises(FrameError) as info:
        check_call(call, "2.1", SUPPORTED)
    assert info.value.error_code is ErrorCode.PROPERTY_CONSTRAINT_VIOLATION
    assert info.value.details == {
        "path": "getVariableData[0].component.evse.id",
        "constraint": "minimum",
    }


@pytest.mark.parametrize("version", VERSIONS)
def test_valid_calls_pass(version: str) -> None:
    check_call(Call("m1", "GetVariables", VALID_GET_VARIABLES), version, SUPPORTED)
    check_call(Call("m2", "Heartbeat", {}), version, SUPPORTED)


def test_send_is_checked_but_never_answered() -> None:
    frame = parse_frame(json.dumps([6, "s1", "NotifyPeriodicEventStream", VALID_STREAM]), "2.1")
    assert frame == Send("s1", "NotifyPeriodicEventStream", VALID_STREAM)
    check_call(frame, "2.1", SUPPORTED)
    with pytest.raises(FrameError) as info:
        check_call(Send("s2", "NotifyPeriodicEventStream", {"id": 1}), "2.1", SUPPORTED)
    assert info.value.error_code is ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION
    assert info.value.reply is False
    with pytest.raises(ValueError, match="must not be answered"):
        call_error_for(info.value)


def test_a_send_only_message_is_not_a_call_and_vice_versa() -> None:
    with pytest.raises(FrameError) as info:
        check_call(Call("c1", "NotifyPeriodicEventStream", VALID_STREAM), "2.1", SUPPORTED)
    assert info.value.error_code is ErrorCode.NOT_IMPLEMENTED
    with pytest.raises(FrameError) as info:
        check_call(Send("s1", "Heartbeat", {}), "2.1", SUPPORTED)
    assert (info.value.error_code, info.value.reply) == (ErrorCode.NOT_IMPLEMENTED, False)


def test_description_never_embeds_raw_input() -> None:
    evil = "\ud800" + "k" * 1000
    payload = {**VALID_GET_VARIABLES, evil: 1}
    with pytest.raises(FrameError) as info:
        check_call(Call("m1", "GetVariables", payload), "2.1", SUPPORTED)
    exc = info.value
    assert exc.error_code is ErrorCode.FORMAT_VIOLATION
    assert len(exc.description) <= 255
    assert "\ud800" not in exc.description and "\\ud800" in exc.description
    wire = encode(call_error_for(exc))
    wire.encode("utf-8")  # sendable: no lone surrogate survives
    assert len(json.loads(wire)[3]) <= 255
    with pytest.raises(FrameError) as info:
        check_call(Call("m1", "\ud800" + "A" * 500, {}), "2.1", SUPPORTED)
    assert len(info.value.description) <= 255
    encode(call_error_for(info.value)).encode("utf-8")


# --- check_payload ----------------------------------------------------------------------------


def test_check_payload_of_results_is_never_answered() -> None:
    check_payload(
        MessageType.CALLRESULT, "Heartbeat", {"currentTime": "2025-01-01T00:00:00Z"}, "2.1"
    )
    with pytest.raises(FrameError) as info:
        check_payload(MessageType.CALLRESULT, "Heartbeat", {}, "2.1", message_id="r1")
    exc = info.value
    assert (exc.message_id, exc.error_code, exc.reply) == (
        "r1",
        ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
        False,
    )
    assert exc.details == {"path": "currentTime", "constraint": "required"}
    assert exc.description.startswith("HeartbeatResponse:")


def test_check_payload_of_outbound_calls() -> None:
    boot = {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}}
    check_payload(MessageType.CALL, "BootNotification", boot, "2.0.1")
    with pytest.raises(FrameError) as info:
        check_payload(MessageType.CALL, "BootNotification", {**boot, "reason": "Bored"}, "2.0.1")
    assert info.value.error_code is ErrorCode.PROPERTY_CONSTRAINT_VIOLATION
    assert info.value.message_id == "-1"


def test_check_payload_refuses_unknown_schemas_and_types() -> None:
    with pytest.raises(FrameError) as info:
        check_payload(MessageType.CALL, "../../etc/passwd", {}, "2.1")
    assert info.value.error_code is ErrorCode.NOT_IMPLEMENTED
    with pytest.raises(ValueError):
        check_payload(MessageType.CALLERROR, "Heartbeat", {}, "2.1")
    with pytest.raises(ValueError):
        check_payload(MessageType.SEND, "NotifyPeriodicEventStream", VALID_STREAM, "2.0.1")
    with pytest.raises(ValueError):
        check_payload(MessageType.CALL, "Heartbeat", {}, "1.6")


# --- known actions ----------------------------------------------------------------------------


def test_known_actions_are_the_library_enums() -> None:
    for action in Action201:
        assert is_known_action(action.value, "2.0.1")
    for action in Action21:
        assert is_known_action(action.value, "2.1")
    assert is_known_action("NotifyPeriodicEventStream", "2.1")  # a SEND, not in the enum
    assert not is_known_action("NotifyPeriodicEventStream", "2.0.1")
    assert not is_known_action("SetDERControl", "2.0.1")  # new in 2.1
    assert is_known_action("SetDERControl", "2.1")
    assert not is_known_action("FooBar", "2.1")
    assert not is_known_action("BootNotificationRequest", "2.1")


# --- valid frames and encoding ----------------------------------------------------------------


VALID_FRAMES: list[tuple[str, str, Frame]] = [
    ('[2,"19223201","Heartbeat",{}]', "2.0.1", Call("19223201", "Heartbeat", {})),
    (f'[2,"{ID_36}","Heartbeat",{{}}]', "2.1", Call(ID_36, "Heartbeat", {})),
    ('[2,"","Heartbeat",{}]', "2.1", Call("", "Heartbeat", {})),
    ('[3,"19223201",{"currentTime":"2013-02-01T20:53:32.486Z","interval":300,"status":"Accepted"}]',
     "2.0.1", CallResult("19223201", {"currentTime": "2013-02-01T20:53:32.486Z", "interval": 300,
                                      "status": "Accepted"})),
    ('[4,"162376037","NotSupported","SetDisplayMessageRequest not implemented",{}]', "2.0.1",
     CallError("162376037", "NotSupported", "SetDisplayMessageRequest not implemented", {})),
    ('[4,"1","SomeVendorCode","",{"a":1}]', "2.1", CallError("1", "SomeVendorCode", "", {"a": 1})),
    ('[5,"1","FormatViolation","bad",{}]', "2.1",
     CallResultError("1", "FormatViolation", "bad", {})),
    ('[6,"1","NotifyPeriodicEventStream",{"id":1}]', "2.1",
     Send("1", "NotifyPeriodicEventStream", {"id": 1})),
    (' [2, "x", "DataTransfer", {"vendorId": "ünï"}] ', "2.0.1",
     Call("x", "DataTransfer", {"vendorId": "ünï"})),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "version", "frame"), VALID_FRAMES)
def test_valid_frames_parse_and_round_trip(raw: str, version: str, frame: Frame) -> None:
    assert parse_frame(raw, version) == frame
    assert parse_frame(raw.encode("utf-8"), version) == frame
    text = encode(frame)
    assert parse_frame(text, version) == frame
    assert json.loads(text) == json.loads(raw)


def test_encode_is_compact_and_keeps_utf8() -> None:
    text = encode(Call("1", "DataTransfer", {"vendorId": "ünï", "data": [1, 2]}))
    assert text == '[2,"1","DataTransfer",{"vendorId":"ünï","data":[1,2]}]'
    assert encode(CallResult("1", {})) == '[3,"1",{}]'
    assert (
        encode(CallResultError("1", "FormatViolation", "", {})) == '[5,"1","FormatViolation","",{}]'
    )
    assert encode(Send("1", "A", {})) == '[6,"1","A",{}]'
    with pytest.raises(ValueError):
        encode(CallResult("1", {"x": float("nan")}))


def test_call_error_for_a_frame_error() -> None:
    exc = frame_error('[2,"abc","Heartbeat",null]', "2.0.1")
    error = call_error_for(exc)
    assert error == CallError("abc", "FormatViolation", exc.description, {})
    assert json.loads(encode(error)) == [4, "abc", "FormatViolation", exc.description, {}]
    assert FrameError("1", ErrorCode.GENERIC_ERROR, "x" * 300).description.endswith("...")
    assert len(FrameError("1", ErrorCode.GENERIC_ERROR, "x" * 300).description) == 255


def test_unknown_version_is_refused() -> None:
    with pytest.raises(ValueError):
        parse_frame("[]", "1.6")
    with pytest.raises(ValueError):
        is_known_action("Heartbeat", "2.0")


# --- fuzzing ----------------------------------------------------------------------------------


def assert_well_formed(exc: FrameError) -> None:
    assert isinstance(exc.error_code, ErrorCode)
    assert len(exc.description) <= 255
    assert exc.message_id == "-1" or len(exc.message_id) <= 36
    if exc.reply:
        wire = encode(call_error_for(exc))
        wire.encode("utf-8")
        assert isinstance(parse_frame(wire, "2.1"), CallError)


def parse_and_check(raw: str | bytes, version: str) -> None:
    try:
        frame = parse_frame(raw, version)
        if isinstance(frame, Call | Send):
            check_call(frame, version, SUPPORTED)
    except FrameError as exc:
        assert_well_formed(exc)


@settings(max_examples=300)
@given(st.text(), st.sampled_from(VERSIONS))
def test_arbitrary_text_only_raises_frame_error(raw: str, version: str) -> None:
    parse_and_check(raw, version)


@settings(max_examples=300)
@given(st.binary(), st.sampled_from(VERSIONS))
def test_arbitrary_bytes_only_raise_frame_error(raw: bytes, version: str) -> None:
    parse_and_check(raw, version)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=20), children, max_size=5)
    ),
    max_leaves=30,
)
TYPE_IDS = st.sampled_from(list(range(9))) | st.integers() | JSON_VALUES
ACTIONS = st.sampled_from(["Heartbeat", "GetVariables", "NotifyPeriodicEventStream", "Reset"])


@settings(max_examples=500)
@given(
    st.one_of(
        st.lists(JSON_VALUES, max_size=7),
        st.tuples(TYPE_IDS, st.text(max_size=40) | JSON_VALUES).map(list),
        st.tuples(TYPE_IDS, st.text(max_size=40), ACTIONS | JSON_VALUES, JSON_VALUES).map(list),
        st.tuples(TYPE_IDS, st.text(max_size=40), st.text(max_size=30), st.text(), JSON_VALUES).map(
            list
        ),
    ),
    st.sampled_from(VERSIONS),
)
def test_arbitrary_json_lists_only_raise_frame_error(message: list[Any], version: str) -> None:
    parse_and_check(json.dumps(message), version)
    parse_and_check(
        json.dumps(message, ensure_ascii=False).encode("utf-8", "surrogatepass"), version
    )
