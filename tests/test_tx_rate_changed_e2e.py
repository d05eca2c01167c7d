"""End to end: TransactionEvent Updated, triggerReason ChargingRateChanged (K12, K13.FR.03).

A real station runs in this event loop against the sim CSMS over a WebSocket on 127.0.0.1, with a
real SQLite file. An external actor (an EMS, through the control protocol, as ``station sim
limit`` / ``limit-clear`` / ``external``) changes the charging rate of an EVSE with an ongoing
transaction: the CSMS receives an Updated event with triggerReason ChargingRateChanged, in seqNo
order, when the rate changed by more than LimitChangeSignificance, and not otherwise. A change
the CSMS makes itself (SetChargingProfile) is not reported this way: errata 2025-01 [776], "A
trigger reason ChargingRateChanged must only be sent, when an external actor (not CSMS) changes
the charging rate".
"""

from __future__ import annotations

import asyncio
from typing import Any

from station.sim.csms import Csms
from tests.conftest import STATION_ID
from tests.test_external_limits_e2e import Bench, bench, charging
from tests.test_link import request, variable
from tests.test_transactions_e2e import set_variables

__all__ = ["bench"]  # the fixture (both subprotocols), shared with the external-limit tests


def rate_events(csms: Csms) -> list[dict[str, Any]]:
    return [
        f.payload
        for f in csms.received("TransactionEvent", STATION_ID)
        if f.payload.get("triggerReason") == "ChargingRateChanged"
    ]


async def until_rate_events(csms: Csms, count: int, timeout_s: float = 5) -> list[dict[str, Any]]:
    async with asyncio.timeout(timeout_s):
        while len(rate_events(csms)) < count:
            await asyncio.sleep(0.01)
    return rate_events(csms)


async def quiet(bench: Bench) -> None:
    """Let every queued event reach the CSMS (so that an absence means something)."""
    async with asyncio.timeout(5):
        while len(bench.station.transactions.queue):
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)


async def test_external_limit_changes_are_reported_to_the_transaction(bench: Bench) -> None:
    await charging(bench)  # 20 kW
    csms = bench.csms
    transaction_id = bench.station.transactions.machines[1].transaction_id
    assert transaction_id is not None
    assert rate_events(csms) == []

    assert (await bench.sim("limit", evse=1, power_w=6000, source="EMS"))["ok"] is True
    (event,) = await until_rate_events(csms, 1)
    assert event["eventType"] == "Updated"
    assert event["transactionInfo"]["transactionId"] == transaction_id
    events = [
        f.payload
        for f in csms.received("TransactionEvent", STATION_ID)
        if f.payload["transactionInfo"]["transactionId"] == transaction_id
    ]
    assert [e["seqNo"] for e in events] == list(range(len(events)))

    # The same limit again, and a change within LimitChangeSignificance (1 %): nothing.
    await bench.sim("limit", evse=1, power_w=6000, source="EMS")
    await bench.sim("limit", evse=1, power_w=6030, source="EMS")
    await bench.until_power(1, 6030.0)
    await quiet(bench)
    assert len(rate_events(csms)) == 1

    # Released (K13.FR.03): back to the vehicle's 20 kW.
    assert (await bench.sim("limit_clear", evse=1, source="EMS")) == {"ok": True}
    await bench.until_power(1, 20000.0)
    assert len(await until_rate_events(csms, 2)) == 2

    # A limit above the rate the vehicle takes changes nothing.
    await bench.sim("limit", evse=1, power_w=50000, source="EMS")
    await quiet(bench)
    assert len(rate_events(csms)) == 2


async def test_limit_change_significance_is_obeyed(bench: Bench) -> None:
    await set_variables(
        bench.csms, variable("SmartChargingCtrlr", "LimitChangeSignificance", value="50")
    )
    await charging(bench)
    await bench.sim("limit", evse=1, power_w=15000, source="EMS")  # -25 %
    await bench.until_power(1, 15000.0)
    await quiet(bench)
    assert rate_events(bench.csms) == []
    await bench.sim("limit", evse=1, power_w=5000, source="EMS")  # -67 %
    await until_rate_events(bench.csms, 1)


async def test_no_event_without_a_transaction_nor_for_csms_profiles(bench: Bench) -> None:
    csms = bench.csms
    await bench.sim("limit", evse=1, power_w=6000, source="EMS")  # no transaction yet
    await charging_below(bench, 6000.0)
    await quiet(bench)
    assert rate_events(csms) == []

    # The CSMS's own profile changes the rate: not a ChargingRateChanged (errata [776]).
    reply = await request(
        csms,
        "SetChargingProfile",
        {
            "evseId": 1,
            "chargingProfile": {
                "id": 5,
                "stackLevel": 0,
                "chargingProfilePurpose": "TxDefaultProfile",
                "chargingProfileKind": "Relative",
                "chargingSchedule": [
                    {
                        "id": 1,
                        "chargingRateUnit": "W",
                        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 3000}],
                    }
                ],
            },
        },
    )
    assert reply == {"status": "Accepted"}
    await bench.until_power(1, 3000.0)
    await quiet(bench)
    assert rate_events(csms) == []


async def charging_below(bench: Bench, power_w: float) -> None:
    assert (await bench.sim("plug", evse=1))["ok"] is True
    assert (await bench.sim("token", evse=1, id="04A1B2C3"))["ok"] is True
    await bench.until_power(1, power_w)
