"""The control endpoint of the simulated world: drive a running station's simulated peers.

Served by ``station run``/``station demo`` whenever a link in the configuration is simulated, and
never otherwise. It listens on a Unix socket next to the database (``<db stem>.sim.sock``) or, with
``[sim] control = "tcp"``, on 127.0.0.1 only. Where it listens is also written to
``<db stem>.sim.endpoint`` so that ``station sim`` (and harnesses in any language) can find it.

Protocol: JSON lines. Each request is one object on one line, ``{"cmd": NAME, ...arguments}``;
each response is one object on one line: ``{"ok": true, ...}`` or ``{"ok": false, "error": TEXT}``.
A bad request (not JSON, unknown command, missing or out-of-range argument, unknown EVSE) gets
``ok: false`` and changes nothing. Commands are registered by the parts of the station that own
the simulated peers (:meth:`ControlServer.register`), so each peer brings its own commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from station.config import Config

__all__ = [
    "Command",
    "CommandError",
    "ControlServer",
    "Endpoint",
    "endpoint_for",
    "request",
]

log = logging.getLogger(__name__)

#: A command handler: the request's arguments in, the response's fields out.
Command = Callable[[Mapping[str, Any]], Awaitable[dict[str, Any]] | dict[str, Any]]

_MAX_LINE = 64 * 1024


class CommandError(Exception):
    """A request the simulated world cannot carry out; the text goes back as ``error``."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where the control endpoint of a configuration listens."""

    unix_path: Path | None
    tcp_port: int | None
    endpoint_file: Path

    def describe(self) -> str:
        if self.unix_path is not None:
            return f"unix:{self.unix_path}"
        return f"tcp:127.0.0.1:{self.tcp_port}"


def endpoint_for(config: Config) -> Endpoint:
    """The endpoint a configuration asks for (the TCP port may be 0: see the endpoint file)."""
    database = config.storage.database
    base = database.with_name(database.stem) if str(database) != ":memory:" else Path("station")
    endpoint_file = base.with_name(base.name + ".sim.endpoint")
    if config.sim.control == "unix":
        return Endpoint(base.with_name(base.name + ".sim.sock"), None, endpoint_file)
    return Endpoint(None, config.sim.port, endpoint_file)


class ControlServer:
    """Serves the JSON-lines control protocol; commands are registered by their owners."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._commands: dict[str, tuple[Command, str]] = {}
        self._server: asyncio.Server | None = None
        self.register("help", self._help, "list the commands")

    def register(self, name: str, command: Command, summary: str) -> None:
        """Offer ``name``; ``summary`` is what ``help`` shows for it."""
        self._commands[name] = (command, summary)

    def _help(self, _: Mapping[str, Any]) -> dict[str, Any]:
        commands = sorted(self._commands.items())
        return {"commands": {name: summary for name, (_, summary) in commands}}

    async def start(self) -> Endpoint:
        """Listen; returns the endpoint as bound (with the real TCP port)."""
        endpoint = self.endpoint
        if endpoint.unix_path is not None:
            path = endpoint.unix_path
            path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # a socket left by a station that died
            self._server = await asyncio.start_unix_server(self._serve, path, limit=_MAX_LINE)
            path.chmod(0o600)
            bound = endpoint
        else:
            # Loopback only, whatever the configuration says (DESIGN.md: never another address).
            self._server = await asyncio.start_server(
                self._serve, "127.0.0.1", endpoint.tcp_port or 0, limit=_MAX_LINE
            )
            port = self._server.sockets[0].getsockname()[1]
            bound = Endpoint(None, port, endpoint.endpoint_file)
        endpoint.endpoint_file.write_text(bound.describe() + "\n", encoding="utf-8")
        self.endpoint = bound
        log.info("simulation control on %s", bound.describe())
        return bound

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.endpoint.endpoint_file.unlink()
        if self.endpoint.unix_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.endpoint.unix_path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:  # longer than the limit
                    writer.write(_encode({"ok": False, "error": "request line too long"}))
                    await writer.drain()
                    return
                if not line:
                    return
                if not line.strip():
                    continue
                writer.write(_encode(await self.handle_line(line)))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def handle_line(self, line: bytes | str) -> dict[str, Any]:
        """One request line → one response object (never raises for bad input)."""
        try:
            request = json.loads(line)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return {"ok": False, "error": "request is not a JSON object on one line"}
        if not isinstance(request, dict):
            return {"ok": False, "error": "request must be a JSON object"}
        name = request.get("cmd")
        if not isinstance(name, str):
            return {"ok": False, "error": 'missing "cmd" (try {"cmd": "help"})'}
        entry = self._commands.get(name)
        if entry is None:
            return {"ok": False, "error": f"unknown command {name!r} (try help)"}
        arguments = {k: v for k, v in request.items() if k != "cmd"}
        try:
            result = entry[0](arguments)
            if asyncio.iscoroutine(result):
                result = await result
        except CommandError as exc:
            return {"ok": False, "error": str(exc)}
        assert isinstance(result, dict)
        return {"ok": True, **result}


def _encode(response: Mapping[str, Any]) -> bytes:
    return (json.dumps(response, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


async def request(
    endpoint_file: Path, payload: Mapping[str, Any], *, timeout_s: float = 10
) -> dict[str, Any]:
    """Send one request to a running station's control endpoint and return the response.

    Raises:
        CommandError: no station is serving that endpoint.
    """
    try:
        where = endpoint_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise CommandError(
            f"no simulation endpoint at {endpoint_file}: is the station running with a "
            "simulated link?"
        ) from None
    try:
        if where.startswith("unix:"):
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(where.removeprefix("unix:")), timeout_s
            )
        else:
            host, _, port = where.removeprefix("tcp:").rpartition(":")
            if host != "127.0.0.1":
                raise CommandError(f"refusing a non-loopback endpoint {where!r}")
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, int(port)), timeout_s
            )
    except (OSError, TimeoutError, ValueError) as exc:
        raise CommandError(f"cannot reach the station at {where}: {exc}") from exc
    try:
        writer.write(_encode(payload))
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout_s)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    if not line:
        raise CommandError("the station closed the connection without answering")
    response = json.loads(line)
    assert isinstance(response, dict)
    return response
