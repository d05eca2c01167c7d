"""The station's configuration: one TOML file loaded into frozen dataclasses.

This module owns the file format and its validation. Every error is a :class:`ConfigError`
whose message is one line naming the file, the key and the problem; nothing here raises anything
else for bad input. Defaults live in the dataclasses below and are documented key by key in
README.md ("Configuration"); ``deploy/station.example.toml`` shows every key.

Device-model variables that the CSMS may change (HeartbeatInterval, RetryBackOff*, ...) take their
*initial* values from here; once the CSMS has set one, the persisted value wins.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from station.errors import ConfigError

__all__ = [
    "ChademoConfig",
    "Config",
    "ConnectorKind",
    "CsmsConfig",
    "EvseConfig",
    "GpioConfig",
    "GridConfig",
    "GridTripConfig",
    "InverterConfig",
    "LinkKind",
    "SimConfig",
    "StationConfig",
    "StorageConfig",
    "load_config",
    "parse_config",
]


class ConnectorKind(StrEnum):
    """The kind of DC connector on an EVSE."""

    CHADEMO = "chademo"
    CCS = "ccs"


class LinkKind(StrEnum):
    """Whether a hardware link talks to real hardware, to the built-in simulator, or (the
    inverter only) is not there."""

    SIMULATED = "simulated"
    HARDWARE = "hardware"
    NONE = "none"


Subprotocol = Literal["ocpp2.1", "ocpp2.0.1"]


@dataclass(frozen=True, slots=True)
class StationConfig:
    """``[station]``: the station's identity (BootNotification chargingStation)."""

    id: str
    vendor: str = "Station Project"
    model: str = "station-v2g"
    serial_number: str | None = None
    log_level: str = "INFO"

    def check(self, where: _Where) -> None:
        # The identity becomes the last URL path segment and the Basic-auth user name
        # (OCPP 2.0.1 Part 2 A00: identity string[48], no ':').
        if not self.id or len(self.id) > 48:
            raise where.error("id", "must be 1 to 48 characters")
        if any(c in self.id for c in ":/?#% ") or not self.id.isprintable():
            raise where.error("id", "must not contain ':', '/', '?', '#', '%' or spaces")
        if len(self.vendor) > 50:
            raise where.error("vendor", "must be at most 50 characters")
        if len(self.model) > 20:
            raise where.error("model", "must be at most 20 characters")
        if self.serial_number is not None and len(self.serial_number) > 25:
            raise where.error("serial_number", "must be at most 25 characters")
        if self.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise where.error("log_level", "must be one of DEBUG, INFO, WARNING, ERROR")


