"""The Modbus adapter: pymodbus's async client over TCP or RTU serial, and nothing else.

Owns the connection to the inverter: building the pymodbus client from settings, connecting
(with our own exponential back-off between attempts; pymodbus's background reconnect is switched
off so there is one policy, here), reading and writing holding registers in requests of at most
125 / 123 registers, and dropping the connection after a timeout so that a late answer can never
be taken for the answer to the next request.

Every pymodbus exception, exception response and timeout is translated here, once, into
:mod:`station.inverter.errors` (httpx ``map_httpcore_exceptions`` style):

- no answer within ``timeout_s`` → :class:`InverterTimeoutError`
- connection refused, lost, or a reconnect attempt not yet due → :class:`InverterLinkError`
- a Modbus exception response → :class:`InverterRefusedError` (with its exception code)

It does not know SunSpec (``station.inverter.sunspec`` and ``device`` do) and never retries a
request: whether to retry is the caller's decision (set-and-verify bounds its retries).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from station.clock import Clock, SystemClock
from station.inverter.errors import (
    InverterLinkError,
    InverterRefusedError,
    InverterTimeoutError,
    LocalInverterError,
)

__all__ = [
    "MAX_READ_REGISTERS",
    "MAX_WRITE_REGISTERS",
    "ModbusLink",
    "ModbusSerial",
    "ModbusSettings",
    "ModbusTcp",
]

log = logging.getLogger(__name__)

MAX_READ_REGISTERS = 125
"""Most registers one Read Holding Registers (0x03) request may ask for (Modbus spec 6.3)."""
MAX_WRITE_REGISTERS = 123
"""Most registers one Write Multiple Registers (0x10) request may carry (Modbus spec 6.12)."""


@dataclass(frozen=True, slots=True)
class ModbusTcp:
    """Modbus TCP to ``host:port``."""

    host: str = "127.0.0.1"
    port: int = 502


@dataclass(frozen=True, slots=True)
class ModbusSerial:
    """Modbus RTU on a serial line (RS-485 adapter ``device``)."""

    device: str
    baudrate: int = 19200
    parity: Literal["N", "E", "O"] = "N"
    stopbits: int = 1
    bytesize: int = 8


@dataclass(frozen=True, slots=True)
class ModbusSettings:
    """Where the inverter is and how patient to be with it.

    Attributes:
        transport: TCP or RTU serial.
        device_id: the Modbus unit / device id.
        timeout_s: how long to wait for one answer.
        reconnect_min_s / reconnect_max_s: the back-off between connection attempts doubles
            from the first to the second after each failure, and resets on success.
    """

    transport: ModbusTcp | ModbusSerial = field(default_factory=ModbusTcp)
    device_id: int = 1
    timeout_s: float = 1.0
    reconnect_min_s: float = 0.1
    reconnect_max_s: float = 10.0

    def __post_init__(self) -> None:
        if not 0 <= self.device_id <= 247:
            raise LocalInverterError(f"device_id {self.device_id} is outside 0..247")
        if not self.timeout_s > 0:
            raise LocalInverterError(f"timeout_s must be positive, got {self.timeout_s}")
        if not 0 <= self.reconnect_min_s <= self.reconnect_max_s:
            raise LocalInverterError("need 0 <= reconnect_min_s <= reconnect_max_s")


class ModbusLink:
    """Holding-register reads and writes on one Modbus device, with errors already translated.

    Connects on first use; after a failed attempt the next one is made no earlier than the
    back-off allows (a call before then raises :class:`InverterLinkError` at once).
    """

    def __init__(self, settings: ModbusSettings, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
        self._backoff_s = 0.0
        self._next_attempt = 0.0
        self._closed = False
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        """True while a connection is open."""
        return self._client is not None and self._client.connected

    @property
    def where(self) -> str:
        """The peer, for log lines: ``tcp:host:port/1`` or ``rtu:/dev/ttyUSB0/1``."""
        t = self.settings.transport
        peer = f"tcp:{t.host}:{t.port}" if isinstance(t, ModbusTcp) else f"rtu:{t.device}"
        return f"{peer}/{self.settings.device_id}"

    def _make_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        t = self.settings.transport
        # reconnect_delay=0: no background reconnect in pymodbus; retries=0: we decide on retries.
        if isinstance(t, ModbusTcp):
            return AsyncModbusTcpClient(
                t.host, port=t.port, timeout=self.settings.timeout_s, retries=0, reconnect_delay=0
            )
        return AsyncModbusSerialClient(
            t.device,
            baudrate=t.baudrate,
            parity=t.parity,
            stopbits=t.stopbits,
            bytesize=t.bytesize,
            timeout=self.settings.timeout_s,
            retries=0,
            reconnect_delay=0,
        )

    async def connect(self) -> None:
        """Open the connection unless it is open.

        Raises:
            InverterLinkError: the attempt failed, or the back-off has not yet passed.
            LocalInverterError: the link is closed.
        """
        if self._closed:
            raise LocalInverterError(f"modbus link {self.where} is closed")
        if self.connected:
            return
        now = self._clock.monotonic()
        if now < self._next_attempt:
            raise InverterLinkError(
                f"{self.where}: not connected; next attempt in {self._next_attempt - now:.1f} s"
            )
        self._drop()
        client = self._make_client()
        try:
            ok = await client.connect()
        except (ModbusException, OSError) as exc:
            ok = False
            log.debug("modbus %s: connect raised %s", self.where, exc)
        if not ok:
            client.close()
            self._backoff_s = min(
                max(self._backoff_s * 2, self.settings.reconnect_min_s),
                self.settings.reconnect_max_s,
            )
            self._next_attempt = self._clock.monotonic() + self._backoff_s
            log.warning("modbus %s: cannot connect; retry in %.1f s", self.where, self._backoff_s)
            raise InverterLinkError(f"{self.where}: cannot connect")
        self._client = client
        self._backoff_s = 0.0
        self._next_attempt = 0.0
        log.info("modbus %s: connected", self.where)

    def _drop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def _call(
        self,
        what: str,
        address: int,
        call: Callable[[AsyncModbusTcpClient | AsyncModbusSerialClient], Awaitable[ModbusPDU]],
    ) -> ModbusPDU:
        """Run one request; the one place pymodbus errors become station errors."""
        async with self._lock:
            await self.connect()
            assert self._client is not None
            try:
                response = await call(self._client)
            except ModbusIOException as exc:
                # pymodbus raises this when no (matching) answer came within the timeout.
                self._drop()
                raise InverterTimeoutError(
                    f"{self.where}: no answer to {what} at {address}"
                ) from exc
            except TimeoutError as exc:
                self._drop()
                raise InverterTimeoutError(
                    f"{self.where}: no answer to {what} at {address}"
                ) from exc
            except ConnectionException as exc:
                self._drop()
                raise InverterLinkError(
                    f"{self.where}: connection lost ({what} at {address})"
                ) from exc
            except ModbusException as exc:
                self._drop()
                raise InverterLinkError(f"{self.where}: {what} at {address} failed: {exc}") from exc
            # Python 3.11: pymodbus awaits each answer with asyncio.wait_for, which swallows a
            # cancellation that arrives together with the answer. Honour it here, once for every
            # caller, or a cancelled poll loop would run on for ever.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise asyncio.CancelledError
            if response.isError():
                raise InverterRefusedError(
                    int(getattr(response, "exception_code", 0)), address, what
                )
            return response

    async def read(self, address: int, count: int) -> list[int]:
        """Read ``count`` holding registers from ``address`` (several requests when needed).

        Raises:
            InverterTimeoutError, InverterLinkError, InverterRefusedError: see the module docstring.
            LocalInverterError: the range is outside 0..65535.
        """
        _check_range(address, count)
        words: list[int] = []
        while count > 0:
            n = min(count, MAX_READ_REGISTERS)
            start = address

            def request(
                c: AsyncModbusTcpClient | AsyncModbusSerialClient, start: int = start, n: int = n
            ) -> Awaitable[ModbusPDU]:
                return c.read_holding_registers(start, count=n, device_id=self.settings.device_id)

            response = await self._call("read", start, request)
            got = list(response.registers)
            if len(got) != n:
                self._drop()
                raise InverterLinkError(f"{self.where}: asked for {n} registers, got {len(got)}")
            words += got
            address += n
            count -= n
        return words

    async def write(self, address: int, values: Sequence[int]) -> None:
        """Write ``values`` to consecutive holding registers from ``address`` (function 0x10).

        Raises:
            InverterTimeoutError, InverterLinkError, InverterRefusedError: see the module docstring.
            LocalInverterError: a value outside 0..65535, or a range outside 0..65535.
        """
        _check_range(address, len(values))
        if any(not 0 <= v <= 0xFFFF for v in values):
            raise LocalInverterError(f"register values must be 0..65535, got {list(values)!r}")
        rest = list(values)
        while rest:
            chunk, rest = rest[:MAX_WRITE_REGISTERS], rest[MAX_WRITE_REGISTERS:]
            start = address

            def request(
                c: AsyncModbusTcpClient | AsyncModbusSerialClient,
                start: int = start,
                chunk: list[int] = chunk,
            ) -> Awaitable[ModbusPDU]:
                return c.write_registers(start, chunk, device_id=self.settings.device_id)

            await self._call("write", start, request)
            address += len(chunk)

    async def close(self) -> None:
        """Close the connection; later calls raise :class:`LocalInverterError`."""
        self._closed = True
        self._drop()


def _check_range(address: int, count: int) -> None:
    if count < 1 or address < 0 or address + count > 0x10000:
        raise LocalInverterError(f"register range {address}+{count} is outside 0..65535")
