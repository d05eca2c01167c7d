"""End to end: meter values (J01-J03) and TriggerMessage MeterValues / TransactionEvent (F06).

A real station (:class:`station.app.Station`) against the real CSMS (:class:`station.sim.csms.Csms`,
the ``ocpp`` library, schema validation on) over a WebSocket on 127.0.0.1, with a real SQLite file.
The intervals are set the way a CSMS sets them, with SetVariables, to 1 s so that the tests take
seconds; the CSMS's recorded frames are the evidence.
"""

from __future__ import annotations

import itertools
from typing import Any

from station.clock import parse_ocpp_time
from tests import test_transactions_e2e as tx_e2e
from tests.conftest import STATION_ID, assert_one_call_in_flight
from tests.test_link import calls, request, variable
from tests.test_transactions_e2e import (
    TOKEN,
    Start,
    assert_well_formed,
    drained,
    set_variables,
    tx_events,
    wait_event,
)

bench = tx_e2e.bench  # the fixture: a CSMS and a station on one database

IMPORT = "Energy.Active.Import.Register"
EXPORT = "Energy.Active.Export.Register"
UNITS = {
    IMPORT: "Wh",
    EXPORT: "Wh",
    "Power.Active.Import": "W",
    "Power.Active.Export": "W",
    "Current.Import": "A",
    "Current.Export": "A",
    "Voltage": "V",
    "SoC": "Percent",
}
UPDATED_MEASURANDS = [
    IMPORT,
    EXPORT,
    "Power.Active.Import",
    "Power.Active.Export",
    "Current.Import",
    "Voltage",
]


