"""A first end-to-end check: a station boots against the local CSMS on both subprotocols."""

from __future__ import annotations

import pytest

from station.sim.csms import Csms
from tests.conftest import STATION_ID, assert_one_call_in_flight


@pytest.mark.parametrize("subprotocol", ["ocpp2.0.1", "ocpp2.1"])
async def test_station_boots_and_reports_connectors(subprotocol: str, station_factory) -> None:
    async with Csms(subprotocols=(subprotocol,)) as csms:
        station_factory(csms)
        boot = await csms.wait_action("BootNotification", STATION_ID)
        assert boot.payload["reason"] == "PowerUp"
        assert boot.payload["chargingStation"]["serialNumber"] == f"SN-{STATION_ID}"
        link = await csms.wait_connected(STATION_ID)
        assert link.version == subprotocol.removeprefix("ocpp")
        first = await csms.wait_action("StatusNotification", STATION_ID, include_past=True)
        second = await csms.wait_for(
            lambda f: f.action == "StatusNotification" and f is not first, include_past=True
        )
        assert {first.payload["evseId"], second.payload["evseId"]} == {1, 2}
        assert first.payload["connectorStatus"] == "Available"
        assert_one_call_in_flight(csms.frames)
