"""The ``station`` command.

``station run --config FILE`` runs the station until SIGTERM/SIGINT (sessions closed safely, the
store flushed, exit 0). ``station demo`` runs a complete station with simulated peers against a
local CSMS on 127.0.0.1, no hardware or config needed. ``station csms`` runs that CSMS alone.
``station db upgrade|current`` and ``station certs dev`` manage the database and a test PKI.
``station schedule`` prints (and with ``--plot`` draws) the composite schedule of the profiles
in the station's database, read-only, whether or not the station runs.

Errors are one line on stderr and a non-zero exit: 2 for a bad configuration or usage, 1 for
anything else that stops the command. This is the only module that prints.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import ssl
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from station import __version__
from station.config import Config, load_config
from station.errors import ConfigError, StationError, StoreError

__all__ = ["main"]

log = logging.getLogger(__name__)


def _setup_logging(level: str, *, quiet_libraries: bool = True) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if quiet_libraries:
        # The ocpp library logs every frame at INFO; our message log has them already.
        for name in ("ocpp", "websockets", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)


def _install_stop_handlers(stop: asyncio.Event) -> None:
    """The first SIGTERM/SIGINT stops cleanly; a second one, while that is under way, exits now."""
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            print("station: stopping at once (second signal)", file=sys.stderr, flush=True)
            os._exit(1)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal)


# ----------------------------------------------------------------------------------- run


def _cmd_run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    _setup_logging(args.log_level or config.station.log_level)
    from station.app import run_station

    async def main() -> None:
        stop = asyncio.Event()
        _install_stop_handlers(stop)
        await run_station(config, stop)

    asyncio.run(main())
    log.info("station stopped")
    return 0


# ---------------------------------------------------------------------------------- csms


def _server_tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not args.tls_cert:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(args.tls_cert, args.tls_key)
    if args.tls_client_ca:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(args.tls_client_ca)
    return context


def _cmd_csms(args: argparse.Namespace) -> int:
    _setup_logging(args.log_level or "INFO")
    from station.sim.csms import Csms, Frame, run_operator_console

    basic_auth: dict[str, str] | None = None
    if args.basic_auth:
        basic_auth = {}
        for item in args.basic_auth:
            station_id, sep, password = item.partition(":")
            if not sep:
                raise ConfigError("--basic-auth", "", f"expected STATION_ID:PASSWORD, got {item!r}")
            basic_auth[station_id] = password

    def show(frame: Frame) -> None:
        arrow = "station → CSMS" if frame.direction == "in" else "CSMS → station"
        print(f"{frame.station_id} {arrow} {frame.raw}", flush=True)

    async def main() -> None:
        stop = asyncio.Event()
        _install_stop_handlers(stop)
        csms = Csms(
            host=args.host,
            port=args.port,
            subprotocols=tuple(args.subprotocols),
            heartbeat_interval_s=args.heartbeat_interval,
            basic_auth=basic_auth,
            ssl_context=_server_tls(args),
            on_frame=show,
        )
        async with csms:
            print(f"CSMS listening on {csms.url}/<station id>", flush=True)
            print("operator commands on stdin: STATION_ID ACTION {json payload}", flush=True)
            console = asyncio.ensure_future(run_operator_console(csms))
            await stop.wait()
            console.cancel()

    asyncio.run(main())
    return 0


# ---------------------------------------------------------------------------------- demo

_DEMO_TOUR: list[tuple[str, str, dict[str, object]]] = [
    (
        "read the heartbeat interval",
        "GetVariables",
        {
            "getVariableData": [
                {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
            ]
        },
    ),
    (
        "make the heartbeat faster",
        "SetVariables",
        {
            "setVariableData": [
                {
                    "component": {"name": "OCPPCommCtrlr"},
                    "variable": {"name": "HeartbeatInterval"},
                    "attributeValue": "5",
                }
            ]
        },
    ),
    (
        "try to write a read-only variable",
        "SetVariables",
        {
            "setVariableData": [
                {
                    "component": {"name": "ChargingStation"},
                    "variable": {"name": "Model"},
                    "attributeValue": "other",
                }
            ]
        },
    ),
    (
        "ask for the configuration report",
        "GetBaseReport",
        {"requestId": 1, "reportBase": "ConfigurationInventory"},
    ),
    (
        "take EVSE 1 out of service",
        "ChangeAvailability",
        {"operationalStatus": "Inoperative", "evse": {"id": 1}},
    ),
    (
        "put EVSE 1 back in service",
        "ChangeAvailability",
        {"operationalStatus": "Operative", "evse": {"id": 1}},
    ),
    ("ask for a heartbeat now", "TriggerMessage", {"requestedMessage": "Heartbeat"}),
    ("send an action the station does not know", "FooBar", {}),
]


def _demo_config(directory: Path, csms_url: str, subprotocol: str) -> Config:
    from station.config import parse_config

    text = textwrap.dedent(
        f"""
        [station]
        id = "DEMO-001"
        [csms]
        url = "{csms_url}"
        subprotocols = ["{subprotocol}"]
        heartbeat_interval_s = 30
        retry_backoff_wait_minimum_s = 1
        retry_backoff_random_range_s = 1
        [storage]
        database = "{directory / "station.db"}"
        [[evse]]
        id = 1
        connector = "chademo"
        [evse.chademo]
        [[evse]]
        id = 2
        connector = "ccs"
        [inverter]
        link = "simulated"
        poll_interval_s = 0.02
        fault_retry_s = 5
        [grid]
        nominal_voltage_v = 400
        nominal_frequency_hz = 50
        enter_service_delay_s = 2
        enter_service_ramp_s = 0
        """
    )
    return parse_config(text, source="<demo>", base_dir=directory)


def _cmd_demo(args: argparse.Namespace) -> int:
    _setup_logging(args.log_level or "WARNING")
    from station.app import run_station
    from station.sim.csms import Csms, Frame

    started = time.monotonic()
    width = 110

    def show(frame: Frame) -> None:
        arrow = "station → CSMS" if frame.direction == "in" else "CSMS → station"
        text = frame.raw if len(frame.raw) <= width else frame.raw[: width - 3] + "..."
        print(f"{time.monotonic() - started:7.2f}s  {arrow}  {text}", flush=True)

    async def main(directory: Path) -> int:
        stop = asyncio.Event()
        _install_stop_handlers(stop)
        subprotocol = f"ocpp{args.ocpp}"
        async with Csms(
            heartbeat_interval_s=30, on_frame=show, subprotocols=(subprotocol,)
        ) as csms:
            config = _demo_config(directory, csms.url, subprotocol)
            print(
                f"station demo: CSMS on {csms.url}, station {config.station.id}, "
                f"state in {directory}",
                flush=True,
            )
            station = asyncio.ensure_future(run_station(config, stop))
            tour = asyncio.ensure_future(_demo_tour(csms, config, args.ocpp))
            if args.duration is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), args.duration)
            else:
                await stop.wait()
            stop.set()
            tour.cancel()
            await station
            frames = csms.frames
            calls = [f for f in frames if f.direction == "in" and f.action]
            errors = [f for f in frames if f.direction == "in" and f.message_type == 4]
            actions = sorted({f.action for f in calls if f.action})
            print("\nsummary:", flush=True)
            print(f"  frames exchanged: {len(frames)}", flush=True)
            print(f"  station CALLs: {len(calls)} ({', '.join(actions)})", flush=True)
            print(f"  CALLERRORs from the station: {len(errors)}", flush=True)
            print(f"  OCPP message log: {config.storage.message_log_path}", flush=True)
            booted = any(f.action == "BootNotification" for f in calls)
            return 0 if booted else 1

    if args.dir:
        directory = Path(args.dir).resolve()
        directory.mkdir(parents=True, exist_ok=True)
        return asyncio.run(main(directory))
    with tempfile.TemporaryDirectory(prefix="station-demo-") as tmp:
        return asyncio.run(main(Path(tmp)))


async def _demo_tour(csms: object, config: Config, ocpp: str) -> None:
    from station.sim.csms import Csms

    assert isinstance(csms, Csms)
    station_id = config.station.id
    await csms.wait_connected(station_id)
    await csms.wait_action("StatusNotification", station_id, include_past=True)
    await asyncio.sleep(0.5)
    for title, action, payload in _DEMO_TOUR:
        print(f"\n-- operator: {title} ({action})", flush=True)
        with contextlib.suppress(TimeoutError, KeyError):
            await csms.call(station_id, action, payload)
        await asyncio.sleep(0.4)
    await _demo_v2g(csms, config, ocpp)
    print("\n-- tour done; the station keeps its heartbeat (Ctrl-C to stop)", flush=True)


def _demo_profile(ocpp: str, charge_s: int) -> dict[str, object]:
    """A TxDefaultProfile for EVSE 1: charge 11 kW, then discharge 5 kW.

    Over 2.1 the discharge period is a CentralSetpoint with dischargeLimit and setpoint; over 2.0.1
    it is the de-facto negative limit (DESIGN.md: both must work).
    """
    from datetime import UTC, datetime

    from station.clock import format_ocpp_time

    discharge: dict[str, object] = {"startPeriod": charge_s, "limit": -5000.0}
    if ocpp == "2.1":
        discharge = {
            "startPeriod": charge_s,
            "limit": 0.0,
            "dischargeLimit": -5000.0,
            "setpoint": -5000.0,
            "operationMode": "CentralSetpoint",
        }
    return {
        "evseId": 1,
        "chargingProfile": {
            "id": 100,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": [
                {
                    "id": 1,
                    "startSchedule": format_ocpp_time(datetime.now(UTC)),
                    "chargingRateUnit": "W",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 11000.0}, discharge],
                }
            ],
        },
    }


async def _demo_v2g(csms: object, config: Config, ocpp: str) -> None:
    """Both directions: a V2X car charges, then gives energy back, driven like a user would."""
    from station.sim.control import endpoint_for, request
    from station.sim.csms import Csms

    assert isinstance(csms, Csms)
    station_id = config.station.id
    endpoint = endpoint_for(config).endpoint_file

    async def sim(text: str, payload: dict[str, object]) -> None:
        print(f"\n-- {text}", flush=True)
        response = await request(endpoint, payload)
        if not response.get("ok"):
            print(f"   sim: {response.get('error')}", flush=True)

    await sim(
        "the vehicle: a V2X CHAdeMO car plugs into EVSE 1 at 60 % "
        "(station sim plug 1 --soc 60 --v2x)",
        {"cmd": "plug", "evse": 1, "soc_pct": 60, "v2x": True},
    )
    await asyncio.sleep(0.5)
    await sim(
        "a card at EVSE 1's reader (station sim token 1 DEMO-CARD)",
        {"cmd": "token", "evse": 1, "id": "DEMO-CARD"},
    )
    await csms.wait_for(
        lambda f: f.action == "TransactionEvent" and f.payload.get("eventType") == "Started",
        include_past=True,
    )
    await asyncio.sleep(0.5)
    charge_s = 3
    kind = "CentralSetpoint -5 kW" if ocpp == "2.1" else "a negative limit of -5 kW"
    print(
        f"\n-- operator: a profile for EVSE 1: charge 11 kW for {charge_s} s, then discharge "
        f"with {kind} (SetChargingProfile over OCPP {ocpp})",
        flush=True,
    )
    await csms.call(station_id, "SetChargingProfile", _demo_profile(ocpp, charge_s))

    async def show(times: int) -> None:
        for _ in range(times):
            await asyncio.sleep(1.0)
            status = await request(endpoint, {"cmd": "status"})
            evse = status["evses"][0]
            inverter = status.get("inverter") or {}
            print(
                f"   EVSE 1 ({(evse.get('chademo') or {}).get('state', '-')}): command "
                f"{evse.get('power_command_w', 0):+.0f} W ({evse.get('power_reason')}), DC "
                f"{evse.get('measured_power_w', 0):+.0f} W, SoC {evse.get('soc_pct') or 0:.2f} %, "
                f"in {evse.get('energy_import_wh', 0):.1f} Wh, out "
                f"{evse.get('energy_export_wh', 0):.1f} Wh | inverter set-point "
                f"{inverter.get('setpoint_w') or 0:+.0f} W, grid {inverter.get('grid')} "
                f"{inverter.get('frequency_hz') or 0:.2f} Hz",
                flush=True,
            )

    await show(5)
    await sim(
        "the grid: frequency sags to 48 Hz (station sim grid --frequency 48): outside the normal "
        "window, so discharge stops at once (riding through: no trip yet)",
        {"cmd": "grid", "frequency_hz": 48.0},
    )
    await show(1)
    await sim(
        "the grid: frequency falls to 45 Hz (station sim grid --frequency 45): the station "
        "trips, 0 W both ways, NotifyDERAlarm (2.1) / NotifyEvent (2.0.1)",
        {"cmd": "grid", "frequency_hz": 45.0},
    )
    await show(1)
    await sim(
        "the grid recovers (station sim grid --frequency 50): service resumes once the "
        "enter-service window has held for its delay (2 s here, 300 s by default)",
        {"cmd": "grid", "frequency_hz": 50.0},
    )
    await show(3)
    await sim("the driver unplugs (station sim unplug 1)", {"cmd": "unplug", "evse": 1})
    await asyncio.sleep(3)


# ----------------------------------------------------------------------------------- sim


# Attributes of the parsed ``station sim`` arguments that travel as request fields, by name.
_SIM_ARGS = (
    "evse",
    "id",
    "type",
    "soc_pct",
    "capacity_kwh",
    "v2x",
    "max_discharge_w",
    "kind",
    "result",
    "frequency_hz",
    "voltage_v",
    "ramp_s",
    "power_w",
    "source",
    "discharge_limit_w",
    "grid_critical",
    "setpoint_w",
    "limit_w",
)


def _sim_request(args: argparse.Namespace) -> dict[str, object]:
    if args.sim_command == "send":
        try:
            payload = json.loads(args.json)
        except ValueError as exc:
            raise StationError(f"sim send: not JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise StationError("sim send: the request must be a JSON object")
        return payload
    name = args.sim_command.replace("-", "_")  # ev-stop on the command line, ev_stop on the wire
    payload = {"cmd": name}
    for key in _SIM_ARGS:
        value = getattr(args, key, None)
        if value is not None:
            payload[key] = value
    return payload


def _cmd_sim(args: argparse.Namespace) -> int:
    from station.sim.control import CommandError, endpoint_for, request

    config = load_config(args.config)
    payload = _sim_request(args)
    try:
        response = asyncio.run(request(endpoint_for(config).endpoint_file, payload))
    except CommandError as exc:
        raise StationError(f"sim: {exc}") from exc
    print(json.dumps(response, indent=2, ensure_ascii=False))
    return 0 if response.get("ok") else 1


# ------------------------------------------------------------------------------------ db


def _cmd_db(args: argparse.Namespace) -> int:
    from station.store import current_revision, head_revision, upgrade

    config = load_config(args.config)
    path = config.storage.database
    if args.db_command == "upgrade":
        revision = upgrade(path)
        print(f"{path}: upgraded to {revision}")
    else:
        current = current_revision(path)
        head = head_revision()
        state = "up to date" if current == head else f"head is {head}"
        print(f"{path}: {current or 'empty'} ({state})")
    return 0


# ------------------------------------------------------------------------------ schedule


def _cmd_schedule(args: argparse.Namespace) -> int:
    from station.schedule_view import (
        PlotUnavailableError,
        UnknownEvseError,
        composite_schedules,
        format_table,
        plot_schedules,
    )

    config = load_config(args.config)
    try:
        schedules = composite_schedules(
            config,
            evse_id=args.evse,
            duration_s=args.duration,
            unit=args.unit,
            start=args.start,
        )
    except UnknownEvseError as exc:
        print(f"station: {exc}", file=sys.stderr)
        return 2
    for i, schedule in enumerate(schedules):
        if i:
            print()
        print("\n".join(format_table(schedule)))
    if args.plot:
        try:
            plot_schedules(schedules, args.plot)
        except PlotUnavailableError as exc:
            print(f"station: {exc}", file=sys.stderr)
            return 1
        print(f"plot written to {args.plot}")
    return 0


# --------------------------------------------------------------------------------- certs


def _cmd_certs(args: argparse.Namespace) -> int:
    from station.certs import make_dev_pki

    try:
        pki = make_dev_pki(
            args.out,
            station_id=args.station_id,
            hosts=args.host or ("127.0.0.1", "localhost", "::1"),
        )
    except (ValueError, OSError) as exc:
        raise StationError(f"certs dev: {exc}") from exc
    for name in ("ca_cert", "server_cert", "server_key", "client_cert", "client_key"):
        print(f"{name:12} {getattr(pki, name)}")
    return 0


# ---------------------------------------------------------------------------------- main


def _add_vehicle_commands(sim_commands: Any) -> None:
    """``station sim plug|unplug|token|ev-stop``: the JSON commands plug, unplug, token, ev_stop.

    Values are checked by the station (a bad one gets ``ok: false`` and changes nothing).
    """
    parsers = {}
    for name, text in (
        ("plug", "plug a simulated EV in"),
        ("unplug", "unplug the simulated EV"),
        ("token", "present a token at the EVSE's reader"),
        ("ev-stop", "the EV stops taking or giving energy"),
    ):
        sub = sim_commands.add_parser(name, help=text)
        sub.add_argument("evse", type=int, metavar="EVSE", help="the EVSE id")
        sub.add_argument("--config", required=True, help="the station's TOML configuration file")
        sub.set_defaults(func=_cmd_sim)
        parsers[name] = sub
    plug = parsers["plug"]
    plug.add_argument("--soc", dest="soc_pct", type=float, metavar="PCT", help="SoC (default 50)")
    plug.add_argument(
        "--capacity-kwh", type=float, metavar="KWH", help="battery capacity (default 60)"
    )
    plug.add_argument(
        "--v2x",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the EV allows discharge (default: no)",
    )
    plug.add_argument(
        "--max-discharge-w",
        type=float,
        metavar="W",
        help="the most the EV gives (default: the EVSE's discharge rating)",
    )
    token = parsers["token"]
    token.add_argument("id", metavar="ID", help="the idToken, e.g. 04A1B2C3")
    token.add_argument(
        "--type", help="IdTokenEnumType: ISO14443 (default), ISO15693, KeyCode, Local, ..."
    )


def _add_world_commands(sim_commands: Any) -> None:
    """``station sim ev-fault|estop|estop-release|insulation|grid|inverter-fault``.

    The JSON commands ev_fault, estop, estop_release, insulation, grid, inverter_fault; the
    station answers ``ok: false`` for a command whose simulated peer it does not run.
    """

    def add(name: str, text: str, *, evse: bool) -> Any:
        sub = sim_commands.add_parser(name, help=text)
        if evse:
            sub.add_argument("evse", type=int, metavar="EVSE", help="the EVSE id")
        sub.add_argument("--config", required=True, help="the station's TOML configuration file")
        sub.set_defaults(func=_cmd_sim)
        return sub

    ev_fault = add("ev-fault", "the CHAdeMO vehicle at EVSE faults", evse=True)
    ev_fault.add_argument(
        "kind",
        metavar="KIND",
        help="stop-request, overvoltage, undervoltage, current-deviation, high-temperature, "
        "voltage-deviation, system-fault, silence, incompatible-voltage, shift-lever, clear",
    )
    add("estop", "press the EVSE's emergency stop", evse=True)
    add("estop-release", "release the EVSE's emergency stop", evse=True)
    insulation = add("insulation", "the result of the EVSE's next insulation test", evse=True)
    insulation.add_argument("result", choices=("pass", "fail"), help="pass or fail")
    grid = add("grid", "step or ramp the simulated grid seen by the inverter", evse=False)
    grid.add_argument("--frequency", dest="frequency_hz", type=float, metavar="HZ")
    grid.add_argument("--voltage", dest="voltage_v", type=float, metavar="V")
    grid.add_argument(
        "--ramp-s", type=float, metavar="S", help="reach the values over S seconds (default: step)"
    )
    inverter_fault = add("inverter-fault", "make the simulated inverter misbehave", evse=False)
    inverter_fault.add_argument(
        "kind", metavar="KIND", help="no-answer, refuse-write, wrong-readback, clear"
    )


def _add_limit_commands(sim_commands: Any) -> None:
    """``station sim limit|limit-clear``: an external system's charging limit (K11-K13).

    The JSON commands limit and limit_clear; EVSE 0 is the whole station.
    """
    limit = sim_commands.add_parser(
        "limit", help="an external system (EMS, SO, ...) limits charging on an EVSE or (0) all"
    )
    clear = sim_commands.add_parser("limit-clear", help="the external system releases its limit")
    for sub in (limit, clear):
        sub.add_argument("evse", type=int, metavar="EVSE", help="the EVSE id, 0: the station")
        sub.add_argument("--config", required=True, help="the station's TOML configuration file")
        sub.add_argument("--source", help="EMS (default), Other, SO or CSO")
        sub.set_defaults(func=_cmd_sim)
    limit.add_argument(
        "--power-w", type=float, required=True, metavar="W", help="the limit, >= 0 (0: no power)"
    )
    limit.add_argument(
        "--discharge-limit-w", type=float, metavar="W", help="a discharge limit, <= 0"
    )
    limit.add_argument(
        "--grid-critical", action="store_true", default=None, help="the limit is grid critical"
    )
    # The site controller's port for operationMode ExternalSetpoint / ExternalLimits.
    external = sim_commands.add_parser(
        "external",
        help="the site controller's set-point and limits (ExternalSetpoint / ExternalLimits)",
    )
    external_clear = sim_commands.add_parser(
        "external-clear", help="the site controller withdraws its set-point and limits"
    )
    for sub in (external, external_clear):
        sub.add_argument("evse", type=int, metavar="EVSE", help="the EVSE id, 0: every EVSE")
        sub.add_argument("--config", required=True, help="the station's TOML configuration file")
        sub.set_defaults(func=_cmd_sim)
    external.add_argument(
        "--setpoint-w", type=float, metavar="W", help="the set-point: + charge, - discharge"
    )
    external.add_argument("--limit-w", type=float, metavar="W", help="a charge limit, >= 0")
    external.add_argument(
        "--discharge-limit-w", type=float, metavar="W", help="a discharge limit, <= 0"
    )


def _utc_time(text: str) -> datetime:
    """An ISO 8601 instant for argparse; a time without a zone is read as UTC."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="station",
        description="Firmware for a bidirectional (V2G) EV charging station.",
    )
    parser.add_argument("--version", action="version", version=f"station {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the station until stopped")
    run.add_argument("--config", required=True, help="the station's TOML configuration file")
    run.add_argument("--log-level", help="override [station] log_level")
    run.set_defaults(func=_cmd_run)

    demo = commands.add_parser(
        "demo", help="a complete station with simulated peers and a local CSMS on 127.0.0.1"
    )
    demo.add_argument(
        "--duration",
        type=float,
        metavar="SECONDS",
        help="stop by itself after SECONDS and print a summary",
    )
    demo.add_argument("--dir", help="keep the demo's database and logs here (default: temporary)")
    demo.add_argument(
        "--ocpp",
        choices=["2.1", "2.0.1"],
        default="2.1",
        help="the OCPP version the demo CSMS accepts (default 2.1)",
    )
    demo.add_argument("--log-level", help="station log level (default WARNING)")
    demo.set_defaults(func=_cmd_demo)

    csms = commands.add_parser("csms", help="run the local CSMS (for development and tests)")
    csms.add_argument("--host", default="127.0.0.1", help="listening address (default 127.0.0.1)")
    csms.add_argument("--port", type=int, default=9000, help="listening port (default 9000)")
    csms.add_argument(
        "--subprotocols",
        nargs="+",
        default=["ocpp2.1", "ocpp2.0.1"],
        choices=["ocpp2.1", "ocpp2.0.1"],
        help="accepted, in order of preference",
    )
    csms.add_argument("--heartbeat-interval", type=int, default=300, metavar="S")
    csms.add_argument(
        "--basic-auth",
        action="append",
        metavar="STATION_ID:PASSWORD",
        help="require HTTP Basic auth (profiles 1-2); repeat per station",
    )
    csms.add_argument("--tls-cert", help="server certificate chain (PEM) for wss://")
    csms.add_argument("--tls-key", help="server private key (PEM)")
    csms.add_argument(
        "--tls-client-ca", help="require client certificates from this CA (profile 3)"
    )
    csms.add_argument("--log-level", help="log level (default INFO)")
    csms.set_defaults(func=_cmd_csms)

    sim = commands.add_parser(
        "sim", help="drive the simulated peers of a running station (see README: station sim)"
    )
    sim_commands = sim.add_subparsers(dest="sim_command", required=True, metavar="SIM_COMMAND")
    for name, text in (
        ("status", "the station's view as JSON: CSMS link and per-EVSE state"),
        ("help", "the commands the running station offers"),
    ):
        sub = sim_commands.add_parser(name, help=text)
        sub.add_argument("--config", required=True, help="the station's TOML configuration file")
        sub.set_defaults(func=_cmd_sim)
    _add_vehicle_commands(sim_commands)
    _add_world_commands(sim_commands)
    _add_limit_commands(sim_commands)
    send = sim_commands.add_parser("send", help="send one raw JSON request line")
    send.add_argument("json", help='a request object, e.g. \'{"cmd": "status"}\'')
    send.add_argument("--config", required=True, help="the station's TOML configuration file")
    send.set_defaults(func=_cmd_sim)

    db = commands.add_parser("db", help="manage the station's database")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    for name, text in (
        ("upgrade", "upgrade the database to the newest schema"),
        ("current", "show the database's schema revision"),
    ):
        sub = db_commands.add_parser(name, help=text)
        sub.add_argument("--config", required=True, help="the station's TOML configuration file")
        sub.set_defaults(func=_cmd_db)

    schedule = commands.add_parser(
        "schedule", help="print the composite schedule of the profiles the station holds"
    )
    schedule.add_argument("--config", required=True, help="the station's TOML configuration file")
    schedule.add_argument("--evse", type=int, metavar="N", help="only EVSE N (default: all)")
    schedule.add_argument(
        "--duration", type=int, default=86_400, metavar="S", help="seconds from now (86400)"
    )
    schedule.add_argument("--unit", choices=["W", "A"], default="W", help="rate unit (W)")
    schedule.add_argument(
        "--start",
        type=_utc_time,
        metavar="TIME",
        help="start instead of now, ISO 8601 UTC (e.g. 2025-06-01T07:00:00Z)",
    )
    schedule.add_argument(
        "--plot", metavar="FILE.png", help="also draw it (needs: pip install station[plot])"
    )
    schedule.set_defaults(func=_cmd_schedule)

    certs = commands.add_parser("certs", help="certificates")
    certs_commands = certs.add_subparsers(dest="certs_command", required=True, metavar="CMD")
    dev = certs_commands.add_parser("dev", help="create a development PKI (test use only)")
    dev.add_argument("--out", required=True, help="folder for the certificates and keys")
    dev.add_argument("--station-id", required=True, help="the station identity (client CN)")
    dev.add_argument("--host", action="append", help="server names/IPs (default loopback)")
    dev.set_defaults(func=_cmd_certs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``station`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"station: config error: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"station: database error: {exc}", file=sys.stderr)
        return 1
    except StationError as exc:
        print(f"station: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"station: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
