"""Hardware ports: the simulated hardware and the sysfs GPIO one against tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from station.chademo import LocalChademoError
from station.chademo.hardware import (
    ConnectorLock,
    Contactors,
    DcOutput,
    EmergencyStopInput,
    GpioPins,
    InsulationMonitor,
    SimHardware,
    SysfsGpioHardware,
    apply_command,
)
from station.chademo.session import (
    CloseContactors,
    LockConnector,
    OpenContactors,
    SessionEnded,
    SetOutput,
    StartInsulationTest,
    UnlockConnector,
)

PINS = GpioPins(lock=5, contactors=6, insulation_test=13, insulation_ok=19, estop=26)


def gpio_root(tmp_path: Path) -> Path:
    for pin in (5, 6, 13, 19, 26):
        (tmp_path / f"gpio{pin}").mkdir()
        (tmp_path / f"gpio{pin}" / "value").write_text("0\n")
    return tmp_path


def value(root: Path, pin: int) -> str:
    return (root / f"gpio{pin}" / "value").read_text().strip()


def test_sim_hardware_records_and_scripts() -> None:
    hw = SimHardware(next_insulation_pass=False)
    for port in (ConnectorLock, InsulationMonitor, Contactors, DcOutput, EmergencyStopInput):
        assert isinstance(hw, port)
    kwargs = {"lock": hw, "insulation": hw, "contactors": hw, "output": hw}
    assert hw.result() is None
    for command in (
        LockConnector(),
        StartInsulationTest(3, 410),
        CloseContactors(),
        SetOutput(400.0, 20.0),
    ):
        assert apply_command(command, **kwargs)
    assert not apply_command(SessionEnded(3), **kwargs)
    assert hw.result() == (3, False)
    assert hw.locked and hw.contactors_closed and hw.current_a == 20.0
    apply_command(OpenContactors(), **kwargs)
    apply_command(UnlockConnector(), **kwargs)
    assert hw.commands == [
        "lock",
        "insulation_test 3 410",
        "close",
        "output 400 20",
        "open",
        "unlock",
    ]
    assert not hw.pressed()
    hw.estop = True
    assert hw.pressed()


def test_sysfs_gpio_writes_value_files(tmp_path: Path) -> None:
    root = gpio_root(tmp_path)
    hw = SysfsGpioHardware(PINS, root=root)
    kwargs = {"lock": hw, "insulation": hw, "contactors": hw, "output": hw}
    apply_command(LockConnector(), **kwargs)
    assert value(root, 5) == "1"
    assert hw.result() is None
    apply_command(StartInsulationTest(7, 400), **kwargs)
    assert value(root, 13) == "1"
    assert hw.result() == (7, False)
    (root / "gpio19" / "value").write_text("1\n")
    assert hw.result() == (7, True)
    apply_command(CloseContactors(), **kwargs)
    assert value(root, 6) == "1"
    apply_command(OpenContactors(), **kwargs)
    apply_command(UnlockConnector(), **kwargs)
    assert (value(root, 6), value(root, 5)) == ("0", "0")
    assert hw.pressed()  # active low: 0 = pressed
    (root / "gpio26" / "value").write_text("1\n")
    assert not hw.pressed()


def test_sysfs_gpio_errors_are_clear(tmp_path: Path) -> None:
    hw = SysfsGpioHardware(PINS, root=tmp_path)  # nothing exported
    with pytest.raises(LocalChademoError, match="GPIO 5"):
        hw.lock()
    root = gpio_root(tmp_path / "x" if (tmp_path / "x").mkdir() is None else tmp_path)
    (root / "gpio26" / "value").write_text("maybe")
    with pytest.raises(LocalChademoError, match="expected 0 or 1"):
        SysfsGpioHardware(PINS, root=root).pressed()
