"""Wire-level tests: raw OCPP-J frames from a real CSMS to a running station, on both subprotocols.

Each bad frame goes out exactly as written (``Csms.send_raw``); the station must answer with the
CALLERROR that OCPP-J Part 4 §4.2.3 / §4.3 require (or, for responses and 2.1 SENDs, with
nothing), and keep serving the same WebSocket afterwards. Nothing of the station is mocked: it is
``run_station`` against :class:`station.sim.csms.Csms` on 127.0.0.1.

"No reply" is proven without waiting for a timeout: frames on one WebSocket are handled in order,
so when the station's answer to a later GetVariables is its first non-CALL frame since the bad
frame went out, the bad frame got no reply.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import pytest
from ocpp.routing import create_route_map
from ocpp.v21.enums import Action as Action21

from station.ocpp.link import StationSession
from station.sim.csms import Csms, Frame
from tests.conftest import STATION_ID, RunningStation

SUBPROTOCOLS = ("ocpp2.0.1", "ocpp2.1")

RPC = "RpcFrameworkError"
FORMAT = "FormatViolation"
OCCURRENCE = "OccurrenceConstraintViolation"
TYPE = "TypeConstraintViolation"
PROPERTY = "PropertyConstraintViolation"
TYPE_NOT_SUPPORTED = "MessageTypeNotSupported"
NOT_IMPLEMENTED = "NotImplemented"
NOT_SUPPORTED = "NotSupported"

ITEM = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
VALID_GET_VARIABLES = {"getVariableData": [ITEM]}
ID_36 = "i" * 36
ID_37 = "i" * 37
LONG_NAME = "X" * 1000  # makes the description long: it must still be clipped to 255


def _call(message_id: Any, action: str, payload: Any) -> str:
    return json.dumps([2, message_id, action, payload])


def _get_variables(**fields: Any) -> dict[str, Any]:
    return {"getVariableData": [{**ITEM, **fields}]}


@dataclass(frozen=True)
class Case:
    """A raw frame and the CALLERROR it must get: ``[4, message_id, code, ...]``."""

    raw: str | bytes
    message_id: str
    code: str
    versions: tuple[str, ...] = ("2.0.1", "2.1")


# Every CALLERROR case of Part 4 §4.2.3 / §4.3 that a CSMS can provoke.
CASES: dict[str, Case] = {
    # §4.1.2: the whole message is UTF-8 JSON; otherwise the id cannot be read → "-1" (§4.2.3).
    "binary-invalid-utf8": Case(b'[2,"u1","GetVariables",{"x":"\xff\xfe"}]', "-1", RPC),
    "invalid-json": Case('[2,"j1","GetVariables",{}', "-1", RPC),
    "not-json-at-all": Case("hello", "-1", RPC),
    "empty-text": Case("", "-1", RPC),
    "json-nan": Case('[2,"n1","GetVariables",{"x":NaN}]', "-1", RPC),
    "json-too-deep": Case("[" * 100_000 + "]" * 100_000, "-1", RPC),
    # §4.2: a message is a JSON array [<MessageTypeId>, "<MessageId>", ...].
    "object-not-array": Case('{"id":"o1"}', "-1", RPC),
    "string-not-array": Case('"o2"', "-1", RPC),
    "empty-array": Case("[]", "-1", RPC),
    "type-id-string": Case('["2","t1","GetVariables",{}]', "t1", RPC),
    "type-id-float": Case('[2.0,"t2","GetVariables",{}]', "t2", RPC),
    "type-id-bool": Case('[true,"t3","GetVariables",{}]', "t3", RPC),
    # Table 4: messageId is string[36].
    "id-number": Case(_call(123, "GetVariables", VALID_GET_VARIABLES), "-1", RPC),
    "id-null": Case(_call(None, "GetVariables", VALID_GET_VARIABLES), "-1", RPC),
    "id-37-chars": Case(_call(ID_37, "GetVariables", VALID_GET_VARIABLES), "-1", RPC),
    "id-lone-surrogate": Case('[2,"\\ud800","GetVariables",{}]', "-1", RPC),
    "id-missing": Case("[2]", "-1", RPC),
    # §4.4 / §4.1.3: unknown Message Type Numbers (5 and 6 are new in 2.1).
    "type-7": Case('[7,"m7","GetVariables",{}]', "m7", TYPE_NOT_SUPPORTED),
    "type-0": Case('[0,"m0"]', "m0", TYPE_NOT_SUPPORTED),
    "type-6-send-on-201": Case(
        '[6,"m6","NotifyPeriodicEventStream",{}]', "m6", TYPE_NOT_SUPPORTED, ("2.0.1",)
    ),
    "type-5-on-201": Case('[5,"m5","GenericError","",{}]', "m5", TYPE_NOT_SUPPORTED, ("2.0.1",)),
    # §4.2.1: [2, "<MessageId>", "<Action>", {<Payload>}].
    "call-without-payload": Case('[2,"c1","GetVariables"]', "c1", RPC),
    "call-without-action": Case('[2,"c2"]', "c2", RPC),
    "call-action-not-string": Case('[2,"c3",5,{}]', "c3", RPC),
    "call-five-elements": Case('[2,"c4","GetVariables",{},{}]', "c4", RPC),
    "call-payload-null": Case('[2,"c5","GetVariables",null]', "c5", FORMAT),
    "call-payload-list": Case('[2,"c6","GetVariables",[]]', "c6", FORMAT),
    # §4.3: NotImplemented = not known; NotSupported = known but not supported.
    "unknown-action": Case(_call("a1", "NoSuchAction", {}), "a1", NOT_IMPLEMENTED),
    "unknown-action-36-char-id": Case(_call(ID_36, "NoSuchAction", {}), ID_36, NOT_IMPLEMENTED),
    "unknown-action-long-name": Case(_call("a2", LONG_NAME, {}), "a2", NOT_IMPLEMENTED),
    "action-wrong-case": Case(_call("a3", "getVariables", {}), "a3", NOT_IMPLEMENTED),
    "response-name-as-action": Case(_call("a4", "GetVariablesResponse", {}), "a4", NOT_IMPLEMENTED),
    "unsupported-SetNetworkProfile": Case(
        _call("s1", "SetNetworkProfile", {}), "s1", NOT_SUPPORTED
    ),
    "unsupported-GetLog": Case(_call("s2", "GetLog", {}), "s2", NOT_SUPPORTED),
    "station-initiated-action": Case(_call("s3", "BootNotification", {}), "s3", NOT_SUPPORTED),
    "v21-SetDefaultTariff-on-21": Case(
        _call("s4", "SetDefaultTariff", {}), "s4", NOT_SUPPORTED, ("2.1",)
    ),
    # A handled 2.1-only action: known and supported, so the schema is checked.
    "v21-SetDERControl-on-21": Case(_call("s9", "SetDERControl", {}), "s9", OCCURRENCE, ("2.1",)),
    "v21-UsePriorityCharging-on-21": Case(
        _call("s5", "UsePriorityCharging", {}), "s5", NOT_SUPPORTED, ("2.1",)
    ),
    # AFRRSignal is handled (CentralFrequency): its schema is checked on 2.1.
    "v21-AFRRSignal-on-21": Case(_call("s11", "AFRRSignal", {}), "s11", OCCURRENCE, ("2.1",)),
    "v21-SetDERControl-on-201": Case(
        _call("s6", "SetDERControl", {}), "s6", NOT_IMPLEMENTED, ("2.0.1",)
    ),
    "v21-SetDefaultTariff-on-201": Case(
        _call("s10", "SetDefaultTariff", {}), "s10", NOT_IMPLEMENTED, ("2.0.1",)
    ),
    "v21-AFRRSignal-on-201": Case(_call("s7", "AFRRSignal", {}), "s7", NOT_IMPLEMENTED, ("2.0.1",)),
    # A SEND's action as a CALL: on 2.1 it is a SEND message, not a CALL (§4.2.4).
    "send-action-as-call": Case(
        _call("s8", "NotifyPeriodicEventStream", {}), "s8", NOT_IMPLEMENTED
    ),
    # Schema checks of a supported action (§4.1.7, §4.3).
    "missing-required": Case(_call("v1", "GetVariables", {}), "v1", OCCURRENCE),
    "missing-nested-required": Case(
        _call("v2", "GetVariables", {"getVariableData": [{"component": {"name": "X"}}]}),
        "v2",
        OCCURRENCE,
    ),
    "empty-list-min-items": Case(
        _call("v3", "GetVariables", {"getVariableData": []}), "v3", OCCURRENCE
    ),
    "wrong-type-list": Case(_call("v4", "GetVariables", {"getVariableData": "x"}), "v4", TYPE),
    "wrong-type-nested": Case(
        _call(
            "v5",
            "GetVariables",
            {"getVariableData": [{"component": {"name": 5}, "variable": {"name": "x"}}]},
        ),
        "v5",
        TYPE,
    ),
    "bad-enum": Case(
        _call("v6", "GetVariables", _get_variables(attributeType="Bogus")), "v6", PROPERTY
    ),
    "string-too-long": Case(
        _call(
            "v7",
            "GetVariables",
            {"getVariableData": [{"component": {"name": "C" * 51}, "variable": {"name": "x"}}]},
        ),
        "v7",
        PROPERTY,
    ),
    # OCPP 2.1 adds "minimum": 0 to ResetRequest.evseId; 2.0.1 has no bound there.
    "integer-below-minimum": Case(
        _call("v8", "Reset", {"type": "Immediate", "evseId": -1}), "v8", PROPERTY, ("2.1",)
    ),
    "additional-property": Case(
        _call("v9", "GetVariables", {**VALID_GET_VARIABLES, "extra": 1}), "v9", FORMAT
    ),
    "additional-property-long-name": Case(
        _call("v10", "GetVariables", {**VALID_GET_VARIABLES, LONG_NAME: 1}), "v10", FORMAT
    ),
    "additional-nested-property": Case(
        _call("v11", "TriggerMessage", {"requestedMessage": "Heartbeat", "evse": {"x": 1}}),
        "v11",
        FORMAT,
    ),
}

# Frames that must get no reply at all, and must not break the link.
SILENT: dict[str, tuple[str, tuple[str, ...]]] = {
    # A response to a CALL we never sent is ignored (never answer a response, §4.2.3).
    "callresult-unknown-id": ('[3,"no-such-call",{}]', ("2.0.1", "2.1")),
    "callerror-unknown-id": ('[4,"no-such-call","GenericError","",{}]', ("2.0.1", "2.1")),
    "callresult-bad-shape": ('[3,"no-such-call"]', ("2.0.1", "2.1")),
    "callresult-id-number": ("[3,17,{}]", ("2.0.1", "2.1")),
    "callerror-bad-shape": ('[4,"no-such-call","GenericError"]', ("2.0.1", "2.1")),
    # OCPP 2.1 §4.2.4: "The receiver SHALL NOT respond to a SEND message".
    "send-valid": (
        json.dumps(
            [
                6,
                "send-1",
                "NotifyPeriodicEventStream",
                {"id": 1, "pending": 0, "basetime": "2024-08-27T12:30:40Z", "data": []},
            ]
        ),
        ("2.1",),
    ),
    "send-invalid-payload": ('[6,"send-2","NotifyPeriodicEventStream",{}]', ("2.1",)),
    "send-unknown-action": ('[6,"send-3","NoSuchAction",{}]', ("2.1",)),
    "send-call-action": ('[6,"send-4","GetVariables",{}]', ("2.1",)),
    "send-without-payload": ('[6,"send-5","NotifyPeriodicEventStream"]', ("2.1",)),
    # OCPP 2.1 §4.2.3: a CALLRESULTERROR is an error response; it is logged, not answered.
    "callresulterror": ('[5,"no-such-call","FormatViolation","bad",{}]', ("2.1",)),
}


def _params(table: dict[str, Any], versions: Callable[[Any], tuple[str, ...]]) -> list[Any]:
    return [
        pytest.param(f"ocpp{version}", name, id=f"{name}-{version}")
        for name, entry in table.items()
        for version in ("2.0.1", "2.1")
        if version in versions(entry)
    ]


@dataclass
class Wire:
    """A CSMS with one booted station on one WebSocket."""

    csms: Csms
    version: str
    connections_seen: int

    async def send_bad(self, raw: str | bytes) -> Frame | None:
        return await self.csms.send_raw(STATION_ID, raw)

    async def assert_link_alive(self) -> Frame:
        """The station still answers GetVariables, on the same connection as before."""
        reply = await self.csms.call(STATION_ID, "GetVariables", VALID_GET_VARIABLES, timeout_s=5)
        assert reply.message_type == 3, reply.raw
        [result] = reply.payload["getVariableResult"]
        assert result["attributeStatus"] == "Accepted"
        assert result["attributeValue"] == "300"
        assert self.csms.connections_seen == self.connections_seen
        return reply


async def _wire(subprotocol: str, station_factory: Callable[..., RunningStation]) -> Wire:
    csms = Csms(subprotocols=(subprotocol,))
    await csms.start()
    station_factory(csms)
    await csms.wait_action("BootNotification", STATION_ID, include_past=True)
    link = await csms.wait_connected(STATION_ID)
    assert link.version == subprotocol.removeprefix("ocpp")
    return Wire(csms, link.version, csms.connections_seen)


@pytest.fixture
async def wire_factory(
    station_factory: Callable[..., RunningStation],
) -> AsyncIterator[Callable[[str], Any]]:
    started: list[Csms] = []

    async def factory(subprotocol: str) -> Wire:
        wire = await _wire(subprotocol, station_factory)
        started.append(wire.csms)
        return wire

    yield factory
    for csms in started:
        await csms.stop()


def assert_call_error(frame: Frame | None, message_id: str, code: str) -> list[Any]:
    """``[4, message_id, code, description, {details}]`` as Part 4 §4.2.3 Table 7 requires."""
    assert frame is not None, "no reply"
    message = json.loads(frame.raw)  # the whole reply is valid JSON
    assert isinstance(message, list) and len(message) == 5, frame.raw
    type_id, reply_id, reply_code, description, details = message
    assert type_id == 4, frame.raw
    assert reply_id == message_id, frame.raw
    assert reply_code == code, frame.raw
    assert isinstance(description, str) and len(description) <= 255, frame.raw
    assert isinstance(details, dict), frame.raw
    return message


# --- CALLERROR for every bad frame ------------------------------------------------------------


@pytest.mark.parametrize(("subprotocol", "case_name"), _params(CASES, lambda c: c.versions))
async def test_bad_frame_gets_exact_callerror_and_link_survives(
    subprotocol: str, case_name: str, wire_factory: Callable[[str], Any]
) -> None:
    case = CASES[case_name]
    wire: Wire = await wire_factory(subprotocol)
    reply = await wire.send_bad(case.raw)
    assert_call_error(reply, case.message_id, case.code)
    await wire.assert_link_alive()


@pytest.mark.parametrize("subprotocol", SUBPROTOCOLS)
async def test_all_bad_frames_in_a_row_on_one_connection(
    subprotocol: str, wire_factory: Callable[[str], Any]
) -> None:
    """The whole table back to back: one connection survives all of it."""
    wire: Wire = await wire_factory(subprotocol)
    for name, case in CASES.items():
        if wire.version not in case.versions:
            continue
        reply = await wire.send_bad(case.raw)
        try:
            assert_call_error(reply, case.message_id, case.code)
        except AssertionError as exc:
            raise AssertionError(f"case {name}: {exc}") from exc
    await wire.assert_link_alive()


@pytest.mark.parametrize(("subprotocol", "case_name"), _params(SILENT, lambda s: s[1]))
async def test_frame_that_must_not_be_answered(
    subprotocol: str, case_name: str, wire_factory: Callable[[str], Any]
) -> None:
    raw, _ = SILENT[case_name]
    wire: Wire = await wire_factory(subprotocol)
    start = len(wire.csms.frames)
    # timeout_s=0: do not wait here; the ordering check below proves there was no reply.
    await wire.csms.send_raw(STATION_ID, raw, expect_reply=False, timeout_s=0)
    reply = await wire.assert_link_alive()
    answers = [
        f
        for f in wire.csms.frames[start:]
        if f.direction == "in" and f.station_id == STATION_ID and f.message_type != 2
    ]
    assert answers == [reply], [f.raw for f in answers]


# --- OCPP 2.1: no action goes unanswered ------------------------------------------------------


def _handled_actions() -> frozenset[str]:
    """The actions the station answers: those with an ``@on`` handler (as the session counts)."""
    routes = create_route_map(StationSession)
    return frozenset(action for action, handlers in routes.items() if "_on_action" in handlers)


def _v21_call_actions() -> list[str]:
    schemas = resources.files("ocpp.v21").joinpath("schemas")
    with_schema = {
        entry.name.removesuffix("Request.json")
        for entry in schemas.iterdir()
        if entry.name.endswith("Request.json")
    }
    return sorted(str(a.value) for a in Action21 if a.value in with_schema)


def test_handled_actions_are_known_to_both_versions() -> None:
    """Sanity for the loop below: the route map names real actions, and leaves most unhandled."""
    handled = _handled_actions()
    assert "GetVariables" in handled
    assert handled <= set(_v21_call_actions())
    assert {"SetDefaultTariff", "SetNetworkProfile", "GetLog"}.isdisjoint(handled)


async def test_every_unhandled_v21_action_gets_not_supported(
    wire_factory: Callable[[str], Any],
) -> None:
    """DESIGN.md: ``ocpp.v21`` leaves an unhandled 2.1 action without any response.

    Every 2.1 CALL action with a request schema that the station does not handle (both the
    CSMS-initiated ones and the station-initiated ones sent the wrong way) gets a CALLERROR.
    ``rpc.check_call`` checks "known" (else NotImplemented), then "supported" (else
    NotSupported), and only then the schema; so ``{}`` gets NotSupported even when it is not a
    valid payload of that action.
    """
    wire: Wire = await wire_factory("ocpp2.1")
    unhandled = [a for a in _v21_call_actions() if a not in _handled_actions()]
    assert len(unhandled) > 50  # a floor that falls as handlers are added
    for index, action in enumerate(unhandled):
        message_id = f"u-{index}"
        reply = await wire.send_bad(_call(message_id, action, {}))
        try:
            assert_call_error(reply, message_id, NOT_SUPPORTED)
        except AssertionError as exc:
            raise AssertionError(f"action {action}: {exc}") from exc
    await wire.assert_link_alive()


# --- values the station echoes back ------------------------------------------------------------


@pytest.mark.parametrize("subprotocol", SUBPROTOCOLS)
async def test_lone_surrogate_in_echoed_value_keeps_the_link(
    subprotocol: str, wire_factory: Callable[[str], Any]
) -> None:
    r"""A schema-valid name holding a JSON escape of a lone surrogate (``"\ud800"``).

    The GetVariables result echoes the component back; the reply must still be sendable UTF-8 text.
    """
    wire: Wire = await wire_factory(subprotocol)
    raw = '[2,"sur-1","GetVariables",{"getVariableData":[{"component":{"name":"\\ud800"},'
    raw += '"variable":{"name":"x"}}]}]'
    reply = await wire.send_bad(raw)
    assert reply is not None
    message = json.loads(reply.raw)
    assert message[0] in (3, 4) and message[1] == "sur-1", reply.raw
    reply.raw.encode("utf-8")  # a WebSocket text frame is UTF-8 (RFC 6455 §5.6)
    await wire.assert_link_alive()