def sampled(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [sv for mv in payload.get("meterValue", []) for sv in mv["sampledValue"]]


def register(payload: dict[str, Any], measurand: str) -> float:
    (value,) = [float(sv["value"]) for sv in sampled(payload) if sv.get("measurand") == measurand]
    return value


def assert_values(payload: dict[str, Any], context: str, measurands: list[str]) -> None:
    """Every sampled value has the context, its unit, location Outlet; measurands as configured."""
    values = sampled(payload)
    assert [sv["measurand"] for sv in values] == measurands, values
    for sv in values:
        assert sv["context"] == context, sv
        assert sv["unitOfMeasure"] == {"unit": UNITS[sv["measurand"]]}, sv
        assert sv["location"] == "Outlet", sv
        assert "phase" not in sv  # a DC EVSE: overall values only


def on_the_second(payload: dict[str, Any]) -> bool:
    """Clock-aligned to a 1 s interval: every meterValue timestamp is a whole second."""
    stamps = [parse_ocpp_time(mv["timestamp"]) for mv in payload["meterValue"]]
    return all(t.microsecond == 0 for t in stamps)


async def test_periodic_updated_events(bench: Start) -> None:
    """J02: TxUpdatedInterval=1 gives Updated events, trigger MeterValuePeriodic, with the
    TxUpdatedMeasurands at Sample.Periodic, their units, and registers that never go back."""
    b = await bench()
    csms, station = b.csms, b.station
    assert station is not None
    await set_variables(
        csms,
        variable("SampledDataCtrlr", "TxUpdatedInterval", value="1"),
        variable("SampledDataCtrlr", "TxUpdatedMeasurands", value=",".join(UPDATED_MEASURANDS)),
        variable("AlignedDataCtrlr", "Interval", value="0"),
    )
    vehicle = station.sim_vehicles[1]
    vehicle.plug()
    vehicle.present(TOKEN)
    (started,) = await wait_event(csms, "Started")
    periodic = await wait_event(csms, "Updated", "MeterValuePeriodic", count=3, timeout_s=8)
    for event in periodic:
        assert_values(event, "Sample.Periodic", UPDATED_MEASURANDS)
    times = [parse_ocpp_time(e["timestamp"]) for e in [started, *periodic]]
    gaps_s = [(t2 - t1).total_seconds() for t1, t2 in itertools.pairwise(times[1:])]
    assert all(0.5 <= gap <= 2.0 for gap in gaps_s), gaps_s  # every second, not a burst
    imports = [register(e, IMPORT) for e in periodic]
    exports = [register(e, EXPORT) for e in periodic]
    assert imports == sorted(imports) and exports == sorted(exports)
    vehicle.unplug()
    await wait_event(csms, "Ended")
    await drained(station)
    assert_well_formed(tx_events(csms))
    assert not csms.received("MeterValues")  # AlignedDataCtrlr.Interval 0: none
    assert_one_call_in_flight(csms.frames)


async def test_clock_aligned_meter_values(bench: Start) -> None:
    """J01: AlignedDataCtrlr.Interval=1 gives MeterValues (Sample.Clock, AlignedDataCtrlr
    Measurands, on the second) for each EVSE without a transaction, and for an EVSE with one
    TransactionEvent Updated with trigger MeterValueClock instead."""
    b = await bench()
    csms, station = b.csms, b.station
    assert station is not None
    await set_variables(
        csms,
        variable("SampledDataCtrlr", "TxUpdatedInterval", value="0"),
        variable("AlignedDataCtrlr", "Measurands", value=f"{IMPORT},{EXPORT}"),
        variable("AlignedDataCtrlr", "Interval", value="1"),
    )
    idle = [f.payload for f in await calls(csms, "MeterValues", 4, timeout_s=5)]
    assert sorted({p["evseId"] for p in idle}) == [1, 2]
    for payload in idle:
        assert_values(payload, "Sample.Clock", [IMPORT, EXPORT])
        assert on_the_second(payload), payload

    vehicle = station.sim_vehicles[1]
    vehicle.plug()
    vehicle.present(TOKEN)
    await wait_event(csms, "Started")
    since = len(csms.frames)
    clock = await wait_event(csms, "Updated", "MeterValueClock", count=2, timeout_s=5)
    for event in clock:
        assert_values(event, "Sample.Clock", [IMPORT, EXPORT])
        assert on_the_second(event), event
    imports = [register(e, IMPORT) for e in clock]
    assert imports == sorted(imports)
    # Meanwhile MeterValues go on for EVSE 2 only (EVSE 1's are in its TransactionEvents).
    later = await calls(csms, "MeterValues", 2, since=since, timeout_s=5)
    assert {f.payload["evseId"] for f in later} == {2}
    stamps = [parse_ocpp_time(f.payload["meterValue"][0]["timestamp"]) for f in later]
    assert stamps == sorted(stamps) and len(set(stamps)) == 2
    vehicle.unplug()
    await wait_event(csms, "Ended")
    await drained(station)
    assert_well_formed(tx_events(csms))
    assert_one_call_in_flight(csms.frames)


async def test_trigger_meter_values(bench: Start) -> None:
    """F06: TriggerMessage MeterValues for one EVSE, for all, and for an unknown one (Rejected);
    the values carry context Trigger and the AlignedDataCtrlr.Measurands."""
    b = await bench()
    csms, station = b.csms, b.station
    assert station is not None

    async def trigger(payload: dict[str, Any]) -> str:
        return str((await request(csms, "TriggerMessage", payload))["status"])

    since = len(csms.frames)
    assert await trigger({"requestedMessage": "MeterValues", "evse": {"id": 2}}) == "Accepted"
    (one,) = await calls(csms, "MeterValues", since=since)
    assert one.payload["evseId"] == 2
    assert_values(one.payload, "Trigger", [IMPORT, EXPORT])

    since = len(csms.frames)
    assert await trigger({"requestedMessage": "MeterValues"}) == "Accepted"
    both = await calls(csms, "MeterValues", 2, since=since)
    assert [f.payload["evseId"] for f in both] == [1, 2]

    assert await trigger({"requestedMessage": "MeterValues", "evse": {"id": 9}}) == "Rejected"
    assert_one_call_in_flight(csms.frames)


async def test_trigger_transaction_event(bench: Start) -> None:
    """F06: TriggerMessage TransactionEvent is Rejected where no transaction runs; for the EVSE
    of a transaction it is Accepted and an Updated event with trigger Trigger follows, with the
    chargingState and the TxUpdatedMeasurands (context Trigger), in the transaction's seqNo."""
    b = await bench()
    csms, station = b.csms, b.station
    assert station is not None

    async def trigger(payload: dict[str, Any]) -> str:
        return str((await request(csms, "TriggerMessage", payload))["status"])

    tx_event = {"requestedMessage": "TransactionEvent"}
    assert await trigger(tx_event) == "Rejected"
    vehicle = station.sim_vehicles[1]
    vehicle.plug()
    vehicle.present(TOKEN)
    await wait_event(csms, "Started")
    assert await trigger({**tx_event, "evse": {"id": 2}}) == "Rejected"
    assert await trigger({**tx_event, "evse": {"id": 1}}) == "Accepted"
    (triggered,) = await wait_event(csms, "Updated", "Trigger")
    assert triggered["evse"]["id"] == 1
    assert triggered["transactionInfo"]["chargingState"] in ("Charging", "EVConnected")
    values = sampled(triggered)
    assert values and {sv["context"] for sv in values} == {"Trigger"}
    assert {sv["measurand"] for sv in values} >= {IMPORT, EXPORT}
    assert await trigger(tx_event) == "Accepted"  # every EVSE with a transaction: EVSE 1
    await wait_event(csms, "Updated", "Trigger", count=2)
    vehicle.unplug()
    await wait_event(csms, "Ended")
    await drained(station)
    events = tx_events(csms)
    assert_well_formed(events)
    assert [e["evse"]["id"] for e in events if e["triggerReason"] == "Trigger"] == [1, 1]
    assert STATION_ID in csms.stations
    assert_one_call_in_flight(csms.frames)
