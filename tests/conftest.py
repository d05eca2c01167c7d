"""Shared fixtures: a real CSMS (built on the ``ocpp`` library) on 127.0.0.1 and a real station.

Everything talks over real WebSockets on loopback and real SQLite files in ``tmp_path``; nothing of
the station is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from station.app import run_station
from station.config import Config, parse_config
from station.sim.csms import Csms, Frame

STATION_ID = "CS-TEST-1"

# Property tests check behaviour, not speed: no per-example deadline on a loaded 2-core CI machine.
settings.register_profile("station", deadline=None)
settings.load_profile("station")


def station_config(
    tmp_path: Path,
    csms_url: str,
    *,
    station_id: str = STATION_ID,
    csms_extra: str = "",
    extra: str = "",
    evses: int = 2,
) -> Config:
    """A config for tests: fast back-off, the given CSMS, a database in ``tmp_path``."""
    evse_tables = "\n".join(
        f'[[evse]]\nid = {n}\nconnector = "{"chademo" if n % 2 else "ccs"}"\n'
        for n in range(1, evses + 1)
    )
    text = textwrap.dedent(
        f"""
        [station]
        id = "{station_id}"
        serial_number = "SN-{station_id}"
        [csms]
        url = "{csms_url}"
        retry_backoff_wait_minimum_s = 0
        retry_backoff_random_range_s = 0
        message_timeout_s = 5
        boot_retry_interval_s = 1
        """
    )
    text += textwrap.dedent(csms_extra) + '\n[storage]\ndatabase = "station.db"\n'
    text += evse_tables + textwrap.dedent(extra)
    return parse_config(text, source="test.toml", base_dir=tmp_path)


@dataclass
class RunningStation:
    """A station running in this event loop; ``restart`` keeps its database."""

    config: Config
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def start(self) -> RunningStation:
        self.stop = asyncio.Event()
        self.task = asyncio.ensure_future(run_station(self.config, self.stop))
        return self

    async def shutdown(self) -> None:
        self.stop.set()
        if self.task is not None:
            await asyncio.wait_for(self.task, 10)
            self.task = None

    async def restart(self) -> None:
        await self.shutdown()
        self.start()


@pytest.fixture
async def csms() -> AsyncIterator[Csms]:
    async with Csms() as server:
        yield server


@pytest.fixture
async def station_factory(
    tmp_path: Path,
) -> AsyncIterator[Callable[..., RunningStation]]:
    """Start stations against a CSMS; all are stopped at the end of the test."""
    started: list[RunningStation] = []

    def factory(csms: Csms | str, **kwargs: Any) -> RunningStation:
        url = csms if isinstance(csms, str) else csms.url
        running = RunningStation(station_config(tmp_path, url, **kwargs)).start()
        started.append(running)
        return running

    yield factory
    for running in started:
        with contextlib.suppress(Exception):
            await running.shutdown()


def assert_one_call_in_flight(frames: list[Frame], station_id: str = STATION_ID) -> None:
    """OCPP-J Part 4 §4.1.1: the station never sends a CALL before its previous one is answered
    (the rule holds per connection: a CALL left open by a closed connection is void).
    """
    outstanding: str | None = None
    connection = None
    for frame in frames:
        if frame.station_id != station_id or not isinstance(frame.message, list):
            continue
        if frame.connection != connection:
            connection, outstanding = frame.connection, None
        kind = frame.message_type
        if frame.direction == "in" and kind == 2:
            assert outstanding is None, f"CALL {frame.raw} sent while {outstanding} was open"
            outstanding = frame.message[1]
        elif frame.direction == "out" and kind in (3, 4) and frame.message[1] == outstanding:
            outstanding = None
