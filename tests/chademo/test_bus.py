"""The CAN adapter over python-can's ``virtual`` bus, with a second bus on the channel as the peer.

Each test uses its own channel name (virtual channels are process-wide) and checks that no
python-can thread outlives it.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import can
import pytest
from can.interfaces.virtual import VirtualBus

from station.chademo.bus import (
    BusFault,
    BusFaultKind,
    ChademoBus,
    ReceivedFrame,
    open_can_bus,
)
from station.chademo.errors import ChademoBusError

F108 = bytes.fromhex("01F4010FB3010000")  # [BE] power-up 0x108
F109 = bytes.fromhex("0200000001 20FFFF".replace(" ", ""))  # [BE] power-up 0x109
F208 = bytes.fromhex("FFF401F00000FA00")  # [BE] power-up 0x208


@pytest.fixture(autouse=True)
def no_thread_leak() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra:
            return
        time.sleep(0.02)
    raise AssertionError(f"threads left running: {extra}")


@pytest.fixture
def channel() -> str:
    return f"test-bus-{uuid.uuid4().hex[:8]}"


class Harness:
    def __init__(self, channel: str) -> None:
        self.frames: list[ReceivedFrame] = []
        self.faults: list[BusFault] = []
        self.threads: set[int] = set()
        self.station = ChademoBus(
            open_can_bus("virtual", channel), on_frame=self._frame, on_fault=self._fault
        )
        self.peer = can.Bus(interface="virtual", channel=channel)

    def _frame(self, frame: ReceivedFrame) -> None:
        self.threads.add(threading.get_ident())
        self.frames.append(frame)

    def _fault(self, fault: BusFault) -> None:
        self.threads.add(threading.get_ident())
        self.faults.append(fault)

    def collect(self, seconds: float) -> list[can.Message]:
        """Frames the peer receives in ``seconds`` (blocking; run in a thread)."""
        out: list[can.Message] = []
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            msg = self.peer.recv(left)
            if msg is not None:
                out.append(msg)
        return out


@pytest.fixture
async def harness(channel: str) -> AsyncIterator[Harness]:
    h = Harness(channel)
    h.station.start(asyncio.get_running_loop())
    try:
        yield h
    finally:
        h.station.close()
        h.peer.shutdown()


def _intervals(messages: list[can.Message], arbitration_id: int) -> list[float]:
    stamps = [m.timestamp for m in messages if m.arbitration_id == arbitration_id]
    return [b - a for a, b in itertools.pairwise(stamps)]


async def test_charger_frames_go_out_every_100_ms(harness: Harness) -> None:
    harness.station.publish({0x108: F108, 0x109: F109})
    got = await asyncio.to_thread(harness.collect, 1.05)
    for arbitration_id, payload in ((0x108, F108), (0x109, F109)):
        mine = [m for m in got if m.arbitration_id == arbitration_id]
        assert 9 <= len(mine) <= 12, len(mine)
        assert all(bytes(m.data) == payload and not m.is_extended_id for m in mine)
        assert all(0.06 <= dt <= 0.14 for dt in _intervals(got, arbitration_id))
    assert harness.station.published == {0x108: F108, 0x109: F109}


async def test_new_data_goes_out_on_the_next_cycle_without_restarting_the_timing(
    harness: Harness,
) -> None:
    harness.station.publish({0x108: F108, 0x109: F109})
    await asyncio.to_thread(harness.peer.recv, 1.0)
    newer = bytes.fromhex("0200000020 20FFFF".replace(" ", ""))  # 32 A present current
    collecting = asyncio.ensure_future(asyncio.to_thread(harness.collect, 0.6))
    await asyncio.sleep(0.25)
    changed_at = time.time()
    harness.station.publish({0x108: F108, 0x109: newer})
    got = await collecting
    f109 = [m for m in got if m.arbitration_id == 0x109]
    first_new = next(m for m in f109 if bytes(m.data) == newer)
    assert first_new.timestamp - changed_at <= 0.12
    assert all(bytes(m.data) == newer for m in f109 if m.timestamp > first_new.timestamp)
    # One task, modified in place: the spacing across the change stays one period.
    assert all(0.06 <= dt <= 0.14 for dt in _intervals(got, 0x109))


async def test_v2h_frames_start_and_stop_with_publish(harness: Harness) -> None:
    harness.station.publish({0x108: F108, 0x109: F109, 0x208: F208})
    got = await asyncio.to_thread(harness.collect, 0.35)
    assert any(m.arbitration_id == 0x208 for m in got)
    harness.station.publish({0x108: F108, 0x109: F109})
    await asyncio.sleep(0.15)  # a 0x208 already on its way may still arrive
    got = await asyncio.to_thread(harness.collect, 0.35)
    assert not any(m.arbitration_id == 0x208 for m in got)
    assert any(m.arbitration_id == 0x109 for m in got)


async def test_bad_publish_changes_nothing(harness: Harness) -> None:
    harness.station.publish({0x108: F108})
    with pytest.raises(ValueError, match="11-bit"):
        harness.station.publish({0x108: F109, 0x800: F109})
    with pytest.raises(ValueError, match="8 bytes"):
        harness.station.publish({0x109: bytes(9)})
    assert harness.station.published == {0x108: F108}


async def test_received_frames_reach_the_loop(harness: Harness) -> None:
    harness.peer.send(
        can.Message(
            arbitration_id=0x102, data=bytes.fromhex("029A010000000000"), is_extended_id=False
        )
    )
    harness.peer.send(can.Message(arbitration_id=0x102, data=bytes(8), is_extended_id=True))
    harness.peer.send(can.Message(arbitration_id=0x100, is_remote_frame=True, is_extended_id=False))
    harness.peer.send(can.Message(arbitration_id=0x100, data=bytes(8), is_extended_id=False))
    for _ in range(100):
        if len(harness.frames) >= 2:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert [(f.arbitration_id, f.data) for f in harness.frames] == [
        (0x102, bytes.fromhex("029A010000000000")),
        (0x100, bytes(8)),
    ]
    assert harness.threads == {threading.get_ident()}


async def _wait_faults(harness: Harness, count: int) -> None:
    for _ in range(200):
        if len(harness.faults) >= count:
            return
        await asyncio.sleep(0.01)


@pytest.mark.parametrize(
    ("error_class", "kind"),
    [
        (0x040, BusFaultKind.BUS_OFF),
        (0x004, BusFaultKind.ERROR_PASSIVE),
        (0x008, BusFaultKind.ERROR_FRAME),
    ],
)
async def test_error_frames_are_reported_once(
    harness: Harness, error_class: int, kind: BusFaultKind
) -> None:
    for _ in range(3):
        harness.peer.send(can.Message(arbitration_id=error_class, is_error_frame=True))
    await _wait_faults(harness, 1)
    await asyncio.sleep(0.05)
    assert [f.kind for f in harness.faults] == [kind]
    assert harness.threads == {threading.get_ident()}
    assert harness.frames == []
    harness.station.clear_faults()
    harness.peer.send(can.Message(arbitration_id=error_class, is_error_frame=True))
    await _wait_faults(harness, 2)
    assert [f.kind for f in harness.faults] == [kind, kind]


async def _wait_kind(faults: list[BusFault], kind: BusFaultKind) -> None:
    for _ in range(100):
        if any(f.kind is kind for f in faults):
            return
        await asyncio.sleep(0.01)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
async def test_interface_gone_reports_a_receive_failure(channel: str) -> None:
    # python-can's notifier re-raises in its reader thread after reporting: hence the filter.
    faults: list[BusFault] = []
    raw = open_can_bus("virtual", channel)
    station = ChademoBus(raw, on_frame=lambda f: None, on_fault=faults.append)
    station.start(asyncio.get_running_loop())
    station.publish({0x108: F108, 0x109: F109})
    await asyncio.sleep(0.15)
    raw.shutdown()  # the interface disappears under the adapter
    await _wait_kind(faults, BusFaultKind.RECEIVE_FAILED)
    station.close()
    assert [f.kind for f in faults] == [BusFaultKind.RECEIVE_FAILED]
    error = faults[0].error
    assert isinstance(error, ChademoBusError)
    assert isinstance(error.__cause__, can.CanOperationError)


class _FailingVirtualBus(VirtualBus):
    """python-can's virtual bus whose transmit fails on demand, as a full or dead controller."""

    fail_sends = False

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        if self.fail_sends:
            raise can.CanOperationError("Transmit buffer full")
        super().send(msg, timeout)


