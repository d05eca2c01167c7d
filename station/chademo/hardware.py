"""Hardware ports of a CHAdeMO connector, a simulated implementation and a sysfs GPIO one.

This module owns the small hardware surface the session's commands act on: the connector lock,
the insulation monitor, the DC contactors, the DC output and the emergency-stop input, each a
``Protocol`` (STYLE.md A2.8). :class:`SimHardware` implements them all in memory for the demo and
tests; :class:`SysfsGpioHardware` drives relays through Linux sysfs GPIO value files. It must not
decide anything about the charging sequence (that is :mod:`station.chademo.session`) nor import
``can``. The GPIO root directory is injectable so tests run against ``tmp_path``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from station.chademo.errors import LocalChademoError
from station.chademo.session import (
    CloseContactors,
    LockConnector,
    OpenContactors,
    Output,
    SetOutput,
    StartInsulationTest,
    UnlockConnector,
)

__all__ = [
    "ConnectorLock",
    "Contactors",
    "DcOutput",
    "EmergencyStopInput",
    "GpioPins",
    "InsulationMonitor",
    "SimHardware",
    "SysfsGpioHardware",
    "apply_command",
]


@runtime_checkable
class ConnectorLock(Protocol):
    """The connector's latch."""

    def lock(self) -> None: ...
    def unlock(self) -> None: ...


@runtime_checkable
class InsulationMonitor(Protocol):
    """Starts an insulation test; the result comes back via ``result()`` when ready."""

    def start_test(self, test_id: int, voltage_v: int) -> None: ...
    def result(self) -> tuple[int, bool] | None:
        """``(test_id, passed)`` of the last finished test, or None while none finished."""
        ...


@runtime_checkable
class Contactors(Protocol):
    """The station's DC contactors."""

    def close(self) -> None: ...
    def open(self) -> None: ...


@runtime_checkable
class DcOutput(Protocol):
    """The DC power stage (current + into the vehicle)."""

    def set_output(self, voltage_v: float, current_a: float) -> None: ...


@runtime_checkable
class EmergencyStopInput(Protocol):
    """The emergency-stop button."""

    def pressed(self) -> bool: ...


def apply_command(
    command: Output,
    *,
    lock: ConnectorLock,
    insulation: InsulationMonitor,
    contactors: Contactors,
    output: DcOutput,
) -> bool:
    """Carry out one session output if it is a hardware command.

    Returns:
        True if ``command`` was a hardware command, False for a report (left to the caller).
    """
    if isinstance(command, LockConnector):
        lock.lock()
    elif isinstance(command, UnlockConnector):
        lock.unlock()
    elif isinstance(command, StartInsulationTest):
        insulation.start_test(command.test_id, command.voltage_v)
    elif isinstance(command, CloseContactors):
        contactors.close()
    elif isinstance(command, OpenContactors):
        contactors.open()
    elif isinstance(command, SetOutput):
        output.set_output(command.voltage_v, command.current_a)
    else:
        return False
    return True


@dataclass
class SimHardware:
    """All five ports in memory: a scriptable insulation result, an estop flag, a command log.

    Attributes:
        next_insulation_pass: the result the next insulation test gives.
        estop: whether the emergency stop is pressed.
        commands: every command received, in order, as short strings.
    """

    next_insulation_pass: bool = True
    estop: bool = False
    locked: bool = False
    contactors_closed: bool = False
    voltage_v: float = 0.0
    current_a: float = 0.0
    commands: list[str] = field(default_factory=list)
    _result: tuple[int, bool] | None = None

    def lock(self) -> None:
        self.locked = True
        self.commands.append("lock")

    def unlock(self) -> None:
        self.locked = False
        self.commands.append("unlock")

    def start_test(self, test_id: int, voltage_v: int) -> None:
        self.commands.append(f"insulation_test {test_id} {voltage_v}")
        self._result = (test_id, self.next_insulation_pass)

    def result(self) -> tuple[int, bool] | None:
        return self._result

    def close(self) -> None:
        self.contactors_closed = True
        self.commands.append("close")

    def open(self) -> None:
        self.contactors_closed = False
        self.commands.append("open")

    def set_output(self, voltage_v: float, current_a: float) -> None:
        self.voltage_v, self.current_a = voltage_v, current_a
        self.commands.append(f"output {voltage_v:g} {current_a:g}")

    def pressed(self) -> bool:
        return self.estop


@dataclass(frozen=True, slots=True)
class GpioPins:
    """Linux GPIO numbers of the relays and the estop input (sysfs numbering)."""

    lock: int
    contactors: int
    insulation_test: int
    insulation_ok: int
    estop: int
    estop_active_low: bool = True


class SysfsGpioHardware:
    """Connector lock, contactors, insulation monitor and estop on sysfs GPIO value files.

    Writes ``1``/``0`` to ``<root>/gpioN/value``; the pins must already be exported and set to
    the right direction (by the image's udev/systemd setup). The insulation monitor is a relay
    that starts the test and an input that reads 1 when the insulation is good; the result is read
    when :meth:`result` is called. The test relay is released before the contactors close (the
    monitor then watches the live output) and whenever they open. DC output is not a GPIO:
    :meth:`set_output` only records it. ``locked`` and ``contactors_closed`` are what was last
    written (for status), not read back.
    """

    def __init__(self, pins: GpioPins, root: Path = Path("/sys/class/gpio")) -> None:
        self.pins = pins
        self.root = root
        self._test_id: int | None = None
        self.voltage_v = 0.0
        self.current_a = 0.0
        self.locked = False
        self.contactors_closed = False

    def _path(self, pin: int) -> Path:
        return self.root / f"gpio{pin}" / "value"

    def _write(self, pin: int, value: bool) -> None:
        try:
            self._path(pin).write_text("1" if value else "0")
        except OSError as exc:
            raise LocalChademoError(f"cannot write GPIO {pin} ({self._path(pin)}): {exc}") from exc

    def _read(self, pin: int) -> bool:
        try:
            text = self._path(pin).read_text().strip()
        except OSError as exc:
            raise LocalChademoError(f"cannot read GPIO {pin} ({self._path(pin)}): {exc}") from exc
        if text not in ("0", "1"):
            raise LocalChademoError(f"GPIO {pin} reads {text!r}, expected 0 or 1")
        return text == "1"

    def lock(self) -> None:
        self._write(self.pins.lock, True)
        self.locked = True

    def unlock(self) -> None:
        self._write(self.pins.lock, False)
        self.locked = False

    def close(self) -> None:
        self._write(self.pins.insulation_test, False)
        self._write(self.pins.contactors, True)
        self.contactors_closed = True

    def open(self) -> None:
        # Open first: the contactors matter more than the test relay if a write fails.
        self._write(self.pins.contactors, False)
        self.contactors_closed = False
        self._write(self.pins.insulation_test, False)

    def start_test(self, test_id: int, voltage_v: int) -> None:
        self._test_id = test_id
        self._write(self.pins.insulation_test, True)

    def result(self) -> tuple[int, bool] | None:
        if self._test_id is None:
            return None
        return (self._test_id, self._read(self.pins.insulation_ok))

    def set_output(self, voltage_v: float, current_a: float) -> None:
        self.voltage_v, self.current_a = voltage_v, current_a

    def pressed(self) -> bool:
        level = self._read(self.pins.estop)
        return not level if self.pins.estop_active_low else level
