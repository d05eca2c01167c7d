"""The inverter as the station sees it: an :class:`InverterPort`, and its SunSpec implementation.

Owns, for a SunSpec device (:class:`SunSpecInverter`):

- discovery: the "SunS" marker at 40000, 0 or 50000 and the model chain after it (id, length)
  up to the end id 0xFFFF; model 1 for the identity;
- the control scheme: IEEE 1547 models (704 DERCtlAC active power in watts: ``WSetEna``,
  ``WSetMod`` = WATTS, signed ``WSet`` with ``WSet_SF``; ``WSetRvrt`` = 0 W, ``WSetEnaRvrt``,
  ``WSetRvrtTms`` as the fail-safe; 715 ``ControllerHb`` as the heartbeat), or, for older
  devices, the 12x storage model (124 ``StorCtl_Mod`` with both limits enabled and
  ``InWRte``/``OutWRte`` in % of ``WChaMax``, ``InOutWRte_RvrtTms`` as the fail-safe);
- set-and-verify: write, read back, bounded retries; then watch the measured power converge
  (:meth:`SunSpecInverter.run`). A device that does not follow is a fault: 0 W is written (and
  written again until it is accepted), a log line, a :class:`FaultReport` to ``on_fault`` (the
  coordinator maps it to NotifyEvent / SecurityEventNotification), and :class:`InverterFaultError`;
  non-zero set-points are refused until :meth:`clear_fault`;
- measurements from 701 DERMeasureAC (or 103/102/101 on older devices).

**Sign, converted here and nowhere else.** The station counts power as seen from the vehicle
(+ = into the vehicle). SunSpec 701 counts generation / export to the grid as positive, and 704
``WSet`` follows it. Charging the vehicle means the inverter absorbs from the grid, so:

- set-point: ``WSet = -power_w``; 124: charging uses ``InWRte``, discharging ``OutWRte``;
- measurement: ``power_w = -W``; ``current_a`` is ``|A|`` with the sign of ``power_w``;
- ``energy_import_wh`` (into the vehicle) = ``TotWhAbs`` (absorbed from the grid);
  ``energy_export_wh`` (out of the vehicle) = ``TotWhInj`` (injected into the grid);
  on 10x devices ``WH`` (energy produced) is the export register and there is no import register;
- ``voltage_v`` is line-to-line (701 ``LLV``, 10x ``PPVphAB``), else line-to-neutral.

A limit of 0 W is "no power", never a change of direction. This module does not decide set-points
(``station.power`` does) and does not protect the grid (``station.inverter.protection`` does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from station.clock import Clock
from station.der.model import DerCurve
from station.inverter.curves import curve_layout, curve_values
from station.inverter.errors import (
    InverterFaultError,
    InverterLinkError,
    InverterRefusedError,
    LocalInverterError,
    RemoteInverterError,
    SunSpecError,
)
from station.inverter.modbus import ModbusLink
from station.inverter.sunspec import (
    BASE_ADDRESSES,
    END_MODEL_ID,
    SUNS_MARKER,
    PointValue,
    decode_block,
    encode_point,
    load_model,
    scale,
    to_raw,
)
from station.transactions import MeterReading

__all__ = [
    "ControlScheme",
    "DeviceIdentity",
    "FaultCallback",
    "FaultKind",
    "FaultReport",
    "InverterMeasurements",
    "InverterMeter",
    "InverterOptions",
    "InverterPort",
    "ModelLocation",
    "SunSpecInverter",
    "discover",
    "meter_reading",
]

log = logging.getLogger(__name__)

_MAX_MODELS = 64
_HB_MODULUS = 0xFFFFFFFF  # ControllerHb is uint32; 0xFFFFFFFF means "not implemented"


class FaultKind(StrEnum):
    """Why a set-point failed."""

    REFUSED = "Refused"
    """The inverter answered the write (or the read-back) with a Modbus exception."""
    NO_ANSWER = "NoAnswer"
    """The inverter did not answer, or the connection is down."""
    WRONG_READBACK = "WrongReadBack"
    """The set-point read back differs from the one written."""
    NOT_FOLLOWING = "NotFollowing"
    """The measured power did not reach the set-point within ``settle_timeout_s``."""


@dataclass(frozen=True, slots=True)
class FaultReport:
    """A set-point the inverter did not follow.

    Attributes:
        kind: what went wrong.
        setpoint_w: the set-point that failed (station sign: + into the vehicle).
        detail: one line for the log and the event's ``techInfo``.
        at: when the fault was declared (UTC).
        measured_power_w: the last measured power (station sign), when known.
    """

    kind: FaultKind
    setpoint_w: float
    detail: str
    at: datetime
    measured_power_w: float | None = None


FaultCallback = Callable[[FaultReport], None]
"""Told of every fault, once, after 0 W has been commanded."""


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """Model 1 (common): who made the inverter."""

    manufacturer: str
    model: str
    serial_number: str
    version: str | None = None


@dataclass(frozen=True, slots=True)
class ModelLocation:
    """One model in the device's chain: its id, the address of its ID register, its ``L``."""

    model_id: int
    address: int
    length: int