async def test_failed_sends_are_reported_and_the_cycle_goes_on(
    harness: Harness, channel: str
) -> None:
    faults: list[BusFault] = []
    raw = _FailingVirtualBus(channel)
    station = ChademoBus(raw, on_frame=lambda f: None, on_fault=faults.append)
    station.start(asyncio.get_running_loop())
    try:
        station.publish({0x109: F109})
        raw.fail_sends = True
        await _wait_kind(faults, BusFaultKind.SEND_FAILED)
        with pytest.raises(ChademoBusError, match="Transmit buffer full"):
            station.send_once(0x109, F109)
        assert [f.kind for f in faults] == [BusFaultKind.SEND_FAILED]
        assert isinstance(faults[0].error, ChademoBusError)
        assert isinstance(faults[0].error.__cause__, can.CanOperationError)
        raw.fail_sends = False  # the controller recovers: the cyclic task is still there
        harness.peer.recv(0)  # drop what is queued
        got = await asyncio.to_thread(harness.collect, 0.3)
        assert any(m.arbitration_id == 0x109 and bytes(m.data) == F109 for m in got)
    finally:
        station.close()


class _BusOffVirtualBus(VirtualBus):
    """python-can's virtual bus, reporting the state a PCAN/Kvaser interface reports at bus-off."""

    @property  # type: ignore[misc]  # read-only here: the interface reports, nobody sets
    def state(self) -> can.BusState:
        return can.BusState.ERROR


async def test_bus_off_state_is_reported(channel: str) -> None:
    faults: list[BusFault] = []
    station = ChademoBus(
        _BusOffVirtualBus(channel), on_frame=lambda f: None, on_fault=faults.append
    )
    station.start(asyncio.get_running_loop())
    station.check_state()
    station.check_state()
    station.close()
    assert [f.kind for f in faults] == [BusFaultKind.BUS_OFF]


def test_unknown_interface_is_a_bus_error() -> None:
    with pytest.raises(ChademoBusError, match="no-such-interface"):
        open_can_bus("no-such-interface", "x")


def test_bad_period_is_refused(channel: str) -> None:
    raw = open_can_bus("virtual", channel)
    try:
        with pytest.raises(ValueError, match="period_ms"):
            ChademoBus(raw, on_frame=lambda f: None, on_fault=lambda f: None, period_ms=0)
    finally:
        raw.shutdown()