@dataclass(frozen=True, slots=True)
class CsmsConfig:
    """``[csms]``: the link to the backend and the OCPPCommCtrlr start values."""

    url: str
    security_profile: int = 0
    subprotocols: tuple[Subprotocol, ...] = ("ocpp2.1", "ocpp2.0.1")
    basic_auth_password: str | None = None
    ca_file: Path | None = None
    client_cert_file: Path | None = None
    client_key_file: Path | None = None
    message_timeout_s: int = 30
    heartbeat_interval_s: int = 300
    websocket_ping_interval_s: int = 60
    retry_backoff_wait_minimum_s: int = 3
    retry_backoff_random_range_s: int = 10
    retry_backoff_repeat_times: int = 5
    offline_threshold_s: int = 60
    boot_retry_interval_s: int = 30

    def check(self, where: _Where) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in {"ws", "wss"} or not parts.hostname:
            raise where.error("url", f"must be a ws:// or wss:// URL, got {self.url!r}")
        if not 0 <= self.security_profile <= 3:
            raise where.error("security_profile", "must be 0, 1, 2 or 3")
        # OCPP 2.0.1 Part 2 A00: profiles 2 and 3 are TLS; 0 and 1 are not. Never fall back.
        if self.security_profile >= 2 and parts.scheme != "wss":
            raise where.error("url", f"security profile {self.security_profile} needs wss://")
        if self.security_profile <= 1 and parts.scheme != "ws":
            raise where.error("url", f"security profile {self.security_profile} needs ws://")
        if self.security_profile in (1, 2):
            if self.basic_auth_password is None:
                raise where.error(
                    "basic_auth_password",
                    f"is required for security profile {self.security_profile}",
                )
            # SecurityCtrlr.BasicAuthPassword: passwordString, 16 to 40 characters.
            if not 16 <= len(self.basic_auth_password) <= 40:
                raise where.error("basic_auth_password", "must be 16 to 40 characters")
        if self.security_profile >= 2 and self.ca_file is None:
            raise where.error(
                "ca_file", f"is required for security profile {self.security_profile}"
            )
        if self.security_profile == 3:
            if self.client_cert_file is None:
                raise where.error("client_cert_file", "is required for security profile 3")
            if self.client_key_file is None:
                raise where.error("client_key_file", "is required for security profile 3")
        for name in ("ca_file", "client_cert_file", "client_key_file"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise where.error(name, f"no such file: {path}")
        if not self.subprotocols:
            raise where.error("subprotocols", "must name at least one of ocpp2.1, ocpp2.0.1")
        if len(set(self.subprotocols)) != len(self.subprotocols):
            raise where.error("subprotocols", "must not repeat a subprotocol")
        for name, low, high in (
            ("message_timeout_s", 1, 3600),
            ("heartbeat_interval_s", 1, 86400),
            ("websocket_ping_interval_s", 0, 3600),
            ("retry_backoff_wait_minimum_s", 0, 3600),
            ("retry_backoff_random_range_s", 0, 3600),
            ("retry_backoff_repeat_times", 0, 100),
            ("offline_threshold_s", 0, 86400),
            ("boot_retry_interval_s", 1, 86400),
        ):
            value = getattr(self, name)
            if not low <= value <= high:
                raise where.error(name, f"must be between {low} and {high}, got {value}")


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """``[storage]``: the SQLite file and the OCPP message log beside it."""

    database: Path
    message_log: bool = True
    message_log_file: Path | None = None
    #: The bound of the offline TransactionEvent queue: beyond it the oldest meter-value-only
    #: Updated events are thinned (never Started or Ended).
    queue_max_messages: int = 20_000

    @property
    def message_log_path(self) -> Path:
        """The JSON-lines OCPP message log: next to the database unless configured."""
        if self.message_log_file is not None:
            return self.message_log_file
        return self.database.with_name(self.database.stem + ".ocpp.jsonl")

    def check(self, where: _Where) -> None:
        if str(self.database) != ":memory:" and self.database.is_dir():
            raise where.error("database", f"is a directory: {self.database}")
        if self.queue_max_messages < 100:
            raise where.error("queue_max_messages", "must be at least 100")


_GPIO_PINS = ("lock", "contactors", "insulation_test", "insulation_ok", "estop")


@dataclass(frozen=True, slots=True)
class GpioConfig:
    """``[evse.chademo.gpio]``: the connector's relays and inputs on Linux sysfs GPIO value files
    (``<root>/gpioN/value``; the pins are exported and their direction set by the image).

    ``lock``, ``contactors`` and ``insulation_test`` are outputs (1 = locked / closed / test
    running); ``insulation_ok`` is the insulation monitor's input (1 = insulation good);
    ``estop`` is the emergency-stop input, pressed when it reads 0 with ``estop_active_low``
    (a normally-closed loop: a broken wire reads as pressed).
    """

    lock: int
    contactors: int
    insulation_test: int
    insulation_ok: int
    estop: int
    root: Path = Path("/sys/class/gpio")
    estop_active_low: bool = True

    def check(self, where: _Where) -> None:
        used: dict[int, str] = {}
        for name in _GPIO_PINS:
            pin = getattr(self, name)
            if pin < 0:
                raise where.error(name, f"must be a GPIO number 0 or more, got {pin}")
            if pin in used:
                raise where.error(name, f"GPIO {pin} is already used by {used[pin]}")
            used[pin] = name


@dataclass(frozen=True, slots=True)
class ChademoConfig:
    """``[evse.chademo]``: run the CHAdeMO protocol on this EVSE (python-can).

    With ``vehicle = "simulated"`` the simulated CHAdeMO vehicle speaks on the same bus (the
    ``virtual`` interface works inside one process only).
    """

    can_interface: str = "virtual"
    can_channel: str = ""
    can_bitrate: int = 500_000
    vehicle_timeout_s: float = 1.0
    handshake_timeout_s: float = 20.0
    insulation_timeout_s: float = 10.0
    stop_timeout_s: float = 10.0
    quirk_inverted_200: bool = False
    local_token: str = ""
    #: ``[evse.chademo.gpio]``: the connector's hardware (required with ``vehicle = "hardware"``).
    gpio: GpioConfig | None = None

    def check(self, where: _Where) -> None:
        if not self.can_interface:
            raise where.error("can_interface", "must not be empty")
        if self.can_interface != "virtual" and not self.can_channel:
            raise where.error(
                "can_channel", f'is required with can_interface "{self.can_interface}"'
            )
        if not 10_000 <= self.can_bitrate <= 1_000_000:
            raise where.error("can_bitrate", "must be between 10000 and 1000000")
        for name in (
            "vehicle_timeout_s",
            "handshake_timeout_s",
            "insulation_timeout_s",
            "stop_timeout_s",
        ):
            if not getattr(self, name) > 0:
                raise where.error(name, "must be greater than 0")
        if len(self.local_token) > 36:
            raise where.error("local_token", "must be at most 36 characters (IdToken)")


@dataclass(frozen=True, slots=True)
class EvseConfig:
    """``[[evse]]``: one EVSE with one connector and its ratings (sign per DESIGN.md)."""

    id: int
    connector: ConnectorKind
    connector_id: int = 1
    max_charge_power_w: float = 20_000.0
    max_discharge_power_w: float = 10_000.0
    max_current_a: float = 50.0
    max_voltage_v: float = 500.0
    min_voltage_v: float = 150.0
    vehicle: LinkKind = LinkKind.SIMULATED
    #: The simulated vehicle plugs in and presents a token by itself once the CSMS accepted the
    #: station (for demos and the crash test); it charges until unplugged or stopped.
    sim_autostart: bool = False
    #: ``[evse.chademo]``: the EVSE runs the CHAdeMO protocol over CAN (connector "chademo"
    #: only). Without it the simulated vehicle is driven directly, with no protocol.
    chademo: ChademoConfig | None = None

    def check(self, where: _Where) -> None:
        if self.chademo is not None and self.connector is not ConnectorKind.CHADEMO:
            raise where.error("chademo", 'is only for connector = "chademo"')
        if self.id < 1:
            raise where.error("id", "must be 1 or more (EVSE 0 is the whole station)")
        if self.connector_id < 1:
            raise where.error("connector_id", "must be 1 or more")
        for name in ("max_charge_power_w", "max_current_a", "max_voltage_v", "min_voltage_v"):
            if getattr(self, name) <= 0:
                raise where.error(name, "must be greater than 0")
        if self.max_discharge_power_w < 0:
            raise where.error("max_discharge_power_w", "must be 0 (no discharge) or more")
        if self.min_voltage_v >= self.max_voltage_v:
            raise where.error("min_voltage_v", "must be below max_voltage_v")
        if self.vehicle is LinkKind.HARDWARE:
            # A field vehicle link is CHAdeMO over CAN with the connector's GPIO hardware; the
            # inverter it needs is checked with the whole file (Config.check).
            if self.chademo is None:
                raise where.error(
                    "vehicle", "hardware needs an [evse.chademo] table (CHAdeMO over CAN)"
                )
            if self.chademo.gpio is None:
                raise where.error(
                    "chademo.gpio", 'is required with vehicle = "hardware" (the connector\'s GPIO)'
                )
        if self.vehicle is LinkKind.NONE:
            raise where.error("vehicle", 'must be "simulated" or "hardware"')


@dataclass(frozen=True, slots=True)
class InverterConfig:
    """``[inverter]``: the bidirectional AC/DC converter, over Modbus (SunSpec or a vendor map)."""

    link: LinkKind = LinkKind.NONE
    transport: Literal["tcp", "rtu"] = "tcp"
    host: str = "127.0.0.1"
    port: int = 502
    serial_device: str = ""
    baudrate: int = 19200
    parity: Literal["N", "E", "O"] = "N"
    stopbits: int = 1
    device_id: int = 1
    timeout_s: float = 1.0
    register_map: Path | None = None
    poll_interval_s: float = 0.05
    heartbeat_interval_s: float = 1.0
    reversion_timeout_s: int = 10
    write_retries: int = 2
    tolerance_w: float = 100.0
    tolerance_pct: float = 5.0
    settle_timeout_s: float = 5.0
    fault_retry_s: float = 60.0
    der_controls: tuple[str, ...] = ()
    volt_curves: bool = False
    sim_legacy: bool = False
    sim_base_address: int = 40000
    sim_time_constant_s: float = 0.2

    def check(self, where: _Where) -> None:
        if self.link is LinkKind.HARDWARE and self.transport == "rtu" and not self.serial_device:
            raise where.error("serial_device", 'is required with transport = "rtu"')
        if not 0 < self.port <= 65535:
            raise where.error("port", "must be between 1 and 65535")
        if not 0 <= self.device_id <= 247:
            raise where.error("device_id", "must be between 0 and 247")
        if self.stopbits not in (1, 2):
            raise where.error("stopbits", "must be 1 or 2")
        for name in ("timeout_s", "poll_interval_s", "heartbeat_interval_s", "settle_timeout_s"):
            if not getattr(self, name) > 0:
                raise where.error(name, "must be greater than 0")
        if not 0 <= self.reversion_timeout_s <= 65535:
            raise where.error("reversion_timeout_s", "must be between 0 (off) and 65535")
        if self.reversion_timeout_s and self.reversion_timeout_s <= self.heartbeat_interval_s:
            raise where.error("reversion_timeout_s", "must be longer than heartbeat_interval_s")
        for name in ("write_retries", "tolerance_w", "tolerance_pct", "fault_retry_s"):
            if getattr(self, name) < 0:
                raise where.error(name, "must be 0 or more")
        if self.sim_base_address not in (0, 40000, 50000):
            raise where.error("sim_base_address", "must be 0, 40000 or 50000")
        if self.sim_time_constant_s < 0:
            raise where.error("sim_time_constant_s", "must be 0 or more")
        if self.register_map is not None:
            from station.inverter.vendor import RegisterMapError, load_register_map

            try:
                load_register_map(self.register_map)
            except RegisterMapError as exc:
                raise where.error("register_map", str(exc)) from None
        if self.der_controls:
            from station.der.grid import CONTROLS_WITH_INVERTER, VOLT_CURVE_CONTROLS

            known = sorted(t.value for t in CONTROLS_WITH_INVERTER | VOLT_CURVE_CONTROLS)
            for index, name in enumerate(self.der_controls):
                if name not in known:
                    raise where.error(
                        f"der_controls[{index}]",
                        f"{name!r} is not a DER control this station carries out "
                        f"({', '.join(known)})",
                    )


class TripKindName(StrEnum):
    """What a ``[[grid.trip]]`` point watches (IEEE 1547-2018 cl. 6.4.1, 6.5.1)."""

    OVER_VOLTAGE = "OverVoltage"
    UNDER_VOLTAGE = "UnderVoltage"
    OVER_FREQUENCY = "OverFrequency"
    UNDER_FREQUENCY = "UnderFrequency"


@dataclass(frozen=True, slots=True)
class GridTripConfig:
    """``[[grid.trip]]``: one must-trip point added to (or, with ``defaults = "none"``, instead
    of) the IEEE 1547-2018 Category II defaults."""

    kind: TripKindName
    threshold: float
    clearing_time_s: float
    name: str = ""


@dataclass(frozen=True, slots=True)
class GridConfig:
    """``[grid]``: the grid protection evaluated on every inverter measurement."""

    nominal_voltage_v: float = 240.0
    nominal_frequency_hz: float = 60.0
    defaults: Literal["ieee1547-2018-cat-ii", "none"] = "ieee1547-2018-cat-ii"
    trip: tuple[GridTripConfig, ...] = ()
    enter_service_voltage_pu: tuple[float, ...] = (0.917, 1.05)
    enter_service_frequency_hz: tuple[float, ...] = ()
    enter_service_delay_s: float = 300.0
    enter_service_ramp_s: float = 300.0
    observation_period_s: float = 0.0

    def check(self, where: _Where) -> None:
        for name in ("enter_service_voltage_pu", "enter_service_frequency_hz"):
            value = getattr(self, name)
            if value and len(value) != 2:
                raise where.error(name, "must be a list of two numbers [low, high]")
        try:
            self.protection_settings()
        except ValueError as exc:  # ProtectionSettingsError
            raise where.error("", str(exc)) from None

    def protection_settings(self) -> Any:
        """The :class:`station.inverter.protection.ProtectionSettings` these keys describe.

        The enter-service frequency window defaults to IEEE 1547-2018 Table 4 (59.5-60.1 Hz at
        60 Hz), shifted by the same offsets for another nominal frequency.
        """
        from dataclasses import replace

        from station.inverter.protection import TripKind, TripPoint, category_ii_settings

        base = category_ii_settings(
            self.nominal_voltage_v,
            self.nominal_frequency_hz,
            enter_service_delay_s=self.enter_service_delay_s,
            enter_service_ramp_s=self.enter_service_ramp_s,
            observation_period_s=self.observation_period_s,
        )
        extra = tuple(
            TripPoint(TripKind(t.kind.value), t.threshold, t.clearing_time_s, t.name)
            for t in self.trip
        )
        points = (base.trip_points if self.defaults != "none" else ()) + extra
        enter = base.enter_service
        if self.enter_service_voltage_pu:
            low, high = self.enter_service_voltage_pu
            enter = replace(enter, low_voltage_pu=low, high_voltage_pu=high)
        if self.enter_service_frequency_hz:
            low, high = self.enter_service_frequency_hz
            enter = replace(enter, low_frequency_hz=low, high_frequency_hz=high)
        return replace(base, trip_points=points, enter_service=enter)


@dataclass(frozen=True, slots=True)
class TransactionsConfig:
    """``[transactions]``: the start values of transaction variables the CSMS may change."""

    #: TxCtrlr.ResumptionTimeout (OCPP 2.1): a transaction interrupted by a crash or power loss
    #: for at most this long, whose EV is still connected, is resumed; 0 ends it (PowerLoss).
    resumption_timeout_s: int = 0
    #: TxCtrlr.AllowEnergyTransferResumption: a resumed transaction charges again without a new
    #: authorization.
    allow_energy_transfer_resumption: bool = True

    def check(self, where: _Where) -> None:
        if not 0 <= self.resumption_timeout_s <= 86400:
            raise where.error("resumption_timeout_s", "must be between 0 and 86400")


@dataclass(frozen=True, slots=True)
class SimConfig:
    """``[sim]``: the control endpoint of the simulated peers."""

    control: Literal["unix", "tcp"] = "unix"
    port: int = 0

    def check(self, where: _Where) -> None:
        if not 0 <= self.port <= 65535:
            raise where.error("port", "must be between 0 and 65535")


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration file."""

    station: StationConfig
    csms: CsmsConfig
    storage: StorageConfig
    evse: tuple[EvseConfig, ...]
    inverter: InverterConfig = field(default_factory=InverterConfig)
    grid: GridConfig = field(default_factory=GridConfig)
    transactions: TransactionsConfig = field(default_factory=TransactionsConfig)
    sim: SimConfig = field(default_factory=SimConfig)
    source: str = "<config>"

    @property
    def any_simulated(self) -> bool:
        """True when at least one hardware link is served by a simulator."""
        return self.inverter.link is LinkKind.SIMULATED or any(
            e.vehicle is LinkKind.SIMULATED for e in self.evse
        )

    def check(self, where: _Where) -> None:
        if not self.evse:
            raise where.error("evse", "at least one [[evse]] is required")
        seen: set[int] = set()
        for index, evse in enumerate(self.evse):
            if evse.id in seen:
                raise where.error(f"evse[{index}].id", f"EVSE id {evse.id} is used twice")
            seen.add(evse.id)
        # OCPP 2.0.1 Part 1 (3-tier model): EVSE ids are numbered from 1 without gaps.
        if sorted(seen) != list(range(1, len(seen) + 1)):
            raise where.error("evse", "EVSE ids must be 1, 2, ... without gaps")
        self._check_hardware_vehicles(where)

    def _check_hardware_vehicles(self, where: _Where) -> None:
        """A hardware CHAdeMO EVSE's DC power stage and DC measurement are the inverter's: one
        such EVSE per inverter, whose register map has the DC voltage and current."""
        hardware = [i for i, e in enumerate(self.evse) if e.vehicle is LinkKind.HARDWARE]
        if not hardware:
            return
        first = hardware[0]
        if len(hardware) > 1:
            raise where.error(
                f"evse[{hardware[1]}].vehicle",
                f'only one EVSE may have vehicle = "hardware" (the inverter is evse[{first}]\'s '
                "DC power stage and measurement)",
            )
        if self.inverter.link is LinkKind.NONE:
            raise where.error(
                f"evse[{first}].vehicle",
                "hardware needs an [inverter] link (its DC power stage and DC measurement); "
                'set [inverter] link = "hardware"',
            )
        register_map = self.inverter.register_map
        if register_map is None:
            raise where.error(
                "inverter.register_map",
                f'is required with evse[{first}] vehicle = "hardware": the DC measurement '
                "comes from a register map with dc_voltage_v and dc_current_a (SunSpec model "
                "714 is not supported yet)",
            )
        from station.inverter.vendor import load_register_map

        missing = [
            n for n in ("dc_voltage_v", "dc_current_a") if n not in load_register_map(register_map)
        ]
        if missing:
            raise where.error(
                "inverter.register_map",
                f"{register_map.name} has no {' or '.join(missing)} register (the DC measurement "
                f'of evse[{first}], vehicle = "hardware")',
            )


# --------------------------------------------------------------------------------------------
# Loading: generic over the dataclasses above.


@dataclass(frozen=True, slots=True)
class _Where:
    path: str
    prefix: str

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(
            self.path, f"{self.prefix}{key}" if key else self.prefix.rstrip("."), problem
        )

    def child(self, key: str) -> _Where:
        return _Where(self.path, f"{self.prefix}{key}.")


def load_config(path: str | Path) -> Config:
    """Read and validate a configuration file.

    Relative paths inside the file (database, certificates) are taken relative to the file's folder.

    Raises:
        ConfigError: the file cannot be read or parsed, or a key is missing, unknown, of the wrong
            type or out of range.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, "", "no such file") from None
    except IsADirectoryError:
        raise ConfigError(source, "", "is a directory, not a file") from None
    except PermissionError:
        raise ConfigError(source, "", "permission denied") from None
    except UnicodeDecodeError:
        raise ConfigError(source, "", "is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(source, "", f"cannot be read: {exc.strerror or exc}") from None
    return parse_config(text, source=source, base_dir=Path(path).resolve().parent)


def parse_config(text: str, *, source: str = "<config>", base_dir: Path | None = None) -> Config:
    """Parse configuration text (see :func:`load_config`)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "", f"not valid TOML: {exc}") from None
    where = _Where(source, "")
    if "source" in raw:
        raise where.error("source", "unknown key")
    values = _build(Config, {**raw, "source": source}, where, base_dir or Path.cwd())
    assert isinstance(values, Config)
    return values


def _build(cls: type[Any], raw: Any, where: _Where, base_dir: Path) -> Any:
    if not isinstance(raw, dict):
        raise where.error("", f"must be a table, got {_kind(raw)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise where.error(unknown[0], "unknown key")
    kwargs: dict[str, Any] = {}
    for name, spec in fields.items():
        if name not in raw:
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                raise where.error(name, "missing required key")
            continue
        kwargs[name] = _convert(hints[name], raw[name], where, name, base_dir)
    value = cls(**kwargs)
    check = getattr(value, "check", None)
    if check is not None:
        check(where)
    return value


def _convert(hint: Any, raw: Any, where: _Where, key: str, base_dir: Path) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], raw, where, key, base_dir)
    if origin is tuple:
        if isinstance(raw, dict) and dataclasses.is_dataclass(args[0]):
            raw = [raw]
        if not isinstance(raw, list):
            raise where.error(key, f"must be an array, got {_kind(raw)}")
        return tuple(
            _convert(args[0], item, where, f"{key}[{index}]", base_dir)
            for index, item in enumerate(raw)
        )
    if origin is Literal:
        if raw not in args:
            choices = ", ".join(repr(a) for a in args)
            raise where.error(key, f"must be one of {choices}, got {raw!r}")
        return raw
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, raw, where.child(key), base_dir)
    if isinstance(hint, type) and issubclass(hint, StrEnum):
        values = [m.value for m in hint]
        if raw not in values:
            raise where.error(key, f"must be one of {', '.join(values)}, got {raw!r}")
        return hint(raw)
    if hint is Path:
        if not isinstance(raw, str) or not raw:
            raise where.error(key, f"must be a non-empty path string, got {_kind(raw)}")
        if raw == ":memory:":
            return Path(raw)
        path = Path(raw).expanduser()
        return path if path.is_absolute() else base_dir / path
    if hint is bool:
        if not isinstance(raw, bool):
            raise where.error(key, f"must be true or false, got {_kind(raw)}")
        return raw
    if hint is int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise where.error(key, f"must be an integer, got {_kind(raw)}")
        return raw
    if hint is float:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise where.error(key, f"must be a number, got {_kind(raw)}")
        return float(raw)
    if hint is str:
        if not isinstance(raw, str):
            raise where.error(key, f"must be a string, got {_kind(raw)}")
        return raw
    raise TypeError(f"unsupported config type {hint!r} for {key}")  # a bug in this module


def _kind(raw: Any) -> str:
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }
    for kind, name in names.items():
        if type(raw) is kind:
            return f"{name} ({raw!r})" if kind in (bool, int, float, str) else name
    return type(raw).__name__