class ControlScheme(StrEnum):
    """How set-points are written."""

    DER_704 = "704"
    """IEEE 1547-2018 models: 704 WSet in watts (+ 715 heartbeat when present)."""
    STORAGE_124 = "124"
    """Legacy storage model 124: InWRte / OutWRte in % of WChaMax."""


@dataclass(frozen=True, slots=True)
class InverterMeasurements:
    """One reading of the inverter's AC side, in the station's sign (+ = into the vehicle).

    ``None`` means the device does not implement that value.
    """

    timestamp: datetime
    power_w: float | None
    current_a: float | None
    voltage_v: float | None
    frequency_hz: float | None
    energy_import_wh: float | None
    energy_export_wh: float | None
    reactive_power_var: float | None = None
    """As SunSpec counts it (positive = injecting vars); not a vehicle-side quantity."""
    dc_voltage_v: float | None = None
    """The converter's DC (battery-side) voltage, where the device measures it (vendor maps)."""
    dc_current_a: float | None = None
    """The converter's DC current, + into the vehicle (vendor maps)."""
    dc_power_w: float | None = None
    """The converter's DC power, + into the vehicle (vendor maps)."""


@dataclass(frozen=True, slots=True)
class InverterOptions:
    """How set-and-verify, the heartbeat and the fail-safe behave.

    Attributes:
        write_retries: further attempts after a failed write/read-back (bounded).
        tolerance_w / tolerance_pct: measured power counts as following when it is within the
            larger of the two of the set-point.
        settle_timeout_s: how long the measured power may take to get there.
        verify_power: watch the measured power at all (needs a measurement model).
        poll_interval_s: how often :meth:`SunSpecInverter.run` looks at the device.
        heartbeat_interval_s: how often the heartbeat is fed.
        reversion_timeout_s: after this long without heartbeat or set-point the inverter goes
            back to 0 W by itself (``WSetRvrtTms`` / ``InOutWRte_RvrtTms``); 0 disables it.
    """

    write_retries: int = 2
    tolerance_w: float = 100.0
    tolerance_pct: float = 5.0
    settle_timeout_s: float = 5.0
    verify_power: bool = True
    poll_interval_s: float = 0.2
    heartbeat_interval_s: float = 1.0
    reversion_timeout_s: int = 10

    def __post_init__(self) -> None:
        if self.write_retries < 0:
            raise LocalInverterError("write_retries must be >= 0")
        if self.tolerance_w < 0 or self.tolerance_pct < 0:
            raise LocalInverterError("tolerances must be >= 0")
        if not (self.settle_timeout_s > 0 and self.poll_interval_s > 0):
            raise LocalInverterError("settle_timeout_s and poll_interval_s must be positive")
        if not self.heartbeat_interval_s > 0:
            raise LocalInverterError("heartbeat_interval_s must be positive")
        if not 0 <= self.reversion_timeout_s <= 0xFFFF:
            raise LocalInverterError("reversion_timeout_s must be 0..65535")
        if self.reversion_timeout_s and self.reversion_timeout_s <= self.heartbeat_interval_s:
            raise LocalInverterError("reversion_timeout_s must exceed heartbeat_interval_s")


