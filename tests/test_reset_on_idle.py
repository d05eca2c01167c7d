"""B11/B12: a Reset OnIdle during a transaction is Scheduled and carried out when it ends."""

from __future__ import annotations

from pathlib import Path

import pytest

from station.sim.control import endpoint_for
from station.sim.control import request as sim_request
from station.sim.csms import Csms, Frame
from tests.conftest import STATION_ID, RunningStation, station_config
from tests.test_sim_control import wait_for_endpoint


def tx_event(kind: str) -> object:
    def match(frame: Frame) -> bool:
        return (
            frame.direction == "in"
            and frame.action == "TransactionEvent"
            and frame.payload.get("eventType") == kind
        )

    return match


@pytest.mark.parametrize("evse_id", [None, 1])
async def test_reset_on_idle_waits_for_the_transaction(tmp_path: Path, evse_id: int | None) -> None:
    async with Csms() as csms:
        config = station_config(tmp_path, csms.url)
        running = RunningStation(config).start()
        endpoint = endpoint_for(config).endpoint_file
        try:
            await csms.wait_action("StatusNotification", STATION_ID, include_past=True)
            await wait_for_endpoint(endpoint)
            assert (await sim_request(endpoint, {"cmd": "plug", "evse": 1}))["ok"]
            assert (await sim_request(endpoint, {"cmd": "token", "evse": 1, "id": "04A1B2C3"}))[
                "ok"
            ]
            await csms.wait_for(tx_event("Started"), include_past=True)  # type: ignore[arg-type]

            payload: dict[str, object] = {"type": "OnIdle"}
            if evse_id is not None:
                payload["evseId"] = evse_id
            reply = await csms.call(STATION_ID, "Reset", payload)
            assert reply.payload["status"] == "Scheduled"
            # The session goes on; no reset yet.
            status = await sim_request(endpoint, {"cmd": "status"})
            assert status["csms"]["registration"] == "Accepted"
            assert len(csms.received("BootNotification", STATION_ID)) == 1

            assert (await sim_request(endpoint, {"cmd": "unplug", "evse": 1}))["ok"]
            ended = await csms.wait_for(tx_event("Ended"), include_past=True)  # type: ignore[arg-type]
            if evse_id is None:
                boot = await csms.wait_for(
                    lambda f: (
                        f.action == "BootNotification" and f.payload.get("reason") == "RemoteReset"
                    ),
                    include_past=True,
                )
                # The Ended event was committed before the reset; it may reach the CSMS on the
                # connection after the reboot, but as the real end of the session.
                assert ended.payload["transactionInfo"]["stoppedReason"] == "EVDisconnected"
                assert boot.connection >= 1
            else:
                # An EVSE reset (B12) restarts no connection: the station stays registered.
                status = await sim_request(endpoint, {"cmd": "status"})
                assert status["csms"]["connected"] is True
                assert len(csms.received("BootNotification", STATION_ID)) == 1
        finally:
            await running.shutdown()
