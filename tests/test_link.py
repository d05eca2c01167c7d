"""Integration tests of the OCPP link: a real station against a real CSMS, on both subprotocols.

Every test runs ``run_station`` in this event loop against :class:`station.sim.csms.Csms` (built on
the ``ocpp`` library, not on the station's own OCPP code) over a WebSocket on 127.0.0.1, with the
station's SQLite database and message log in ``tmp_path``. Nothing of the station is mocked or
patched; the tests only look at what crosses the wire (and at the station's message log).

Nothing sleeps: a test waits for frames with a timeout. Where a test must show that something did
*not* happen, it uses order on one WebSocket instead of a timeout where it can: the station handles
the CSMS's frames in order and sends its own CALLs one at a time, so a later marker (a triggered
Heartbeat) proves that nothing was queued before it. Requirement ids are OCPP 2.0.1 Part 2
(B = provisioning, G = availability, F = remote control, P = data transfer) and OCPP-J Part 4.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from station.clock import format_ocpp_time
from station.config import parse_config
from station.sim.csms import Csms, Frame
from tests.conftest import STATION_ID, RunningStation, assert_one_call_in_flight, station_config

SUBPROTOCOLS = ("ocpp2.0.1", "ocpp2.1")

HEARTBEAT_INTERVAL = {
    "component": {"name": "OCPPCommCtrlr"},
    "variable": {"name": "HeartbeatInterval"},
}


# --- the bench: a CSMS and a station against it; the station stops first ---------------------


@dataclass
class Bench:
    """A CSMS with a station connecting to it."""

    csms: Csms
    station: RunningStation
    #: ``id(frame)`` → the loop time at which the CSMS recorded it.
    arrived: dict[int, float] = field(default_factory=dict)

    def arrival(self, frame: Frame) -> float:
        return self.arrived[id(frame)]


Start = Callable[..., Awaitable[Bench]]


@pytest.fixture(params=SUBPROTOCOLS)
def subprotocol(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def start(subprotocol: str, tmp_path: Path) -> AsyncIterator[Start]:
    """Start a CSMS that speaks only ``subprotocol``, then a station against it.

    Keyword arguments: ``csms`` (options for :class:`Csms`), ``csms_config`` (fields of the
    station's ``[csms]`` table to change), ``evses``, or ``toml``: the whole station config as
    TOML text, with ``{url}`` for the CSMS URL.
    """
    servers: list[Csms] = []
    stations: list[RunningStation] = []

    async def start(
        *,
        csms: dict[str, Any] | None = None,
        csms_config: dict[str, Any] | None = None,
        evses: int = 2,
        toml: str | None = None,
    ) -> Bench:
        server = Csms(subprotocols=(subprotocol,), **(csms or {}))
        bench_arrived: dict[int, float] = {}
        loop = asyncio.get_running_loop()
        server.on_frame = lambda frame: bench_arrived.__setitem__(id(frame), loop.time())
        await server.start()
        servers.append(server)
        if toml is not None:
            text = textwrap.dedent(toml).replace("{url}", server.url)
            config = parse_config(text, source="test_link.toml", base_dir=tmp_path)
        else:
            config = station_config(tmp_path, server.url, evses=evses)
        if csms_config:
            # Not csms_extra: station_config already sets these keys, and TOML forbids repeats.
            config = dataclasses.replace(
                config, csms=dataclasses.replace(config.csms, **csms_config)
            )
        station = RunningStation(config).start()
        stations.append(station)
        return Bench(server, station, bench_arrived)

    yield start
    for station in stations:
        with contextlib.suppress(Exception):
            await station.shutdown()
    for server in servers:
        await server.stop()


# --- helpers ----------------------------------------------------------------------------------


def is_call(frame: Frame, action: str) -> bool:
    return frame.direction == "in" and frame.station_id == STATION_ID and frame.action == action


async def calls(
    csms: Csms,
    action: str,
    count: int = 1,
    *,
    since: int = 0,
    where: Callable[[Frame], bool] = lambda frame: True,
    timeout_s: float = 5,
) -> list[Frame]:
    """The first ``count`` CALLs of ``action`` from the station, from ``csms.frames[since]`` on."""
    async with asyncio.timeout(timeout_s):
        while True:
            found = [f for f in csms.frames[since:] if is_call(f, action) and where(f)]
            if len(found) >= count:
                return found[:count]
            # Registered before anything else can be recorded: no frame slips between.
            await csms.wait_for(lambda f: is_call(f, action) and where(f), timeout_s=timeout_s)


async def response_to(csms: Csms, call: Frame, timeout_s: float = 5) -> Frame:
    """The CSMS's CALLRESULT/CALLERROR to one of the station's CALLs."""
    return await csms.wait_for(
        lambda f: (
            f.direction == "out"
            and f.station_id == STATION_ID
            and f.message_type in (3, 4)
            and f.message[1] == call.message[1]
        ),
        timeout_s=timeout_s,
        include_past=True,
    )


async def booted(csms: Csms, connectors: int = 2) -> Frame:
    """Wait for the accepted BootNotification and the StatusNotification of every connector."""
    boot = (await calls(csms, "BootNotification"))[0]
    await calls(csms, "StatusNotification", connectors)
    return boot


async def request(
    csms: Csms, action: str, payload: dict[str, Any], *, timeout_s: float = 5
) -> dict[str, Any]:
    """Send a CALL from the CSMS and return the station's CALLRESULT payload."""
    reply = await csms.call(STATION_ID, action, payload, timeout_s=timeout_s)
    assert reply.message_type == 3, reply.raw
    return reply.payload


async def call_error(csms: Csms, action: str, payload: dict[str, Any]) -> str:
    """Send a CALL that must be refused; return the CALLERROR's errorCode."""
    reply = await csms.call(STATION_ID, action, payload, timeout_s=5)
    assert reply.message_type == 4, reply.raw
    return str(reply.message[2])


def variable(
    component: str,
    name: str,
    *,
    instance: str | None = None,
    evse: dict[str, int] | None = None,
    attribute: str | None = None,
    value: str | None = None,
) -> dict[str, Any]:
    """A GetVariableData (or, with ``value``, SetVariableData) item, camelCase."""
    item: dict[str, Any] = {"component": {"name": component}, "variable": {"name": name}}
    if evse is not None:
        item["component"]["evse"] = evse
    if instance is not None:
        item["variable"]["instance"] = instance
    if attribute is not None:
        item["attributeType"] = attribute
    if value is not None:
        item["attributeValue"] = value
    return item


async def get_variables(csms: Csms, *items: dict[str, Any]) -> list[dict[str, Any]]:
    payload = await request(csms, "GetVariables", {"getVariableData": list(items)})
    results: list[dict[str, Any]] = payload["getVariableResult"]
    return results


async def set_variables(csms: Csms, *items: dict[str, Any]) -> list[dict[str, Any]]:
    payload = await request(csms, "SetVariables", {"setVariableData": list(items)})
    results: list[dict[str, Any]] = payload["setVariableResult"]
    return results


async def heartbeat_interval(csms: Csms) -> str:
    [result] = await get_variables(csms, HEARTBEAT_INTERVAL)
    assert result["attributeStatus"] == "Accepted", result
    return str(result["attributeValue"])


async def trigger_heartbeat(csms: Csms) -> Frame:
    """A marker: TriggerMessage Heartbeat, and the Heartbeat it causes (F06)."""
    since = len(csms.frames)
    payload = await request(csms, "TriggerMessage", {"requestedMessage": "Heartbeat"})
    assert payload["status"] == "Accepted"
    return (await calls(csms, "Heartbeat", since=since))[0]


def statuses(frames: list[Frame]) -> list[tuple[int, int, str]]:
    return [
        (f.payload["evseId"], f.payload["connectorId"], f.payload["connectorStatus"])
        for f in frames
    ]


def calls_since(csms: Csms, action: str, since: int) -> list[Frame]:
    """The station's CALLs of ``action`` recorded so far at or after ``csms.frames[since]``."""
    return [f for f in csms.frames[since:] if is_call(f, action)]


def station_calls_between(csms: Csms, first: Frame, last: Frame) -> list[str]:
    """Actions of the station's CALLs recorded after ``first`` and before ``last``."""
    start = csms.frames.index(first) + 1
    end = csms.frames.index(last)
    return [
        str(f.action)
        for f in csms.frames[start:end]
        if f.direction == "in" and f.station_id == STATION_ID and f.action is not None
    ]


# --- B01-B03 boot ---------------------------------------------------------------------------


async def test_boot_accepted_status_per_connector_and_heartbeat_interval(start: Start) -> None:
    """B01 (B01.FR.04), G01: Accepted → a StatusNotification per connector, then a Heartbeat
    every interval of the BootNotificationResponse; syncing the clock from their currentTime works.
    """
    bench = await start(csms={"heartbeat_interval_s": 1})
    csms = bench.csms
    boot = (await calls(csms, "BootNotification"))[0]
    assert boot.payload["reason"] == "PowerUp"
    assert boot.payload["chargingStation"]["serialNumber"] == f"SN-{STATION_ID}"
    notifications = await calls(csms, "StatusNotification", 2)
    assert sorted(statuses(notifications)) == [(1, 1, "Available"), (2, 1, "Available")]
    first, second = await calls(csms, "Heartbeat", 2, timeout_s=5)
    # Interval 1 s (lower bounds only: a loaded machine may be late, never early).
    accepted = await response_to(csms, boot)
    assert bench.arrival(first) - bench.arrival(accepted) >= 0.9
    assert bench.arrival(second) - bench.arrival(first) >= 0.9
    assert await heartbeat_interval(csms) == "1"
    # The clock-sync path ran (boot and two heartbeats) and left a sane clock behind.
    [clock] = await get_variables(csms, variable("ClockCtrlr", "DateTime"))
    assert clock["attributeStatus"] == "Accepted"
    station_now = datetime.fromisoformat(clock["attributeValue"].replace("Z", "+00:00"))
    assert abs((station_now - datetime.now(UTC)).total_seconds()) < 5
    assert_one_call_in_flight(csms.frames)


async def test_boot_pending_answers_csms_and_sends_nothing_else(start: Start) -> None:
    """B02: while Pending the station answers the CSMS, sends no other CALL than
    BootNotification, and boots again after the interval; accepted, it reports its connectors.
    """
    bench = await start(
        csms={"heartbeat_interval_s": 1, "boot_statuses": {STATION_ID: ["Pending", "Accepted"]}}
    )
    csms = bench.csms
    first = (await calls(csms, "BootNotification"))[0]
    pending = await response_to(csms, first)
    assert pending.payload["status"] == "Pending"
    assert await heartbeat_interval(csms) == "300"  # answered while Pending
    second = (await calls(csms, "BootNotification", 2, timeout_s=5))[1]
    assert second.message[1] != first.message[1]
    assert bench.arrival(second) - bench.arrival(pending) >= 0.9
    assert station_calls_between(csms, first, second) == []
    accepted = await response_to(csms, second)
    assert accepted.payload["status"] == "Accepted"
    await calls(csms, "StatusNotification", 2)
    assert_one_call_in_flight(csms.frames)


async def answer_then_call(
    csms: Csms,
    call: Frame,
    result: dict[str, Any],
    action: str,
    payload: dict[str, Any],
    *,
    timeout_s: float = 5,
) -> Frame:
    """Answer the station's ``call`` by hand and send a CALL right behind it, with nothing in
    between: both frames reach the station together, as they can from any CSMS. Returns the
    station's response to the CALL.
    """
    point = csms.stations[STATION_ID].point
    message_id = f"behind-{len(csms.frames)}"
    reply = asyncio.ensure_future(
        csms.wait_for(
            lambda f: (
                f.direction == "in" and f.message_type in (3, 4) and f.message[1] == message_id
            ),
            timeout_s=timeout_s,
        )
    )
    await point._send(json.dumps([3, call.message[1], result]))
    await point._send(json.dumps([2, message_id, action, payload]))
    return await reply


async def test_boot_rejected_answers_nothing_until_accepted(start: Start) -> None:
    """B03: while Rejected the station answers nothing and sends nothing until the interval has
    passed, then boots again; once Accepted it answers the CSMS again, starting with a request
    that the CSMS sends right behind its Accepted response, and it takes its clock from the
    response's currentTime (B01).
    """
    bench = await start(
        csms={"heartbeat_interval_s": 2, "boot_statuses": {STATION_ID: ["Rejected"]}}
    )
    csms = bench.csms
    first = (await calls(csms, "BootNotification"))[0]
    rejected = await response_to(csms, first)
    assert rejected.payload["status"] == "Rejected"
    csms.ignore_actions.add("BootNotification")  # the test answers the next one itself
    with pytest.raises(TimeoutError):
        await csms.call(
            STATION_ID, "GetVariables", {"getVariableData": [HEARTBEAT_INTERVAL]}, timeout_s=1
        )
    second = (await calls(csms, "BootNotification", 2, timeout_s=5))[1]
    assert bench.arrival(second) - bench.arrival(rejected) >= 1.9
    assert station_calls_between(csms, first, second) == []
    csms_time = datetime.now(UTC) + timedelta(days=1)  # the CSMS's clock is a day ahead
    accepted = {"currentTime": format_ocpp_time(csms_time), "interval": 7, "status": "Accepted"}
    reply = await answer_then_call(
        csms, second, accepted, "GetVariables", {"getVariableData": [HEARTBEAT_INTERVAL]}
    )
    assert reply.message_type == 3, reply.raw
    assert reply.payload["getVariableResult"][0]["attributeStatus"] == "Accepted"
    assert reply.payload["getVariableResult"][0]["attributeValue"] == "7"
    assert await heartbeat_interval(csms) == "7"
    for notification in await calls(csms, "StatusNotification", 2):
        stamped = datetime.fromisoformat(notification.payload["timestamp"].replace("Z", "+00:00"))
        assert abs((stamped - csms_time).total_seconds()) < 60
    assert_one_call_in_flight(csms.frames)


async def test_boot_rejected_request_right_behind_the_response_is_not_answered(
    start: Start,
) -> None:
    """B03: a CSMS request that arrives together with the Rejected response is not answered."""
    bench = await start(csms={"ignore_actions": {"BootNotification"}})
    csms = bench.csms
    boot = (await calls(csms, "BootNotification"))[0]
    rejected = {
        "currentTime": format_ocpp_time(datetime.now(UTC)),
        "interval": 60,
        "status": "Rejected",
    }
    with pytest.raises(TimeoutError):
        await answer_then_call(
            csms,
            boot,
            rejected,
            "GetVariables",
            {"getVariableData": [HEARTBEAT_INTERVAL]},
            timeout_s=1,
        )


async def test_boot_message_timeout_sends_a_new_boot_notification(start: Start) -> None:
    """OCPP-J Part 4 §4.1.1, OCPPCommCtrlr.MessageTimeout, B01: an unanswered BootNotification
    times out and the station sends a new one, with a new message id.
    """
    bench = await start(
        csms={"ignore_actions": {"BootNotification"}}, csms_config={"message_timeout_s": 1}
    )
    csms = bench.csms
    first, second = await calls(csms, "BootNotification", 2, timeout_s=6)
    assert second.message[1] != first.message[1]
    assert not [f for f in csms.frames if f.direction == "out" and f.message[1] == first.message[1]]
    # MessageTimeout (1 s), then boot_retry_interval_s (1 s).
    assert bench.arrival(second) - bench.arrival(first) >= 1.9
    assert station_calls_between(csms, first, second) == []
    assert (await response_to(csms, second)).payload["status"] == "Accepted"
    await calls(csms, "StatusNotification", 2)


# --- B05/B06 variables ------------------------------------------------------------------------


async def test_get_variables_statuses(start: Start) -> None:
    """B06 (B06.FR.02/.03/.06/.07/.08/.09, B06.FR.16): one result per item, in order; too many
    items → CALLERROR.
    """
    csms = (await start()).csms
    await booted(csms)
    results = await get_variables(
        csms,
        HEARTBEAT_INTERVAL,
        variable("NoSuchCtrlr", "HeartbeatInterval"),
        variable("OCPPCommCtrlr", "NoSuchVariable"),
        variable("OCPPCommCtrlr", "HeartbeatInterval", attribute="Target"),
        variable("OCPPCommCtrlr", "MessageTimeout", instance="Default"),
        variable("EVSE", "Power", evse={"id": 1}, attribute="MaxSet"),
        variable("SecurityCtrlr", "BasicAuthPassword"),
    )
    assert [r["attributeStatus"] for r in results] == [
        "Accepted",
        "UnknownComponent",
        "UnknownVariable",
        "NotSupportedAttributeType",
        "Accepted",
        "Accepted",
        "Rejected",  # B06.FR.09: WriteOnly
    ]
    assert results[0]["attributeValue"] == "300"  # from the BootNotificationResponse
    assert results[0]["attributeType"] == "Actual"  # B06.FR.03: absent means Actual
    assert results[3]["attributeType"] == "Target"
    assert results[1]["component"] == {"name": "NoSuchCtrlr"}  # echoed (B06.FR.02)
    assert results[4]["attributeValue"] == "5"  # message_timeout_s of the test config
    assert results[5]["attributeValue"] == "20000"
    assert "attributeValue" not in results[6]
    # B06.FR.16: more items than ItemsPerMessage[GetVariables] (50) → a CALLERROR.
    too_many = {"getVariableData": [HEARTBEAT_INTERVAL] * 51}
    assert await call_error(csms, "GetVariables", too_many) == "OccurrenceConstraintViolation"
    assert await heartbeat_interval(csms) == "300"  # the link goes on
    assert_one_call_in_flight(csms.frames)


async def test_set_variables_persist_across_restart(start: Start) -> None:
    """B05 (B05.FR.07/.08/.10): SetVariables HeartbeatInterval is Accepted, read back, survives a
    restart and drives the heartbeat after it; read-only, out-of-range and ill-typed values are
    Rejected and change nothing.

    The CSMS answers BootNotification with interval 0, so the boot does not overwrite the
    HeartbeatInterval the CSMS set (with a positive interval it would: B01.FR.04).
    """
    bench = await start(csms={"heartbeat_interval_s": 0})
    csms = bench.csms
    await booted(csms)
    assert await heartbeat_interval(csms) == "300"  # the configured default
    [accepted] = await set_variables(csms, {**HEARTBEAT_INTERVAL, "attributeValue": "1"})
    assert accepted["attributeStatus"] == "Accepted"
    assert await heartbeat_interval(csms) == "1"
    await calls(csms, "Heartbeat", timeout_s=5)  # the new interval is used at once

    refused = await set_variables(
        csms,
        variable("OCPPCommCtrlr", "MessageTimeout", instance="Default", value="10"),
        variable("OCPPCommCtrlr", "RetryBackOffRepeatTimes", value="-1"),
        variable("OCPPCommCtrlr", "OfflineThreshold", value="sixty"),
        variable("AuthCtrlr", "AuthorizeRemoteStart", value="yes"),
        variable("SmartChargingCtrlr", "LimitChangeSignificance", value="101"),
    )
    assert [r["attributeStatus"] for r in refused] == ["Rejected"] * 5
    assert [r["attributeStatusInfo"]["reasonCode"] for r in refused] == [
        "ReadOnly",  # B05.FR.08
        "ValueTooLow",  # B05.FR.07
        "InvalidValue",
        "InvalidValue",
        "ValueTooHigh",
    ]
    [timeout] = await get_variables(
        csms, variable("OCPPCommCtrlr", "MessageTimeout", instance="Default")
    )
    assert timeout["attributeValue"] == "5"

    await bench.station.restart()
    since = len(csms.frames)
    boot = (await calls(csms, "BootNotification", since=since))[0]
    assert boot.payload["reason"] == "PowerUp"
    await calls(csms, "StatusNotification", 2, since=since)
    assert await heartbeat_interval(csms) == "1"
    await calls(csms, "Heartbeat", since=since, timeout_s=5)  # 1 s, not the default 300 s
    assert_one_call_in_flight(csms.frames)


async def test_set_variables_more_items_than_allowed(start: Start) -> None:
    """B05.FR.11: more items than ItemsPerMessage[SetVariables] → CALLERROR, nothing applied."""
    csms = (await start()).csms
    await booted(csms)
    items = [{**HEARTBEAT_INTERVAL, "attributeValue": "7"}] * 51
    code = await call_error(csms, "SetVariables", {"setVariableData": items})
    assert code == "OccurrenceConstraintViolation"
    assert await heartbeat_interval(csms) == "300"


# --- B07/B08 reports --------------------------------------------------------------------------


async def notify_reports(csms: Csms, request_id: int, since: int) -> list[Frame]:
    """Every NotifyReport part of one report, up to the part with tbc false."""
    parts: list[Frame] = []
    while not parts or parts[-1].payload.get("tbc", False):
        parts = await calls(
            csms,
            "NotifyReport",
            len(parts) + 1,
            since=since,
            where=lambda f: f.payload.get("requestId") == request_id,
        )
    return parts


def report_entries(parts: list[Frame]) -> dict[tuple[Any, ...], dict[str, Any]]:
    entries: dict[tuple[Any, ...], dict[str, Any]] = {}
    for part in parts:
        for item in part.payload["reportData"]:
            component, var = item["component"], item["variable"]
            key = (
                component["name"],
                component.get("instance"),
                json.dumps(component.get("evse"), sort_keys=True),
                var["name"],
                var.get("instance"),
            )
            assert key not in entries, f"reported twice: {key}"
            entries[key] = item
    return entries


async def test_base_report_full_inventory_in_parts(start: Start) -> None:
    """B07 (B07.FR.03, errata 2025-01: WriteOnly without a value): GetBaseReport FullInventory
    is Accepted and answered with NotifyReport parts: same requestId, seqNo 0..n, tbc on all but
    the last. Eight EVSEs make the report exceed ItemsPerMessage[GetReport] (100 items).
    """
    csms = (await start(evses=8)).csms
    await booted(csms, connectors=8)
    since = len(csms.frames)
    payload = await request(
        csms, "GetBaseReport", {"requestId": 4711, "reportBase": "FullInventory"}
    )
    assert payload["status"] == "Accepted"
    parts = await notify_reports(csms, 4711, since)
    assert len(parts) >= 2
    assert [p.payload["seqNo"] for p in parts] == list(range(len(parts)))
    assert [p.payload.get("tbc", False) for p in parts] == [True] * (len(parts) - 1) + [False]
    assert len({p.payload["generatedAt"] for p in parts}) == 1
    assert all(len(p.payload["reportData"]) <= 100 for p in parts)
    entries = report_entries(parts)
    heartbeat = entries[("OCPPCommCtrlr", None, "null", "HeartbeatInterval", None)]
    [actual] = heartbeat["variableAttribute"]
    assert actual["value"] == "300"
    assert actual["mutability"] == "ReadWrite"
    assert heartbeat["variableCharacteristics"]["dataType"] == "integer"
    password = entries[("SecurityCtrlr", None, "null", "BasicAuthPassword", None)]
    assert all("value" not in a for a in password["variableAttribute"])
    assert password["variableAttribute"][0]["mutability"] == "WriteOnly"
    evses = {k[2] for k in entries if k[0] == "EVSE"}
    assert evses == {json.dumps({"id": n}) for n in range(1, 9)}
    assert_one_call_in_flight(csms.frames)


async def test_report_requests_outside_the_happy_path(start: Start) -> None:
    """B07: a reportBase outside ReportBaseEnumType is a PropertyConstraintViolation (schema
    enum, Part 4 §4.3); B08: GetReport with nothing matching → EmptyResultSet and no
    NotifyReport; with componentCriteria Available → Accepted and a report.
    """
    csms = (await start()).csms
    await booted(csms)
    bogus = {"requestId": 1, "reportBase": "EverythingPlease"}
    assert await call_error(csms, "GetBaseReport", bogus) == "PropertyConstraintViolation"

    since = len(csms.frames)
    empty = await request(
        csms,
        "GetReport",
        {"requestId": 2, "componentVariable": [{"component": {"name": "NoSuchCtrlr"}}]},
    )
    assert empty["status"] == "EmptyResultSet"
    await trigger_heartbeat(csms)  # anything queued after the response would go out before it
    assert not calls_since(csms, "NotifyReport", since)

    since = len(csms.frames)
    available = await request(
        csms, "GetReport", {"requestId": 3, "componentCriteria": ["Available"]}
    )
    assert available["status"] == "Accepted"
    parts = await notify_reports(csms, 3, since)
    entries = report_entries(parts)
    assert ("ChargingStation", None, "null", "AvailabilityState", None) in entries
    # ReservationCtrlr.Available is true: the component matches.
    assert [k for k in entries if k[0] == "ReservationCtrlr"]
    assert_one_call_in_flight(csms.frames)


# --- B11/B12 reset ----------------------------------------------------------------------------


async def test_reset(start: Start) -> None:
    """B12: Reset of an unknown EVSE → Rejected; Reset OnIdle of an idle EVSE → Accepted and the
    station stays up; B11: Reset Immediate → the station restarts, reconnects and boots with
    reason RemoteReset.
    """
    csms = (await start()).csms
    await booted(csms)
    unknown = await request(csms, "Reset", {"type": "Immediate", "evseId": 9})
    assert unknown["status"] == "Rejected"
    evse = await request(csms, "Reset", {"type": "OnIdle", "evseId": 1})
    assert evse["status"] == "Accepted"
    await trigger_heartbeat(csms)
    assert len(csms.received("BootNotification", STATION_ID)) == 1

    old = await csms.wait_connected(STATION_ID)
    since = len(csms.frames)
    station = await request(csms, "Reset", {"type": "Immediate"})
    assert station["status"] == "Accepted"
    boot = (await calls(csms, "BootNotification", since=since))[0]
    assert boot.payload["reason"] == "RemoteReset"
    new = await csms.wait_reconnected(STATION_ID, old)
    assert new.connection is not old.connection
    await calls(csms, "StatusNotification", 2, since=since)
    assert await heartbeat_interval(csms) == "300"
    assert_one_call_in_flight(csms.frames)


# --- G03/G04 availability ---------------------------------------------------------------------


async def change_availability(csms: Csms, status: str, evse: dict[str, int] | None = None) -> str:
    payload: dict[str, Any] = {"operationalStatus": status}
    if evse is not None:
        payload["evse"] = evse
    return str((await request(csms, "ChangeAvailability", payload))["status"])


async def test_evse_availability_is_reported_and_persisted(start: Start) -> None:
    """G04: EVSE 1 Inoperative → Accepted and StatusNotification Unavailable for its connector
    only; an unknown EVSE or connector → Rejected; the state is persisted and survives a restart,
    and Operative makes it Available again.
    """
    bench = await start()
    csms = bench.csms
    await booted(csms)
    since = len(csms.frames)
    assert await change_availability(csms, "Inoperative", {"id": 1}) == "Accepted"
    await calls(csms, "StatusNotification", since=since)
    await trigger_heartbeat(csms)
    assert statuses(await calls(csms, "StatusNotification", since=since)) == [(1, 1, "Unavailable")]
    assert len(calls_since(csms, "StatusNotification", since)) == 1
    assert await change_availability(csms, "Inoperative", {"id": 9}) == "Rejected"
    assert await change_availability(csms, "Operative", {"id": 1, "connectorId": 5}) == "Rejected"

    await bench.station.restart()
    since = len(csms.frames)
    await calls(csms, "BootNotification", since=since)
    first = await calls(csms, "StatusNotification", 2, since=since)
    assert sorted(statuses(first)) == [(1, 1, "Unavailable"), (2, 1, "Available")]

    since = len(csms.frames)
    assert await change_availability(csms, "Operative", {"id": 1}) == "Accepted"
    back = await calls(csms, "StatusNotification", since=since)
    assert statuses(back) == [(1, 1, "Available")]
    assert_one_call_in_flight(csms.frames)


async def test_station_availability(start: Start) -> None:
    """G03: the whole station Inoperative → every connector Unavailable; Operative →
    every connector Available again.
    """
    csms = (await start()).csms
    await booted(csms)
    since = len(csms.frames)
    assert await change_availability(csms, "Inoperative") == "Accepted"
    down = await calls(csms, "StatusNotification", 2, since=since)
    assert sorted(statuses(down)) == [(1, 1, "Unavailable"), (2, 1, "Unavailable")]
    since = len(csms.frames)
    assert await change_availability(csms, "Operative") == "Accepted"
    up = await calls(csms, "StatusNotification", 2, since=since)
    assert sorted(statuses(up)) == [(1, 1, "Available"), (2, 1, "Available")]
    assert_one_call_in_flight(csms.frames)


# --- F06 trigger, P01 data transfer -----------------------------------------------------------


async def test_trigger_message(start: Start) -> None:
    """F06: Heartbeat and StatusNotification (of one connector) are Accepted and sent;
    F06.FR.17: BootNotification once accepted → Rejected; SignV2GCertificate → NotImplemented; a
    StatusNotification of an EVSE that does not exist → Rejected.
    """
    csms = (await start()).csms
    await booted(csms)
    await trigger_heartbeat(csms)

    since = len(csms.frames)
    payload = {"requestedMessage": "StatusNotification", "evse": {"id": 2, "connectorId": 1}}
    assert (await request(csms, "TriggerMessage", payload))["status"] == "Accepted"
    triggered = await calls(csms, "StatusNotification", since=since)
    assert statuses(triggered) == [(2, 1, "Available")]

    def trigger(payload: dict[str, Any]) -> Awaitable[dict[str, Any]]:
        return request(csms, "TriggerMessage", payload)

    assert (await trigger({"requestedMessage": "BootNotification"}))["status"] == "Rejected"
    sign_v2g = {"requestedMessage": "SignV2GCertificate"}
    assert (await trigger(sign_v2g))["status"] == "NotImplemented"
    unknown = {"requestedMessage": "StatusNotification", "evse": {"id": 9}}
    assert (await trigger(unknown))["status"] == "Rejected"
    since = len(csms.frames)
    await trigger_heartbeat(csms)
    assert not calls_since(csms, "StatusNotification", since)
    assert len(csms.received("BootNotification", STATION_ID)) == 1
    assert_one_call_in_flight(csms.frames)


async def test_data_transfer_unknown_vendor(start: Start) -> None:
    """P01: no vendor extension is implemented → UnknownVendorId."""
    csms = (await start()).csms
    await booted(csms)
    payload = {"vendorId": "org.example.station", "messageId": "hello", "data": {"x": 1}}
    assert (await request(csms, "DataTransfer", payload))["status"] == "UnknownVendorId"
    assert_one_call_in_flight(csms.frames)


# --- Part 4 §5.3 reconnect --------------------------------------------------------------------


async def test_reconnect_without_new_boot(start: Start) -> None:
    """OCPP-J Part 4 §5.3 / B04: after the CSMS drops the connection, and after the CSMS restarts
    on the same port, the station reconnects (the test's back-off is 0 s), sends no new
    BootNotification, and answers on the new connection.
    """
    csms = (await start()).csms
    await booted(csms)
    old = await csms.wait_connected(STATION_ID)
    await csms.drop(STATION_ID)
    new = await csms.wait_reconnected(STATION_ID, old)
    assert await heartbeat_interval(csms) == "300"
    assert csms.stations[STATION_ID] is new

    await csms.stop()
    await csms.start()
    newest = await csms.wait_reconnected(STATION_ID, new)
    assert await heartbeat_interval(csms) == "300"
    assert csms.stations[STATION_ID] is newest
    assert len(csms.received("BootNotification", STATION_ID)) == 1
    assert csms.connections_seen >= 3
    assert_one_call_in_flight(csms.frames)


# --- concurrency: the CSMS's CALLs while the station's CALL waits ----------------------------


async def test_csms_call_answered_while_station_call_waits(start: Start) -> None:
    """OCPP-J Part 4 §4.1.1: one CALL in flight per direction, and the directions are independent:
    while the CSMS holds back its Heartbeat response, the station answers the CSMS's GetVariables.
    """
    bench = await start(csms={"response_delay_s": {"Heartbeat": 2.0}})
    csms = bench.csms
    await booted(csms)
    heartbeat = await trigger_heartbeat(csms)
    reply = await csms.call(
        STATION_ID, "GetVariables", {"getVariableData": [HEARTBEAT_INTERVAL]}, timeout_s=1.5
    )
    assert reply.message_type == 3
    held = [f for f in csms.frames if f.direction == "out" and f.message[1] == heartbeat.message[1]]
    assert held == [], "the Heartbeat was answered before the GetVariables"
    await response_to(csms, heartbeat, timeout_s=5)
    await heartbeat_interval(csms)  # frames are read in order: the Heartbeat answer is in

    # The station's own record shows the same order.
    log_path = bench.station.config.storage.message_log_path
    lines = [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines()]

    def position(direction: str, message_id: str) -> int:
        [index] = [
            i
            for i, line in enumerate(lines)
            if line["direction"] == direction
            and line["message"][0] == 3
            and line["message"][1] == message_id
        ]
        return index

    answered = position("out", reply.message[1])
    heartbeat_answer = position("in", heartbeat.message[1])
    assert answered < heartbeat_answer
    assert_one_call_in_flight(csms.frames)


# --- the OCPP message log ---------------------------------------------------------------------


async def test_message_log_records_every_frame(start: Start) -> None:
    """Every frame in and out is one JSON line with time, direction and the message as sent."""
    bench = await start()
    csms = bench.csms
    await booted(csms)
    await heartbeat_interval(csms)
    await bench.station.shutdown()
    lines = bench.station.config.storage.message_log_path.read_text(encoding="utf-8")
    records = [json.loads(line) for line in lines.splitlines()]
    assert records and all(set(r) == {"time", "direction", "message"} for r in records)
    for record in records:
        when = datetime.strptime(record["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
        assert record["time"].endswith("Z") and len(record["time"]) == len(
            "2025-01-01T00:00:00.000Z"
        )
        assert abs((when.replace(tzinfo=UTC) - datetime.now(UTC)).total_seconds()) < 60
    # What the station sent is what the CSMS received, and the other way round, in order.
    mine = [f for f in csms.frames if f.station_id == STATION_ID]
    sent = [r["message"] for r in records if r["direction"] == "out"]
    received = [r["message"] for r in records if r["direction"] == "in"]
    assert sent == [f.message for f in mine if f.direction == "in"]
    assert received == [f.message for f in mine if f.direction == "out"]
    assert_one_call_in_flight(csms.frames)


async def test_message_log_can_be_switched_off(start: Start, tmp_path: Path) -> None:
    """``[storage] message_log = false``: no log file is written."""
    bench = await start(
        toml=f"""
        [station]
        id = "{STATION_ID}"
        [csms]
        url = "{{url}}"
        retry_backoff_wait_minimum_s = 0
        retry_backoff_random_range_s = 0
        [storage]
        database = "station.db"
        message_log = false
        [[evse]]
        id = 1
        connector = "chademo"
        [[evse]]
        id = 2
        connector = "ccs"
        """
    )
    csms = bench.csms
    await booted(csms)
    await heartbeat_interval(csms)
    await bench.station.shutdown()
    assert not bench.station.config.storage.message_log_path.exists()
    assert not list(tmp_path.rglob("*.jsonl"))