class InverterPort(Protocol):
    """What the station needs of a bidirectional inverter (SunSpec or a vendor register map).

    Errors are :class:`~station.inverter.errors.InverterError` subclasses only.
    """

    @property
    def fault(self) -> FaultReport | None:
        """The fault that holds the inverter at 0 W, or None."""
        ...

    async def apply_setpoint(self, power_w: float) -> None:
        """Command ``power_w`` (station sign) and verify the device took it.

        Raises:
            InverterFaultError: the device did not take it; it has been commanded to 0 W.
            LocalInverterError: the value cannot be expressed in the device's registers.
        """
        ...

    async def read_measurements(self) -> InverterMeasurements:
        """Read the AC measurements now."""
        ...

    def clear_fault(self) -> None:
        """Allow non-zero set-points again after a fault."""
        ...

    async def run(self) -> None:
        """Heartbeat, reversion and convergence supervision, until cancelled."""
        ...

    async def close(self) -> None:
        """Command 0 W (best effort) and close the link."""
        ...


async def discover(link: ModbusLink) -> tuple[int, tuple[ModelLocation, ...]]:
    """Find the SunSpec map: the base address of "SunS" and the chain of models after it.

    Raises:
        SunSpecError: no marker at any base address, or a broken chain.
        InverterLinkError: the device did not answer.
    """
    for base in BASE_ADDRESSES:
        try:
            marker = await link.read(base, 2)
        except InverterRefusedError:
            continue
        if tuple(marker) != SUNS_MARKER:
            continue
        chain: list[ModelLocation] = []
        address = base + 2
        while len(chain) < _MAX_MODELS:
            if address + 2 > 0x10000:
                raise SunSpecError(f"model chain from {base} runs past register 65535")
            model_id, length = await link.read(address, 2)
            if model_id == END_MODEL_ID:
                log.info("sunspec map at %d: models %s", base, [m.model_id for m in chain])
                return base, tuple(chain)
            chain.append(ModelLocation(model_id, address, length))
            address += 2 + length
        raise SunSpecError(f"model chain from {base} has more than {_MAX_MODELS} models")
    raise SunSpecError(f"no SunSpec marker at {', '.join(map(str, BASE_ADDRESSES))}")


def _text(values: Mapping[str, PointValue], name: str) -> str:
    value = values.get(name)
    return value if isinstance(value, str) else ""


