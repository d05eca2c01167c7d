"""The simulation control endpoint: JSON lines on a Unix socket or loopback TCP; `station sim`."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from station.sim.control import CommandError, endpoint_for, request
from station.sim.csms import Csms
from tests.conftest import STATION_ID, RunningStation, station_config


async def wait_for_endpoint(path: Path) -> None:
    for _ in range(200):
        if path.exists():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{path} never appeared")


@pytest.mark.parametrize("control", ["unix", "tcp"])
async def test_status_reflects_the_link_and_connectors(tmp_path: Path, control: str) -> None:
    async with Csms() as csms:
        config = station_config(tmp_path, csms.url, extra=f'[sim]\ncontrol = "{control}"\n')
        endpoint = endpoint_for(config)
        running = RunningStation(config).start()
        try:
            await wait_for_endpoint(endpoint.endpoint_file)
            where = endpoint.endpoint_file.read_text().strip()
            assert where.startswith("unix:" if control == "unix" else "tcp:127.0.0.1:")
            await csms.wait_action("StatusNotification", STATION_ID, include_past=True)
            await csms.wait_for(
                lambda f: f.action == "StatusNotification" and f.payload["evseId"] == 2,
                include_past=True,
            )
            status = await request(endpoint.endpoint_file, {"cmd": "status"})
            assert status["ok"] is True
            assert status["csms"] == {"connected": True, "ocpp": "2.1", "registration": "Accepted"}
            assert [e["evse"] for e in status["evses"]] == [1, 2]
            assert {e["connector_status"] for e in status["evses"]} == {"Available"}

            await csms.call(
                STATION_ID,
                "ChangeAvailability",
                {"operationalStatus": "Inoperative", "evse": {"id": 2}},
            )
            status = await request(endpoint.endpoint_file, {"cmd": "status"})
            assert [e["connector_status"] for e in status["evses"]] == ["Available", "Unavailable"]

            await csms.drop(STATION_ID)
            await csms.stop()
            for _ in range(100):
                status = await request(endpoint.endpoint_file, {"cmd": "status"})
                if not status["csms"]["connected"]:
                    break
                await asyncio.sleep(0.05)
            assert status["csms"]["connected"] is False
        finally:
            await running.shutdown()
        assert not endpoint.endpoint_file.exists()


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b"not json\n", "not a JSON object"),
        (b"[1, 2]\n", "must be a JSON object"),
        (b'{"command": "status"}\n', 'missing "cmd"'),
        (b'{"cmd": "teleport"}\n', "unknown command 'teleport'"),
    ],
)
async def test_bad_requests_get_a_clear_error_and_the_endpoint_survives(
    tmp_path: Path, line: bytes, error: str
) -> None:
    config = station_config(tmp_path, "ws://127.0.0.1:9/ocpp")
    endpoint = endpoint_for(config)
    running = RunningStation(config).start()
    try:
        await wait_for_endpoint(endpoint.endpoint_file)
        assert endpoint.unix_path is not None
        reader, writer = await asyncio.open_unix_connection(endpoint.unix_path)
        writer.write(line)
        await writer.drain()
        response = json.loads(await reader.readline())
        assert response["ok"] is False
        assert error in response["error"]
        writer.write(b'{"cmd": "status"}\n')  # the same connection still works
        await writer.drain()
        response = json.loads(await reader.readline())
        assert response["ok"] is True
        assert response["csms"]["connected"] is False
        writer.close()
        await writer.wait_closed()
    finally:
        await running.shutdown()


async def test_no_endpoint_means_a_clear_error(tmp_path: Path) -> None:
    config = station_config(tmp_path, "ws://127.0.0.1:9/ocpp")
    with pytest.raises(CommandError, match="no simulation endpoint"):
        await request(endpoint_for(config).endpoint_file, {"cmd": "status"})


async def test_station_sim_cli(tmp_path: Path) -> None:
    async with Csms() as csms:
        config = station_config(tmp_path, csms.url)
        path = tmp_path / "station.toml"
        path.write_text(
            f'[station]\nid = "{STATION_ID}"\n[csms]\nurl = "{csms.url}"\n'
            '[storage]\ndatabase = "station.db"\n[[evse]]\nid = 1\nconnector = "ccs"\n'
        )
        running = RunningStation(config).start()
        try:
            await wait_for_endpoint(endpoint_for(config).endpoint_file)
            await csms.wait_action("StatusNotification", STATION_ID, include_past=True)
            cli = [sys.executable, "-m", "station.cli", "sim"]

            def run(*args: str) -> subprocess.CompletedProcess[str]:
                return subprocess.run(
                    [*cli, *args, "--config", str(path)],
                    capture_output=True,
                    text=True,
                    timeout=30,
                    check=False,
                )

            status = await asyncio.to_thread(run, "status")
            assert status.returncode == 0, status.stderr
            assert json.loads(status.stdout)["csms"]["registration"] == "Accepted"
            helped = await asyncio.to_thread(run, "help")
            assert "status" in json.loads(helped.stdout)["commands"]
            bad = await asyncio.to_thread(run, "send", '{"cmd": "nope"}')
            assert bad.returncode == 1
            assert json.loads(bad.stdout)["ok"] is False
        finally:
            await running.shutdown()
