"""Charging profiles across restarts and transactions, end to end (issue 4; OCPP 2.0.1/2.1 K01,
K05, F01): a real station against the real CSMS over a WebSocket on 127.0.0.1, with its real
SQLite file.

- Profiles are committed before SetChargingProfile is answered and survive a restart: after it,
  GetChargingProfiles still reports them and GetCompositeSchedule still applies them.
- A TxProfile lives as long as its transaction (K01): it is gone once the transaction ends.
- RequestStartTransaction with a chargingProfile (F01/K05): a valid TxProfile is installed and
  bound to the transaction that starts; an invalid one rejects the request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from station.sim.csms import Csms
from tests.conftest import STATION_ID, RunningStation
from tests.test_link import booted, calls
from tests.test_link import request as csms_request
from tests.test_smart_charging_e2e import (
    STATION_MAX,
    TX_DEFAULT,
    Bench,
    bench,
    limits,
    profile,
    set_profile,
)

__all__ = ["bench"]  # the fixture, shared with test_smart_charging_e2e


async def csms_set_profile(csms: Csms, evse_id: int, charging_profile: dict[str, Any]) -> None:
    reply = await csms_request(
        csms, "SetChargingProfile", {"evseId": evse_id, "chargingProfile": charging_profile}
    )
    assert reply == {"status": "Accepted"}


async def test_profiles_survive_a_restart(
    csms: Csms, station_factory: Callable[..., RunningStation]
) -> None:
    running = station_factory(csms)
    await booted(csms)
    await csms_set_profile(csms, 0, STATION_MAX)
    await csms_set_profile(csms, 1, TX_DEFAULT)
    before = await csms_request(
        csms, "GetCompositeSchedule", {"duration": 1200, "evseId": 1, "chargingRateUnit": "W"}
    )

    since = len(csms.frames)
    await running.restart()
    await calls(csms, "BootNotification", since=since, timeout_s=10)
    await calls(csms, "StatusNotification", 2, since=since)

    since = len(csms.frames)
    reply = await csms_request(csms, "GetChargingProfiles", {"requestId": 5, "chargingProfile": {}})
    assert reply == {"status": "Accepted"}
    reports = await calls(csms, "ReportChargingProfiles", 2, since=since)
    assert [r.payload["chargingProfile"] for r in reports] == [[STATION_MAX], [TX_DEFAULT]]

    after = await csms_request(
        csms, "GetCompositeSchedule", {"duration": 1200, "evseId": 1, "chargingRateUnit": "W"}
    )
    assert limits(after["schedule"]) == limits(before["schedule"]) == [(0, 11000), (600, 15000)]


async def remote_start(
    bench: Bench, evse_id: int, charging_profile: dict[str, Any] | None = None
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "idToken": {"idToken": "REMOTE-1", "type": "Central"},
        "remoteStartId": 7,
        "evseId": evse_id,
    }
    if charging_profile is not None:
        payload["chargingProfile"] = charging_profile
    return await bench.request("RequestStartTransaction", payload)


async def started_transaction(bench: Bench, since: int) -> str:
    (started,) = await calls(
        bench.csms,
        "TransactionEvent",
        since=since,
        where=lambda f: f.payload.get("eventType") == "Started",
    )
    return str(started.payload["transactionInfo"]["transactionId"])


async def stop_transaction(bench: Bench, transaction_id: str) -> None:
    since = len(bench.csms.frames)
    reply = await bench.request("RequestStopTransaction", {"transactionId": transaction_id})
    assert reply["status"] == "Accepted"
    await calls(
        bench.csms,
        "TransactionEvent",
        since=since,
        where=lambda f: f.payload.get("eventType") == "Ended",
    )


async def test_tx_profile_goes_when_its_transaction_ends(bench: Bench) -> None:
    since = len(bench.csms.frames)
    bench.station.sim_vehicles[1].plug()
    assert (await remote_start(bench, 1))["status"] == "Accepted"
    transaction_id = await started_transaction(bench, since)

    tx_profile = profile(
        12, "TxProfile", [{"startPeriod": 0, "limit": 9000}], transactionId=transaction_id
    )
    await set_profile(bench, 1, tx_profile)
    await set_profile(bench, 1, TX_DEFAULT)
    reply = await bench.request("GetCompositeSchedule", {"duration": 60, "evseId": 1})
    assert limits(reply["schedule"]) == [(0, 9000)]

    await stop_transaction(bench, transaction_id)
    reply = await bench.request(
        "GetChargingProfiles",
        {"requestId": 3, "chargingProfile": {"chargingProfilePurpose": "TxProfile"}},
    )
    assert reply == {"status": "NoProfiles"}
    assert [p.id for p in bench.station.smart_charging.profiles] == [TX_DEFAULT["id"]]
    assert [p.id for p in bench.station.smart_charging.store.load_all()] == [TX_DEFAULT["id"]]


async def test_request_start_transaction_installs_its_profile(bench: Bench) -> None:
    since = len(bench.csms.frames)
    bench.station.sim_vehicles[2].plug()
    start_profile = profile(21, "TxProfile", [{"startPeriod": 0, "limit": 6000}])
    assert (await remote_start(bench, 2, start_profile))["status"] == "Accepted"
    transaction_id = await started_transaction(bench, since)

    installed = bench.station.smart_charging.profiles.get(21)
    assert installed is not None
    assert (installed.evse_id, installed.transaction_id) == (2, transaction_id)
    reply = await bench.request("GetCompositeSchedule", {"duration": 60, "evseId": 2})
    assert limits(reply["schedule"]) == [(0, 6000)]
    since = len(bench.csms.frames)
    reply = await bench.request("GetChargingProfiles", {"requestId": 4, "chargingProfile": {}})
    assert reply == {"status": "Accepted"}
    (report,) = await calls(bench.csms, "ReportChargingProfiles", since=since)
    assert report.payload["evseId"] == 2
    assert report.payload["chargingProfile"] == [{**start_profile, "transactionId": transaction_id}]

    await stop_transaction(bench, transaction_id)
    reply = await bench.request("GetChargingProfiles", {"requestId": 5, "chargingProfile": {}})
    assert reply == {"status": "NoProfiles"}


@pytest.mark.parametrize(
    ("charging_profile", "reason_code"),
    [
        pytest.param(
            profile(22, "TxDefaultProfile", [{"startPeriod": 0, "limit": 6000}]),
            "InvalidProfile",
            id="not-a-TxProfile",
        ),
        pytest.param(
            profile(22, "TxProfile", [{"startPeriod": 30, "limit": 6000}]),
            "InvalidSchedule",
            id="first-period-not-0",
        ),
        pytest.param(
            profile(22, "TxProfile", [{"startPeriod": 0, "limit": 6000}], transactionId="tx-9"),
            "InvalidProfile",
            id="with-a-transaction-id",
        ),
    ],
)
async def test_request_start_transaction_with_an_invalid_profile_is_rejected(
    bench: Bench, charging_profile: dict[str, Any], reason_code: str
) -> None:
    reply = await remote_start(bench, 1, charging_profile)
    assert reply["status"] == "Rejected"
    assert reply["statusInfo"]["reasonCode"] == reason_code
    assert len(bench.station.smart_charging.profiles) == 0
    await asyncio.sleep(0.2)  # nothing starts
    assert not bench.csms.received("TransactionEvent", STATION_ID)