class SunSpecInverter:
    """An :class:`InverterPort` for a SunSpec device on a :class:`ModbusLink`.

    Build it with :meth:`open`, run :meth:`run` in the station's task group, and call
    :meth:`close` when done.
    """

    def __init__(
        self,
        link: ModbusLink,
        chain: tuple[ModelLocation, ...],
        *,
        clock: Clock,
        options: InverterOptions | None = None,
        on_fault: FaultCallback | None = None,
    ) -> None:
        self.link = link
        self.models: dict[int, ModelLocation] = {}
        for location in chain:
            self.models.setdefault(location.model_id, location)
        self.options = options if options is not None else InverterOptions()
        self._clock = clock
        self._on_fault = on_fault
        if 704 in self.models:
            self.scheme = ControlScheme.DER_704
        elif 124 in self.models:
            self.scheme = ControlScheme.STORAGE_124
        else:
            raise SunSpecError("the device has neither model 704 nor model 124: no set-point")
        self.identity = DeviceIdentity("", "", "")
        self.max_charge_power_w: float | None = None
        self.max_discharge_power_w: float | None = None
        self.last_measurements: InverterMeasurements | None = None
        self._ctl: dict[str, PointValue] = {}  # the control model's scale factors and settings
        self._lock = asyncio.Lock()
        self._setpoint_w = 0.0
        self._settle_deadline: float | None = None
        self._settle_gen = 0  # bumped by every accepted set-point
        self._fault: FaultReport | None = None
        self._zero_pending = False
        self._heartbeat = 0
        self._next_heartbeat = 0.0
        self._failures = 0  # supervision rounds failed in a row

    # ------------------------------------------------------------------ construction
    @classmethod
    async def open(
        cls,
        link: ModbusLink,
        *,
        clock: Clock,
        options: InverterOptions | None = None,
        on_fault: FaultCallback | None = None,
    ) -> SunSpecInverter:
        """Discover the device, read its identity and ratings, arm the fail-safe, command 0 W.

        Raises:
            SunSpecError: not a usable SunSpec device.
            InverterLinkError / InverterRefusedError: the device did not cooperate.
        """
        _, chain = await discover(link)
        inverter = cls(link, chain, clock=clock, options=options, on_fault=on_fault)
        await inverter._setup()
        return inverter

    async def _read_model(self, model_id: int, count: int | None = None) -> dict[str, PointValue]:
        """Read and decode the fixed part of ``model_id`` (or its first ``count`` registers)."""
        location = self.models[model_id]
        model = load_model(model_id)
        available = 2 + location.length
        want = 2 + model.length if count is None else count
        words = await self.link.read(location.address, min(want, available))
        return decode_block(model, words)

    async def _setup(self) -> None:
        if 1 in self.models:
            common = await self._read_model(1)
            self.identity = DeviceIdentity(
                _text(common, "Mn"),
                _text(common, "Md"),
                _text(common, "SN"),
                _text(common, "Vr") or None,
            )
        timeout_s = self.options.reversion_timeout_s
        if self.scheme is ControlScheme.DER_704:
            self._check_length(704)
            self._ctl = await self._read_model(704)
            if 702 in self.models:
                cap = await self._read_model(702)
                model702 = load_model(702)
                rating = scale(model702, cap, "WMaxRtg")
                self.max_charge_power_w = scale(model702, cap, "WChaRteMaxRtg") or rating
                self.max_discharge_power_w = scale(model702, cap, "WDisChaRteMaxRtg") or rating
            model = load_model(704)
            # Fail-safe: after WSetRvrtTms without heartbeat or set-point, WSet := WSetRvrt (0 W),
            # WSetEna := WSetEnaRvrt (enabled, so 0 W is held rather than "no limit").
            await self._write_points(704, {"WSetRvrt": 0})
            await self._write_points(704, {"WSetEnaRvrt": 1, "WSetRvrtTms": timeout_s})
            self._ctl = {**self._ctl, "WSetRvrt": 0, "WSetEnaRvrt": 1, "WSetRvrtTms": timeout_s}
            if self._ctl.get("WSet_SF") is None and isinstance(model.point("WSet").sf, str):
                raise SunSpecError("704 WSet_SF is not implemented")
        else:
            self._check_length(124)
            self._ctl = await self._read_model(124)
            wcha = scale(load_model(124), self._ctl, "WChaMax")
            if not wcha or wcha <= 0:
                raise SunSpecError("124 WChaMax is not implemented or not positive")
            self.max_charge_power_w = self.max_discharge_power_w = wcha
            await self._write_points(124, {"StorCtl_Mod": 0b11})
            await self._write_points(124, {"InOutWRte_RvrtTms": timeout_s})
        log.info(
            "inverter %s: %s %s serial %s, control via model %s, fail-safe %d s",
            self.link.where,
            self.identity.manufacturer,
            self.identity.model,
            self.identity.serial_number,
            self.scheme,
            timeout_s,
        )
        await self._set(0.0)

    def _check_length(self, model_id: int) -> None:
        if self.models[model_id].length < load_model(model_id).length:
            raise SunSpecError(f"model {model_id} is shorter than its definition")

    async def _write_points(self, model_id: int, raw: Mapping[str, int]) -> None:
        """Write raw values of points that are contiguous in ``model_id`` (in one request)."""
        model = load_model(model_id)
        points = sorted((model.point(n) for n in raw), key=lambda p: p.offset)
        words: list[int] = []
        for p in points:
            if words and p.offset != points[0].offset + len(words):
                raise LocalInverterError(f"points {list(raw)} of {model_id} are not contiguous")
            words += encode_point(p, raw[p.name])
        await self.link.write(self.models[model_id].address + points[0].offset, words)

    # ------------------------------------------------------------------ set-points
    @property
    def fault(self) -> FaultReport | None:
        return self._fault

    @property
    def setpoint_w(self) -> float:
        """The set-point last taken by the device (station sign)."""
        return self._setpoint_w

    def clear_fault(self) -> None:
        if self._fault is not None:
            log.info("inverter %s: fault cleared (%s)", self.link.where, self._fault.kind)
        self._fault = None

    def _setpoint_words(self, power_w: float) -> tuple[int, dict[str, int]]:
        """The model and raw point values that command ``power_w`` (the one sign flip)."""
        if self.scheme is ControlScheme.DER_704:
            wset_w = -power_w  # SunSpec: export (vehicle discharging) is positive
            raw = to_raw(load_model(704), self._ctl, "WSet", wset_w)
            return 704, {"WSetEna": 1, "WSetMod": 1, "WSet": raw}
        model = load_model(124)
        limit = self.max_charge_power_w or 0.0
        pct = abs(power_w) / limit * 100.0
        if pct > 100.0 + 1e-9:
            raise LocalInverterError(f"{power_w} W exceeds the device's WChaMax of {limit} W")
        rte = to_raw(model, self._ctl, "InWRte", pct)
        if power_w > 0:  # charge the vehicle: the storage side absorbs; force it with -OutWRte
            return 124, {"OutWRte": -rte, "InWRte": rte}
        if power_w < 0:
            return 124, {"OutWRte": rte, "InWRte": -rte}
        return 124, {"OutWRte": 0, "InWRte": 0}

    async def _set(self, power_w: float) -> None:
        """Write the set-point and read it back (one attempt)."""
        model_id, raw = self._setpoint_words(power_w)
        await self._write_points(model_id, raw)
        model = load_model(model_id)
        first = min(model.point(n).offset for n in raw)
        last = max(model.point(n).offset + model.point(n).size for n in raw)
        words = await self.link.read(self.models[model_id].address + first, last - first)
        for name, expected in raw.items():
            p = model.point(name)
            got = words[p.offset - first : p.offset - first + p.size]
            if got != encode_point(p, expected):
                raise _WrongReadBackError(
                    f"{name} read back {got}, wrote {encode_point(p, expected)}"
                )

    async def apply_setpoint(self, power_w: float) -> None:
        """Command ``power_w`` (+ = into the vehicle) and verify that the device took it.

        Writes the set-point, reads it back, and retries up to ``write_retries`` times. Then
        :meth:`run` watches the measured power converge within ``settle_timeout_s``.

        Raises:
            InverterFaultError: the device refused, did not answer, or read back something else; it
                has been commanded to 0 W and ``on_fault`` told. Also raised, without a new
                report, for a non-zero set-point while a fault is held.
            LocalInverterError: ``power_w`` is not finite or beyond what the registers express.
        """
        if not math.isfinite(power_w):
            raise LocalInverterError(f"set-point must be a finite number, got {power_w}")
        if self._fault is not None and power_w != 0:
            raise InverterFaultError(self._fault)
        self._setpoint_words(power_w)  # bad input: raise before anything changes
        async with self._lock:
            kind, detail = FaultKind.NO_ANSWER, ""
            for attempt in range(1 + self.options.write_retries):
                try:
                    await self._set(power_w)
                except _WrongReadBackError as exc:
                    kind, detail = FaultKind.WRONG_READBACK, str(exc)
                except InverterRefusedError as exc:
                    kind, detail = FaultKind.REFUSED, str(exc)
                except InverterLinkError as exc:
                    kind, detail = FaultKind.NO_ANSWER, str(exc)
                else:
                    self._setpoint_w = power_w
                    self._zero_pending = False
                    self._settle_gen += 1
                    self._settle_deadline = (
                        self._clock.monotonic() + self.options.settle_timeout_s
                        if self.options.verify_power
                        else None
                    )
                    self._next_heartbeat = (
                        self._clock.monotonic() + self.options.heartbeat_interval_s
                    )
                    return
                log.warning(
                    "inverter %s: set-point %.0f W attempt %d failed: %s",
                    self.link.where,
                    power_w,
                    attempt + 1,
                    detail,
                )
            report = await self._declare_fault(kind, power_w, detail)
        raise InverterFaultError(report)

    async def _declare_fault(self, kind: FaultKind, power_w: float, detail: str) -> FaultReport:
        """Command 0 W, log, report. Caller holds the lock."""
        measured = self.last_measurements.power_w if self.last_measurements else None
        report = FaultReport(kind, power_w, detail, self._clock.now(), measured)
        self._fault = report
        self._settle_deadline = None
        await self._zero()
        log.error(
            "inverter %s: FAULT %s at set-point %.0f W (%s); commanded 0 W%s",
            self.link.where,
            kind,
            power_w,
            detail,
            "" if not self._zero_pending else " (not yet accepted, retrying)",
        )
        if self._on_fault is not None:
            self._on_fault(report)
        return report

    async def _zero(self) -> None:
        """Command 0 W, best effort; when it fails :meth:`run` keeps trying."""
        try:
            await self._set(0.0)
        except (RemoteInverterError, _WrongReadBackError) as exc:
            self._zero_pending = True
            log.warning("inverter %s: 0 W not accepted: %s", self.link.where, exc)
        else:
            self._zero_pending = False
            self._setpoint_w = 0.0

    # ------------------------------------------------------------------ volt curves (705/706)
    async def write_volt_var(self, curve: DerCurve) -> None:
        """Write ``curve`` as the volt-var curve (705), adopt it, enable the function, verify.

        Raises:
            LocalInverterError: the device has no model 705, or the curve does not fit it.
            InverterFaultError: the device refused or read back something else (as for a
                set-point: 0 W commanded, ``on_fault`` told); the function is left disabled.
        """
        await self._write_curve(705, curve)

    async def write_volt_watt(self, curve: DerCurve) -> None:
        """Write ``curve`` as the volt-watt curve (706); see :meth:`write_volt_var`."""
        await self._write_curve(706, curve)

    async def disable_volt_var(self) -> None:
        """Disable the volt-var function (705 ``Ena`` := 0).

        Raises:
            LocalInverterError: the device has no model 705.
        """
        await self._disable_curve(705)

    async def disable_volt_watt(self) -> None:
        """Disable the volt-watt function (706 ``Ena`` := 0); see :meth:`disable_volt_var`."""
        await self._disable_curve(706)

    def _require_curve_model(self, model_id: int) -> None:
        if model_id not in self.models:
            raise LocalInverterError(
                f"inverter {self.link.where} has no model {model_id}: "
                f"{'volt-var' if model_id == 705 else 'volt-watt'} is not supported"
            )

    async def _disable_curve(self, model_id: int) -> None:
        self._require_curve_model(model_id)
        async with self._lock:
            await self._write_points(model_id, {"Ena": 0})
        log.info("inverter %s: model %d disabled", self.link.where, model_id)

    async def _write_curve(self, model_id: int, curve: DerCurve) -> None:
        self._require_curve_model(model_id)
        self._check_length(model_id)
        fixed = await self._read_model(model_id)
        n_pt, n_crv = fixed.get("NPt"), fixed.get("NCrv")
        if not isinstance(n_pt, int) or not isinstance(n_crv, int) or n_crv < 1:
            raise LocalInverterError(f"model {model_id}: NPt {n_pt}, NCrv {n_crv}: no curves")
        layout = curve_layout(model_id, n_pt)
        if self.models[model_id].length < layout.length(n_crv):
            raise SunSpecError(f"model {model_id} is shorter than its {n_crv} curves")
        header, words = curve_values(layout, fixed, curve)  # bad input: nothing written yet
        base = self.models[model_id].address
        index = None
        for n in range(1, n_crv + 1):
            flag = await self.link.read(
                base + layout.curve_offset(n) + layout.header.point("ReadOnly").offset, 1
            )
            if flag[0] == 0:  # ReadOnly: RW
                index = n
                break
        if index is None:
            raise LocalInverterError(f"model {model_id}: the device has no writable curve")
        start = base + layout.curve_offset(index)
        points_at = start + layout.header.length
        head = [*encode_point(layout.header.point("ActPt"), header["ActPt"])]
        head += encode_point(layout.header.point("DeptRef"), header["DeptRef"])
        async with self._lock:
            detail = ""
            kind = FaultKind.WRONG_READBACK
            for attempt in range(1 + self.options.write_retries):
                try:
                    await self.link.write(start, head)
                    await self.link.write(points_at, words)
                    await self._write_points(model_id, {"Ena": 1, "AdptCrvReq": index})
                    got_head = await self.link.read(start, 2)
                    got_words = await self.link.read(points_at, len(words))
                    now = await self._read_model(model_id)
                except InverterRefusedError as exc:
                    kind, detail = FaultKind.REFUSED, str(exc)
                except InverterLinkError as exc:
                    kind, detail = FaultKind.NO_ANSWER, str(exc)
                else:
                    kind = FaultKind.WRONG_READBACK
                    if got_head != head or got_words != words:
                        detail = f"curve {index} read back {got_head + got_words}, "
                        detail += f"wrote {head + words}"
                    elif now.get("Ena") != 1 or now.get("AdptCrvRslt") == 2:
                        detail = f"Ena {now.get('Ena')}, AdptCrvRslt {now.get('AdptCrvRslt')}"
                    else:
                        log.info(
                            "inverter %s: model %d curve %d enabled, %d points",
                            self.link.where,
                            model_id,
                            index,
                            header["ActPt"],
                        )
                        return
                log.warning(
                    "inverter %s: model %d curve attempt %d failed: %s",
                    self.link.where,
                    model_id,
                    attempt + 1,
                    detail,
                )
            with contextlib.suppress(RemoteInverterError):
                await self._write_points(model_id, {"Ena": 0})
            report = await self._declare_fault(kind, self._setpoint_w, f"{model_id}: {detail}")
        raise InverterFaultError(report)

    # ------------------------------------------------------------------ measurements
    async def read_measurements(self) -> InverterMeasurements:
        """Read the AC measurements (701, else 103/102/101), in the station's sign.

        Raises:
            SunSpecError: the device has no measurement model.
            InverterLinkError / InverterRefusedError: as the link raises them.
        """
        now = self._clock.now()
        if 701 in self.models:
            model = load_model(701)
            v = await self._read_model(701, count=model.point("MnAlrmInfo").offset)
            w = scale(model, v, "W")
            power_w = None if w is None else -w + 0.0  # SunSpec: export +; station: into vehicle
            m = InverterMeasurements(
                timestamp=now,
                power_w=power_w,
                current_a=_signed_magnitude(scale(model, v, "A"), power_w),
                voltage_v=_first(scale(model, v, "LLV"), scale(model, v, "LNV")),
                frequency_hz=scale(model, v, "Hz"),
                energy_import_wh=scale(model, v, "TotWhAbs"),
                energy_export_wh=scale(model, v, "TotWhInj"),
                reactive_power_var=scale(model, v, "Var"),
            )
        else:
            legacy = next((i for i in (103, 102, 101) if i in self.models), None)
            if legacy is None:
                raise SunSpecError("the device has no measurement model (701, 101-103)")
            model = load_model(legacy)
            v = await self._read_model(legacy, count=model.point("DCA").offset)
            w = scale(model, v, "W")
            power_w = None if w is None else -w + 0.0
            m = InverterMeasurements(
                timestamp=now,
                power_w=power_w,
                current_a=_signed_magnitude(scale(model, v, "A"), power_w),
                voltage_v=_first(scale(model, v, "PPVphAB"), scale(model, v, "PhVphA")),
                frequency_hz=scale(model, v, "Hz"),
                energy_import_wh=None,
                energy_export_wh=scale(model, v, "WH"),
                reactive_power_var=scale(model, v, "VAr"),
            )
        self.last_measurements = m
        return m

    # ------------------------------------------------------------------ supervision
    async def heartbeat(self) -> None:
        """Feed the heartbeat once: 715 ``ControllerHb``, else rewrite the set-point.

        Raises:
            RemoteInverterError: the write failed (the device will revert by itself).
        """
        async with self._lock:
            if 715 in self.models:
                self._heartbeat = (self._heartbeat + 1) % _HB_MODULUS
                await self._write_points(715, {"ControllerHb": self._heartbeat})
            else:
                model_id, raw = self._setpoint_words(self._setpoint_w)
                await self._write_points(model_id, raw)

    async def _check_convergence(self) -> None:
        deadline, gen = self._settle_deadline, self._settle_gen
        if deadline is None:
            return
        m = await self.read_measurements()
        if gen != self._settle_gen or self._settle_deadline is None:
            return  # a new set-point arrived meanwhile
        target = self._setpoint_w
        tolerance = max(self.options.tolerance_w, abs(target) * self.options.tolerance_pct / 100)
        if m.power_w is None:
            self._settle_deadline = None
            log.warning("inverter %s: W not implemented; cannot watch convergence", self.link.where)
            return
        if abs(m.power_w - target) <= tolerance:
            self._settle_deadline = None
            log.debug(
                "inverter %s: at %.0f W (set-point %.0f W)", self.link.where, m.power_w, target
            )
            return
        if self._clock.monotonic() >= deadline:
            async with self._lock:
                await self._declare_fault(
                    FaultKind.NOT_FOLLOWING,
                    target,
                    f"measured {m.power_w} W, set-point {target:.0f} W after "
                    f"{self.options.settle_timeout_s} s",
                )

    async def tick(self) -> None:
        """One round of supervision: 0 W retry, heartbeat when due, convergence check.

        Link errors are logged, not raised: the inverter's own reversion covers a silent link.
        """
        try:
            if self._zero_pending:
                async with self._lock:
                    await self._zero()
            if self._clock.monotonic() >= self._next_heartbeat:
                self._next_heartbeat = self._clock.monotonic() + self.options.heartbeat_interval_s
                await self.heartbeat()
            await self._check_convergence()
        except RemoteInverterError as exc:
            self._failures += 1
            # first failure in a row at WARNING, the rest at DEBUG: no log flood while down
            level = logging.WARNING if self._failures == 1 else logging.DEBUG
            log.log(level, "inverter %s: supervision: %s", self.link.where, exc)
        else:
            if self._failures:
                log.info(
                    "inverter %s: link back after %d failures", self.link.where, self._failures
                )
            self._failures = 0

    async def run(self) -> None:
        """:meth:`tick` every ``poll_interval_s`` until cancelled."""
        while True:
            await self.tick()
            await asyncio.sleep(self.options.poll_interval_s)

    async def close(self) -> None:
        """Command 0 W (best effort) and close the link."""
        with contextlib.suppress(RemoteInverterError, LocalInverterError, _WrongReadBackError):
            async with self._lock:
                await self._set(0.0)
        await self.link.close()


