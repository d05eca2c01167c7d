"""A simulated bidirectional inverter: a SunSpec device on a real pymodbus TCP server (127.0.0.1).

Two variants (``SimInverterSpec.legacy``):

- IEEE 1547 models 1, 701, 702, 704, 715 (and 705 volt-var, 706 volt-watt curves with
  ``volt_curves``): ``WSet`` (watts, export positive) with ``WSetEna`` /
  ``WSetMod``, ``WSetRvrt`` + ``WSetRvrtTms`` reversion, ``ControllerHb`` heartbeat;
- legacy models 1, 103, 123, 124: ``StorCtl_Mod`` limits ``InWRte`` / ``OutWRte`` in % of
  ``WChaMax`` (the storage side charges at most ``InWRte``, discharges at most ``OutWRte``;
  a negative limit forces the other direction), ``InOutWRte_RvrtTms`` reversion.

The measured power follows the commanded one with a first-order lag (``time_constant_s``) and is
integrated into ``TotWhInj`` (exported) / ``TotWhAbs`` (absorbed); 103 has only ``WH``
(exported). The grid voltage and frequency are scriptable (step, ramp, islanding drift) so grid
protection can be exercised. When neither a set-point nor a heartbeat arrives for the reversion
time, the device reverts by itself (704: ``WSet := WSetRvrt``, ``WSetEna := WSetEnaRvrt``; 124:
both rates back to 100 %, i.e. idle). Faults can be injected: no answer, refused set-point writes
(Modbus exception 3), wrong read-back, not following.

Time comes from the injected :class:`~station.clock.Clock` (monotonic); the update loop is an
asyncio task, and every Modbus request also brings the state up to its own instant. The register
image held here is the truth; pymodbus's ``SimDevice`` action hook copies it into every answer
and applies every write to it. Sign: everything here is SunSpec's (export positive); the station's
sign is converted in ``station.inverter.device``, not here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from station.clock import Clock
from station.inverter.curves import CURVE_MODELS, curve_layout
from station.inverter.sunspec import (
    END_MODEL_ID,
    SUNS_MARKER,
    ModelDef,
    PointDef,
    PointValue,
    decode_point,
    encode_point,
    load_model,
)

__all__ = ["SimFault", "SimInverter", "SimInverterSpec"]

log = logging.getLogger(__name__)

_SQRT3 = math.sqrt(3.0)
_WRITE_CODES = frozenset({6, 16, 23})
CURVE_POINTS = 4
"""Points per curve of the simulated 705/706 (``NPt``)."""


class SimFault(StrEnum):
    """Faults :meth:`SimInverter.inject_fault` can switch on."""

    NO_ANSWER = "no_answer"
    """Requests go unanswered (until the fault is cleared)."""
    REFUSE_WRITES = "refuse_writes"
    """Writes of a non-zero set-point are answered with exception 3 (illegal data value)."""
    WRONG_READBACK = "wrong_readback"
    """A non-zero set-point is stored as half of what was written."""
    NOT_FOLLOWING = "not_following"
    """Set-points are stored, but the measured power stays where it is."""


@dataclass(frozen=True, slots=True)
class SimInverterSpec:
    """What the simulated inverter is like.

    Attributes:
        base_address: where "SunS" is (0, 40000 or 50000).
        legacy: models 1, 103, 123, 124 instead of 1, 701, 702, 704, 715.
        device_id: the Modbus unit id it answers to.
        max_power_w: its rating, both directions.
        time_constant_s: first-order lag of the measured power behind the set-point.
        voltage_v: grid line-to-line voltage at start.
        frequency_hz: grid frequency at start.
        tick_s: period of the update loop.
        rtu_over_tcp: speak Modbus RTU framing on the TCP socket (a serial line tunnelled over
            loopback, for the adapter's serial path: ``ModbusSerial("socket://127.0.0.1:PORT")``).
        volt_curves: (IEEE 1547 variant) add 705 DERVoltVar and 706 DERVoltWatt, one writable
            curve of ``CURVE_POINTS`` points each.
    """

    base_address: int = 40000
    legacy: bool = False
    device_id: int = 1
    max_power_w: float = 11_000.0
    time_constant_s: float = 0.2
    voltage_v: float = 400.0
    frequency_hz: float = 50.0
    tick_s: float = 0.05
    rtu_over_tcp: bool = False
    volt_curves: bool = False

    def __post_init__(self) -> None:
        if self.base_address not in (0, 40000, 50000):
            raise ValueError("base_address must be 0, 40000 or 50000")
        if not 0 < self.max_power_w <= 320_000:
            raise ValueError("max_power_w must be in (0, 320000]")
        if self.time_constant_s < 0 or self.tick_s <= 0:
            raise ValueError("time_constant_s must be >= 0 and tick_s > 0")


@dataclass(frozen=True, slots=True)
class _Ramp:
    start_s: float
    duration_s: float
    from_value: float
    to_value: float

    def at(self, now_s: float) -> float:
        if self.duration_s <= 0 or now_s >= self.start_s + self.duration_s:
            return self.to_value
        share = max(0.0, (now_s - self.start_s) / self.duration_s)
        return self.from_value + (self.to_value - self.from_value) * share


class SimInverter:
    """A SunSpec inverter on ``127.0.0.1:port`` (port 0: an ephemeral one, see :attr:`port`)."""

    def __init__(
        self,
        spec: SimInverterSpec | None = None,
        *,
        clock: Clock,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.spec = spec if spec is not None else SimInverterSpec()
        self._clock = clock
        self._host = host
        self._want_port = port
        self._server: ModbusTcpServer | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._answer = asyncio.Event()
        self._answer.set()
        self.fault: SimFault | None = None
        # where each model's ID register is, as an offset into the image
        self._models: dict[int, int] = {}
        self._image: list[int] = []
        self._writable_mask: list[bool] = []
        self._build_image()
        now = clock.monotonic()
        self._t = now
        self._t0 = now
        self._last_control = now
        self.reverted = False
        self.measured_w = 0.0  # SunSpec sign: + export
        self.wh_injected = 0.0
        self.wh_absorbed = 0.0
        self._frequency = _Ramp(now, 0, self.spec.frequency_hz, self.spec.frequency_hz)
        self._voltage = _Ramp(now, 0, self.spec.voltage_v, self.spec.voltage_v)
        self._island_drift_hz_per_s = 0.0
        self._island_since = now
        self.writes = 0
        self._render()

    # ------------------------------------------------------------------ register image
    @property
    def model_ids(self) -> tuple[int, ...]:
        """The models, in chain order."""
        return tuple(self._models)

    def _build_image(self) -> None:
        if self.spec.legacy:
            ids: tuple[int, ...] = (1, 103, 123, 124)
        elif self.spec.volt_curves:
            ids = (1, 701, 702, 704, 705, 706, 715)
        else:
            ids = (1, 701, 702, 704, 715)
        image = list(SUNS_MARKER)
        for model_id in ids:
            model = load_model(model_id)
            self._models[model_id] = len(image)
            length = model.length
            if model_id in CURVE_MODELS:
                length = curve_layout(model_id, CURVE_POINTS).length(1)
            image += [model_id, length] + [0] * length
        image += [END_MODEL_ID, 0]
        self._image = image
        self._writable_mask = [False] * len(image)
        for model_id in ids:
            for p in self._points(model_id):
                if p.writable:
                    at = self._models[model_id] + p.offset
                    self._writable_mask[at : at + p.size] = [True] * p.size
        for model_id in ids:
            for p in self._points(model_id):  # everything "not implemented" to start with
                if p.name not in ("ID", "L"):
                    at = self._models[model_id] + p.offset
                    self._image[at : at + p.size] = encode_point(p, None)
        w_sf = 0 if self.spec.max_power_w <= 32_000 else 1
        rating = round(self.spec.max_power_w / 10**w_sf)
        self._put_all(
            1,
            {
                "Mn": "station-sim",
                "Md": "SimInverter-124" if self.spec.legacy else "SimInverter-7xx",
                "SN": "SIM-0001",
                "Vr": "1.0",
                "DA": 1,
            },
        )
        if self.spec.legacy:
            self._put_all(
                103,
                {
                    "A_SF": -1,
                    "V_SF": -1,
                    "W_SF": w_sf,
                    "Hz_SF": -2,
                    "VA_SF": w_sf,
                    "VAr_SF": w_sf,
                    "PF_SF": -2,
                    "WH_SF": 0,
                    "St": 4,
                },
            )
            self._put_all(
                123,
                {
                    "Conn": 1,
                    "WMaxLimPct": 100,
                    "WMaxLim_Ena": 0,
                    "OutPFSet": 100,
                    "OutPFSet_Ena": 0,
                    "VArPct_Ena": 0,
                    "WMaxLimPct_SF": 0,
                    "OutPFSet_SF": -2,
                },
            )
            self._put_all(
                124,
                {
                    "WChaMax": rating,
                    "WChaMax_SF": w_sf,
                    "WChaGra": 100,
                    "WDisChaGra": 100,
                    "WChaDisChaGra_SF": 0,
                    "StorCtl_Mod": 0,
                    "OutWRte": 10000,
                    "InWRte": 10000,
                    "InOutWRte_SF": -2,
                    "InOutWRte_RvrtTms": 0,
                    "ChaState": 50,
                    "ChaState_SF": 0,
                    "ChaSt": 4,
                },
            )
        else:
            self._put_all(
                701,
                {
                    "ACType": 2,
                    "St": 1,
                    "InvSt": 3,
                    "ConnSt": 1,
                    "A_SF": -1,
                    "V_SF": -1,
                    "Hz_SF": -3,
                    "W_SF": w_sf,
                    "PF_SF": -2,
                    "VA_SF": w_sf,
                    "Var_SF": w_sf,
                    "TotWh_SF": 0,
                    "TotVarh_SF": 0,
                    "Tmp_SF": 0,
                },
            )
            self._put_all(
                702,
                {
                    "WMaxRtg": rating,
                    "WChaRteMaxRtg": rating,
                    "WDisChaRteMaxRtg": rating,
                    "VAMaxRtg": rating,
                    "WMax": rating,
                    "WChaRteMax": rating,
                    "WDisChaRteMax": rating,
                    "VNomRtg": round(self.spec.voltage_v),
                    "W_SF": w_sf,
                    "VA_SF": w_sf,
                    "V_SF": 0,
                    "PF_SF": -2,
                    "Var_SF": w_sf,
                    "A_SF": 0,
                    "S_SF": 0,
                },
            )
            self._put_all(
                704,
                {
                    "WSetEna": 0,
                    "WSetMod": 1,
                    "WSet": 0,
                    "WSetRvrt": 0,
                    "WSetEnaRvrt": 0,
                    "WSetRvrtTms": 0,
                    "WSetRvrtRem": 0,
                    "WSetPct": 0,
                    "WSetPctRvrt": 0,
                    "PF_SF": -2,
                    "WMaxLimPct_SF": 0,
                    "WSet_SF": w_sf,
                    "WSetPct_SF": 0,
                    "VarSet_SF": 0,
                    "VarSetPct_SF": 0,
                    "AntiIslEna": 1,
                },
            )
            for model_id in CURVE_MODELS:
                if model_id not in self._models:
                    continue
                self._put_all(
                    model_id,
                    {
                        "Ena": 0,
                        "AdptCrvReq": 0,
                        "AdptCrvRslt": 1,
                        "NPt": CURVE_POINTS,
                        "NCrv": 1,
                        "RvrtTms": 0,
                        "RvrtRem": 0,
                        "RvrtCrv": 0,
                        "V_SF": -1,
                        "DeptRef_SF": -1,
                        "RspTms_SF": 0,
                    },
                )
                header = curve_layout(model_id, CURVE_POINTS).header
                for name, value in (("ActPt", 0), ("DeptRef", 1), ("ReadOnly", 0)):
                    p = header.point(name)
                    at = self._curve_start(model_id) + p.offset
                    self._image[at : at + p.size] = encode_point(p, value)
            self._put_all(
                715, {"LocRemCtl": 0, "DERHb": 0, "ControllerHb": 0, "AlarmReset": 0, "OpCtl": 1}
            )

    def _points(self, model_id: int) -> list[PointDef]:
        """Every point of ``model_id`` with its offset from the ID register, curves included."""
        points = list(load_model(model_id).points.values())
        if model_id in CURVE_MODELS:
            layout = curve_layout(model_id, CURVE_POINTS)
            start = layout.curve_offset(1)
            points += [replace(p, offset=start + p.offset) for p in layout.header.points.values()]
            for i in range(CURVE_POINTS):
                at = start + layout.header.length + i * layout.point.length
                points += [replace(p, offset=at + p.offset) for p in layout.point.points.values()]
        return points

    def _curve_start(self, model_id: int) -> int:
        """Image offset of the first (only) curve of 705/706."""
        return self._models[model_id] + curve_layout(model_id, CURVE_POINTS).curve_offset(1)

    def curve_words(self, model_id: int) -> list[int]:
        """The registers of the curve of 705/706 (header and points), for tests."""
        start = self._curve_start(model_id)
        return self._image[start : start + curve_layout(model_id, CURVE_POINTS).curve_size]

    def _put(self, model_id: int, name: str, value: PointValue) -> None:
        p = load_model(model_id).point(name)
        at = self._models[model_id] + p.offset
        self._image[at : at + p.size] = encode_point(p, value)

    def _put_all(self, model_id: int, values: Mapping[str, PointValue]) -> None:
        for name, value in values.items():
            self._put(model_id, name, value)

    def get(self, model_id: int, name: str) -> PointValue:
        """The raw value of a point as the device holds it now (for tests and ``status``)."""
        p = load_model(model_id).point(name)
        at = self._models[model_id] + p.offset
        return decode_point(p, self._image[at : at + p.size])

    def _scaled(self, model_id: int, name: str) -> float:
        model = load_model(model_id)
        raw = self.get(model_id, name)
        sf = model.point(name).sf
        exponent = self.get(model_id, sf) if isinstance(sf, str) else (sf or 0)
        if not isinstance(raw, int | float) or not isinstance(exponent, int):
            return 0.0
        return float(raw) * 10.0**exponent

    def _put_scaled(self, model_id: int, name: str, value: float) -> None:
        model = load_model(model_id)
        p = model.point(name)
        sf = p.sf
        exponent = self.get(model_id, sf) if isinstance(sf, str) else (sf or 0)
        assert isinstance(exponent, int)
        raw = round(value / 10.0**exponent)
        self._put(model_id, name, _clamp_to(model, name, raw))

    # ------------------------------------------------------------------ physics
    @property
    def frequency_hz(self) -> float:
        """The grid frequency now."""
        f = self._frequency.at(self._t)
        if self._island_drift_hz_per_s:
            f += self._island_drift_hz_per_s * (self._t - self._island_since)
        return max(f, 0.0)

    @property
    def voltage_v(self) -> float:
        """The grid line-to-line voltage now."""
        return max(self._voltage.at(self._t), 0.0)

    def target_w(self) -> float:
        """The power (SunSpec sign) the device is commanded to, within its rating."""
        limit = self.spec.max_power_w
        if self.spec.legacy:
            mode = self.get(124, "StorCtl_Mod")
            mode = mode if isinstance(mode, int) else 0
            wcha = self._scaled(124, "WChaMax")
            charge_max = self._scaled(124, "InWRte") / 100 * wcha if mode & 1 else limit
            discharge_max = self._scaled(124, "OutWRte") / 100 * wcha if mode & 2 else limit
            # storage side (+ = charging the storage = absorbing from the grid)
            storage_w = min(max(0.0, -discharge_max), charge_max)
            return max(-limit, min(limit, -storage_w))
        if self.get(704, "WSetEna") != 1:
            return 0.0
        if self.get(704, "WSetMod") == 1:
            wanted = self._scaled(704, "WSet")
        else:
            wanted = self._scaled(704, "WSetPct") / 100 * self._scaled(702, "WMax")
        return max(-limit, min(limit, wanted))

    def _reversion_s(self) -> float:
        point = ("124", "InOutWRte_RvrtTms") if self.spec.legacy else ("704", "WSetRvrtTms")
        value = self.get(int(point[0]), point[1])
        return float(value) if isinstance(value, int) else 0.0

    def _revert(self) -> None:
        self.reverted = True
        if self.spec.legacy:
            self._put_all(124, {"InWRte": 10000, "OutWRte": 10000})
        else:
            self._put_all(
                704, {"WSet": self.get(704, "WSetRvrt"), "WSetEna": self.get(704, "WSetEnaRvrt")}
            )
        log.info("sim inverter: reverted (no heartbeat for %.1f s)", self._reversion_s())

    def advance(self, now_s: float | None = None) -> None:
        """Bring the simulation up to ``now_s`` (the clock's monotonic time when None)."""
        now = self._clock.monotonic() if now_s is None else now_s
        dt = now - self._t
        if dt <= 0:
            return
        reversion_s = self._reversion_s()
        if reversion_s > 0 and not self.reverted and now - self._last_control >= reversion_s:
            self._revert()
        w0 = self.measured_w
        target = w0 if self.fault is SimFault.NOT_FOLLOWING else self.target_w()
        tau = self.spec.time_constant_s
        # exact first-order response, split where it crosses 0 W
        cross_s = dt
        if tau > 0 and w0 * target < 0:
            cross_s = min(dt, tau * math.log((w0 - target) / -target))
        for start_s, end_s in ((0.0, cross_s), (cross_s, dt)):
            energy_ws = _first_order_integral(w0, target, tau, start_s, end_s)
            if energy_ws >= 0:
                self.wh_injected += energy_ws / 3600
            else:
                self.wh_absorbed -= energy_ws / 3600
        self.measured_w = target if tau <= 0 else target + (w0 - target) * math.exp(-dt / tau)
        self._t = now
        self._render()

    def _render(self) -> None:
        """Write the measured values into the register image."""
        w = self.measured_w
        v = self.voltage_v
        current = abs(w) / (_SQRT3 * v) if v > 0 else 0.0
        if self.spec.legacy:
            self._put_scaled(103, "W", w)
            self._put_scaled(103, "A", current)
            self._put_scaled(103, "PhVphA", v / _SQRT3)
            self._put_scaled(103, "PPVphAB", v)
            self._put_scaled(103, "Hz", self.frequency_hz)
            self._put(103, "WH", min(int(self.wh_injected), 0xFFFFFFFF) or None)
            return
        self._put_scaled(701, "W", w)
        self._put_scaled(701, "VA", abs(w))
        self._put_scaled(701, "A", current)
        self._put_scaled(701, "LLV", v)
        self._put_scaled(701, "LNV", v / _SQRT3)
        self._put_scaled(701, "Hz", self.frequency_hz)
        self._put(701, "TotWhInj", int(self.wh_injected))
        self._put(701, "TotWhAbs", int(self.wh_absorbed))
        self._put(715, "DERHb", int(self._t - self._t0) % 0xFFFFFFFF)
        reversion_s = self._reversion_s()
        remaining = (
            0
            if reversion_s <= 0 or self.reverted
            else max(0, math.ceil(reversion_s - (self._t - self._last_control)))
        )
        self._put(704, "WSetRvrtRem", remaining)

    # ------------------------------------------------------------------ Modbus hook
    def _writable(self, offset: int, count: int) -> bool:
        """True when every register in the range belongs to a writable point."""
        if offset < 0 or offset + count > len(self._writable_mask):
            return False
        return all(self._writable_mask[offset : offset + count])

    def _touches(self, offset: int, count: int, model_id: int, *names: str) -> bool:
        start = self._models.get(model_id)
        if start is None:
            return False
        model = load_model(model_id)
        return any(
            start + model.point(n).offset < offset + count
            and offset < start + model.point(n).offset + model.point(n).size
            for n in names
        )

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if not self._answer.is_set():
            await self._answer.wait()
            return ExcCodes.DEVICE_BUSY  # late, to a client that has given up
        self.advance()
        offset = address - self.spec.base_address
        if function_code in _WRITE_CODES and set_values is not None:
            values = [int(v) for v in set_values]
            if not self._writable(offset, len(values)):
                return ExcCodes.ILLEGAL_ADDRESS
            return self._write(offset, values)
        registers[address - start_address : address - start_address + count] = self._image[
            offset : offset + count
        ]
        return None

    def _write(self, offset: int, values: list[int]) -> ExcCodes | None:
        before = self._image[:]
        self._image[offset : offset + len(values)] = values
        setpoint = self._touches(offset, len(values), 704, "WSet", "WSetEna", "WSetMod") or (
            self._touches(offset, len(values), 124, "InWRte", "OutWRte")
        )
        if setpoint and self.fault is SimFault.REFUSE_WRITES and self.target_w() != 0:
            self._image = before
            return ExcCodes.ILLEGAL_VALUE
        if setpoint and self.fault is SimFault.WRONG_READBACK and self.target_w() != 0:
            if self.spec.legacy:
                for name in ("InWRte", "OutWRte"):
                    raw = self.get(124, name)
                    self._put(124, name, int(raw) // 2 if isinstance(raw, int) else 0)
            else:
                raw = self.get(704, "WSet")
                self._put(704, "WSet", int(raw) // 2 if isinstance(raw, int) else 0)
        for model_id in CURVE_MODELS:
            if model_id not in self._models:
                continue
            if self._touches(offset, len(values), model_id, "AdptCrvReq"):
                self._put(
                    model_id, "AdptCrvRslt", 1 if self.get(model_id, "AdptCrvReq") == 1 else 2
                )
            start = self._curve_start(model_id)
            first_v = start + curve_layout(model_id, CURVE_POINTS).header.length
            if self.fault is SimFault.WRONG_READBACK and offset <= first_v < offset + len(values):
                self._image[first_v] //= 2
        if setpoint or self._touches(offset, len(values), 715, "ControllerHb"):
            self._last_control = self._t
            self.reverted = False
        self.writes += 1
        self._render()
        return None

    # ------------------------------------------------------------------ control API
    @property
    def port(self) -> int:
        """The TCP port it listens on (after :meth:`start`)."""
        if self._server is None or self._server.transport is None:
            raise RuntimeError("the simulated inverter is not started")
        sockets = getattr(self._server.transport, "sockets", None)
        assert sockets
        return int(sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Listen on ``host:port`` and start the update loop."""
        registers = SimData(
            address=self.spec.base_address,
            values=self._image[:],
            datatype=DataType.REGISTERS,
        )
        device = SimDevice(id=self.spec.device_id, simdata=[registers], action=self._action)
        framer = FramerType.RTU if self.spec.rtu_over_tcp else FramerType.SOCKET
        self._server = ModbusTcpServer(device, framer=framer, address=(self._host, self._want_port))
        await self._server.serve_forever(background=True)
        self._loop_task = asyncio.create_task(self._run(), name="sim-inverter")
        log.info(
            "sim inverter: listening on %s:%d (base %d, models %s)",
            self._host,
            self.port,
            self.spec.base_address,
            list(self._models),
        )

    async def _run(self) -> None:
        while True:
            self.advance()
            await asyncio.sleep(self.spec.tick_s)

    async def stop(self) -> None:
        """Stop the update loop and the server; unblock requests held by a no-answer fault."""
        self._answer.set()
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]
            self._server = None

    async def __aenter__(self) -> SimInverter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def set_grid(
        self,
        frequency_hz: float | None = None,
        voltage_v: float | None = None,
        ramp_s: float | None = None,
    ) -> None:
        """Step (``ramp_s`` None or 0) or ramp the grid to new values; ends islanding.

        Raises:
            ValueError: a negative or non-finite value.
        """
        for value in (frequency_hz, voltage_v, ramp_s):
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"grid values must be finite and >= 0, got {value}")
        self.advance()
        now = self._t
        duration = ramp_s or 0.0
        if frequency_hz is not None or self._island_drift_hz_per_s:
            current_f = self.frequency_hz
            self._island_drift_hz_per_s = 0.0
            target_f = current_f if frequency_hz is None else frequency_hz
            self._frequency = _Ramp(now, duration, current_f, target_f)
        if voltage_v is not None:
            self._voltage = _Ramp(now, duration, self.voltage_v, voltage_v)
        self._render()

    def island(self, drift_hz_per_s: float = 1.0) -> None:
        """The grid is lost: the frequency drifts away from where it is, at ``drift_hz_per_s``."""
        self.advance()
        self._frequency = _Ramp(self._t, 0, self.frequency_hz, self.frequency_hz)
        self._island_drift_hz_per_s = drift_hz_per_s
        self._island_since = self._t
        self._render()

    def inject_fault(self, kind: SimFault | str) -> None:
        """Switch a fault on (replacing any other).

        Raises:
            ValueError: an unknown fault kind.
        """
        fault = SimFault(kind)
        self.fault = fault
        if fault is SimFault.NO_ANSWER:
            self._answer.clear()
        else:
            self._answer.set()
        log.info("sim inverter: fault %s injected", fault)

    def clear_fault(self) -> None:
        """Back to normal operation."""
        self.fault = None
        self._answer.set()

    def status(self) -> dict[str, Any]:
        """What the device is doing now, SunSpec sign (+ = export); JSON-serialisable."""
        self.advance()
        status: dict[str, Any] = {
            "variant": "124" if self.spec.legacy else "7xx",
            "base_address": self.spec.base_address,
            "models": list(self._models),
            "measured_w": round(self.measured_w, 3),
            "target_w": round(self.target_w(), 3),
            "frequency_hz": round(self.frequency_hz, 4),
            "voltage_v": round(self.voltage_v, 2),
            "wh_injected": round(self.wh_injected, 3),
            "wh_absorbed": round(self.wh_absorbed, 3),
            "reverted": self.reverted,
            "reversion_s": self._reversion_s(),
            "islanded": bool(self._island_drift_hz_per_s),
            "fault": None if self.fault is None else str(self.fault),
            "writes": self.writes,
        }
        if self._server is not None and self._server.transport is not None:
            status["port"] = self.port
        return status


def _first_order_integral(w0: float, target: float, tau: float, a: float, b: float) -> float:
    """Integral over [a, b] of ``target + (w0 - target) * exp(-t / tau)`` (watt-seconds)."""
    if b <= a:
        return 0.0
    if tau <= 0:
        return target * (b - a)
    return target * (b - a) + (w0 - target) * tau * (math.exp(-a / tau) - math.exp(-b / tau))


def _clamp_to(model: ModelDef, name: str, raw: int) -> int:
    """Clamp a raw value into its point's range (avoiding the "not implemented" sentinel)."""
    kind = model.point(name).type.value
    low, high = {
        "int16": (-0x7FFF, 0x7FFF),
        "uint16": (0, 0xFFFE),
        "int32": (-0x7FFFFFFF, 0x7FFFFFFF),
        "uint32": (0, 0xFFFFFFFE),
    }.get(kind, (0, 0xFFFE))
    return max(low, min(high, raw))
