"""End to end: the Local Authorization List and the Authorization Cache of a real station against
a real CSMS, with a real SQLite file (D01 SendLocalList, D02 GetLocalListVersion, C10 cache, C11
ClearCache, C12/C15 offline authorization; issue 3 "both persisted").
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from station.sim.csms import Csms
from tests.conftest import STATION_ID, station_config
from tests.test_link import booted, calls, request, variable
from tests.test_transactions_e2e import Bench, drained, set_variables, tx_events, wait_event

TOKEN = "04A1B2C3"
OTHER = "0BADF00D"

Start = Callable[..., Awaitable[Bench]]


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Start]:
    benches: list[Bench] = []
    servers: list[Csms] = []

    async def start(**csms: Any) -> Bench:
        server = await Csms(subprotocols=("ocpp2.0.1",), **csms).start()
        servers.append(server)
        b = Bench(server, station_config(tmp_path, server.url))
        benches.append(b)
        b.start()
        await booted(server)
        return b

    yield start
    for b in benches:
        with contextlib.suppress(Exception):
            await b.shutdown()
    for server in servers:
        await server.stop()


def entry(token: str, status: str | None = "Accepted") -> dict[str, Any]:
    item: dict[str, Any] = {"idToken": {"idToken": token, "type": "ISO14443"}}
    if status is not None:
        item["idTokenInfo"] = {"status": status}
    return item


async def send_list(csms: Csms, version: int, update_type: str, *entries: dict[str, Any]) -> str:
    payload: dict[str, Any] = {"versionNumber": version, "updateType": update_type}
    if entries:
        payload["localAuthorizationList"] = list(entries)
    return str((await request(csms, "SendLocalList", payload))["status"])


async def list_version(csms: Csms) -> int:
    return int((await request(csms, "GetLocalListVersion", {}))["versionNumber"])


async def entries_count(csms: Csms) -> str:
    payload = await request(
        csms, "GetVariables", {"getVariableData": [variable("LocalAuthListCtrlr", "Entries")]}
    )
    return str(payload["getVariableResult"][0]["attributeValue"])


def authorizes(csms: Csms) -> list[str]:
    return [f.payload["idToken"]["idToken"] for f in csms.received("Authorize", STATION_ID)]


async def test_send_local_list_full_differential_and_version(bench: Start) -> None:
    """D01: Full replaces, Differential adds/updates/removes, an old version is a
    VersionMismatch, a disabled list Fails; D02: the version (0 when empty or disabled)."""
    b = await bench()
    csms = b.csms
    assert await list_version(csms) == 0
    assert await send_list(csms, 1, "Full", entry(TOKEN), entry(OTHER, "Blocked")) == "Accepted"
    assert await list_version(csms) == 1
    assert await entries_count(csms) == "2"

    assert await send_list(csms, 1, "Differential", entry("CAFE0001")) == "VersionMismatch"
    assert await send_list(csms, 0, "Differential", entry("CAFE0001")) == "VersionMismatch"
    added = await send_list(csms, 2, "Differential", entry("CAFE0001"), entry(OTHER, None))
    assert added == "Accepted"
    assert await list_version(csms) == 2
    assert await entries_count(csms) == "2"  # one added, one removed

    # Full with a lower version is allowed: it replaces the whole list.
    assert await send_list(csms, 1, "Full", entry(OTHER)) == "Accepted"
    assert await list_version(csms) == 1
    assert await entries_count(csms) == "1"
    assert await send_list(csms, 5, "Full") == "Accepted"  # an empty Full list clears it
    assert await list_version(csms) == 0
    assert await entries_count(csms) == "0"

    await set_variables(csms, variable("LocalAuthListCtrlr", "Enabled", value="false"))
    assert await send_list(csms, 6, "Full", entry(TOKEN)) == "Failed"
    assert await list_version(csms) == 0


async def test_listed_token_with_local_pre_authorize_sends_no_authorize(bench: Start) -> None:
    """C12/D01: a token Accepted in the list starts at once with LocalPreAuthorize true, even
    though the CSMS would not accept it."""
    b = await bench(accepted_tokens=set())
    csms, station = b.csms, b.station
    assert station is not None
    await set_variables(csms, variable("AuthCtrlr", "LocalPreAuthorize", value="true"))
    assert await send_list(csms, 1, "Full", entry(TOKEN)) == "Accepted"
    vehicle = station.sim_vehicles[1]
    vehicle.plug()
    vehicle.present(TOKEN.lower())  # the idToken is case insensitive (C01.FR.25)
    (started,) = await wait_event(csms, "Started")
    assert started["idToken"]["idToken"] == TOKEN.lower()
    assert authorizes(csms) == []


async def test_listed_token_starts_offline_and_events_replay(bench: Start) -> None:
    """C15/LocalAuthorizeOffline: with the CSMS down, a token in the list starts a transaction;
    its events carry offline: true and are delivered once the CSMS is back."""
    b = await bench()
    csms, station = b.csms, b.station
    assert station is not None
    assert await send_list(csms, 1, "Full", entry(TOKEN)) == "Accepted"
    port = csms.port
    await csms.stop()
    async with asyncio.timeout(5):
        while station.transactions.csms.online:
            await asyncio.sleep(0.01)
    vehicle = station.sim_vehicles[1]
    vehicle.plug()
    vehicle.present(TOKEN)
    async with asyncio.timeout(5):
        while station.transactions.machines[1].transaction_id is None:
            await asyncio.sleep(0.01)
    assert len(station.transactions.queue) >= 1

    back = await Csms(subprotocols=("ocpp2.0.1",), port=port).start()
    try:
        (started,) = await wait_event(back, "Started", timeout_s=10)
        await drained(station)
    finally:
        await back.stop()
    assert started["offline"] is True
    assert started["idToken"]["idToken"] == TOKEN
    assert authorizes(back) == []  # decided locally; nothing asked afterwards
    assert all(e.get("offline") is True for e in tx_events(back))


async def test_cache_fills_survives_restart_and_clears(bench: Start) -> None:
    """C10: an Accepted AuthorizeResponse fills the cache, which (with LocalPreAuthorize)
    authorizes the token the next time without asking, also after a restart; C11: ClearCache
    empties it, and is Rejected while the cache is disabled."""
    b = await bench(accepted_tokens={TOKEN})
    csms, station = b.csms, b.station
    assert station is not None
    await set_variables(csms, variable("AuthCtrlr", "LocalPreAuthorize", value="true"))
    vehicle = station.sim_vehicles[1]
    vehicle.plug()
    vehicle.present(TOKEN)
    await wait_event(csms, "Started")
    assert authorizes(csms) == [TOKEN]
    vehicle.unplug()
    await wait_event(csms, "Ended")
    await drained(station)

    await b.shutdown()
    station = b.start()
    await calls(csms, "BootNotification", 2)
    async with asyncio.timeout(5):
        while not station.transactions.csms.online:
            await asyncio.sleep(0.01)
    vehicle = station.sim_vehicles[2]
    vehicle.plug()
    vehicle.present(TOKEN)
    await wait_event(csms, "Started", count=2)
    assert authorizes(csms) == [TOKEN]  # from the cache, as stored before the restart
    vehicle.unplug()
    await wait_event(csms, "Ended", count=2)

    assert (await request(csms, "ClearCache", {}))["status"] == "Accepted"
    vehicle.plug()
    vehicle.present(TOKEN)
    await wait_event(csms, "Started", count=3)
    assert authorizes(csms) == [TOKEN, TOKEN]  # asked again: the cache was empty

    await set_variables(csms, variable("AuthCacheCtrlr", "Enabled", value="false"))
    assert (await request(csms, "ClearCache", {}))["status"] == "Rejected"


async def test_local_list_survives_restart(bench: Start) -> None:
    """D01: the list and its version are persisted; LocalAuthListCtrlr.Entries follows."""
    b = await bench()
    assert await send_list(b.csms, 7, "Full", entry(TOKEN), entry(OTHER)) == "Accepted"
    await b.shutdown()
    b.start()
    await calls(b.csms, "BootNotification", 2)
    await calls(b.csms, "StatusNotification", 4)
    assert await list_version(b.csms) == 7
    assert await entries_count(b.csms) == "2"
    assert await send_list(b.csms, 7, "Differential", entry("CAFE0001")) == "VersionMismatch"