class _WrongReadBackError(Exception):
    """Internal: the read-back differs from what was written (becomes a fault, never escapes)."""


def _first(*values: float | None) -> float | None:
    return next((v for v in values if v is not None), None)


def _signed_magnitude(magnitude: float | None, power_w: float | None) -> float | None:
    if magnitude is None:
        return None
    return math.copysign(abs(magnitude), power_w) if power_w else abs(magnitude)


def meter_reading(
    m: InverterMeasurements,
    now: datetime | None = None,
    *,
    import_wh: float = 0.0,
    export_wh: float = 0.0,
) -> MeterReading:
    """The inverter's measurements as a transactions :class:`MeterReading`.

    Args:
        m: the measurements (already in the station's sign).
        now: the reading's timestamp; ``m.timestamp`` when None.
        import_wh / export_wh: used for a register the device does not implement.
    """
    return MeterReading(
        timestamp=now if now is not None else m.timestamp,
        energy_import_wh=m.energy_import_wh if m.energy_import_wh is not None else import_wh,
        energy_export_wh=m.energy_export_wh if m.energy_export_wh is not None else export_wh,
        power_w=m.power_w,
        current_a=m.current_a,
        voltage_v=m.voltage_v,
        frequency_hz=m.frequency_hz,
    )


class InverterMeter:
    """The transactions' meter taken from an inverter (the ``EvsePort.read_meter`` shape).

    ``read_meter`` is synchronous, so it serves the measurements :meth:`refresh` last fetched;
    the shell calls :meth:`refresh` periodically (and before a transaction starts). A register
    the device does not implement keeps its last value (0 at first).
    """

    def __init__(self, inverter: InverterPort) -> None:
        self._inverter = inverter
        self._last: InverterMeasurements | None = None
        self._import_wh = 0.0
        self._export_wh = 0.0

    async def refresh(self) -> InverterMeasurements:
        """Read the measurements now.

        Raises:
            RemoteInverterError: as the port's ``read_measurements``.
        """
        self._last = await self._inverter.read_measurements()
        return self._last

    def read_meter(self, now: datetime) -> MeterReading:
        """A reading at ``now`` from the last measurements.

        Raises:
            LocalInverterError: nothing has been measured yet.
        """
        if self._last is None:
            raise LocalInverterError("no inverter measurements yet; call refresh() first")
        reading = meter_reading(
            self._last, now, import_wh=self._import_wh, export_wh=self._export_wh
        )
        self._import_wh = reading.energy_import_wh
        self._export_wh = reading.energy_export_wh
        return reading
