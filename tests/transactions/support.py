"""A small driver for transaction machines in tests: a fake clock, a meter, recorded outputs."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from station.transactions import (
    Event,
    IdToken,
    IdTokenType,
    MeterReading,
    MeterSample,
    Output,
    SampleKind,
    TransactionEventOut,
    TransactionMachine,
    TxConfig,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TOKEN = IdToken("04A1B2C3", IdTokenType.ISO14443)
OTHER_TOKEN = IdToken("DEADBEEF", IdTokenType.ISO14443)
GROUP = IdToken("FLEET-7", IdTokenType.CENTRAL)

Row = tuple[str, str, str | None, str | None, int]
"""(eventType, triggerReason, chargingState, stoppedReason, seqNo), as on the wire."""


def row(message: TransactionEventOut) -> Row:
    return (
        message.event_type.value,
        message.trigger_reason.value,
        None if message.charging_state is None else message.charging_state.value,
        None if message.stopped_reason is None else message.stopped_reason.value,
        message.seq_no,
    )


@dataclass
class Meter:
    """Integrates a signed power (vehicle side) into the two registers, like the sim meter."""

    import_wh: float = 1000.0
    export_wh: float = 500.0
    power_w: float = 0.0

    def advance(self, seconds: float) -> None:
        energy = self.power_w * seconds / 3600
        if energy >= 0:
            self.import_wh += energy
        else:
            self.export_wh -= energy

    def read(self, when: datetime) -> MeterReading:
        return MeterReading(
            timestamp=when,
            energy_import_wh=self.import_wh,
            energy_export_wh=self.export_wh,
            power_w=self.power_w,
            current_a=self.power_w / 400,
            voltage_v=400.0,
            soc_pct=50.0,
        )


@dataclass
class Run:
    """One machine, driven one event at a time, with a reading attached to each event."""

    config: TxConfig = field(default_factory=TxConfig)
    now: datetime = T0
    meter: Meter = field(default_factory=Meter)
    outputs: list[Output] = field(default_factory=list)

    def __post_init__(self) -> None:
        counter = itertools.count(1)
        self.machine = TransactionMachine(1, lambda: f"TX-{next(counter)}", self.config)

    def send(self, event: Event, *, after_s: float = 1.0) -> list[Output]:
        self.meter.advance(after_s)
        self.now += timedelta(seconds=after_s)
        out = self.machine.receive(event, self.now, self.meter.read(self.now))
        self.outputs.extend(out)
        return out

    def send_sample(self, kind: SampleKind, *, after_s: float = 60.0) -> list[Output]:
        """Advance, read the meter and send that reading as a MeterSample."""
        self.meter.advance(after_s)
        self.now += timedelta(seconds=after_s)
        reading = self.meter.read(self.now)
        out = self.machine.receive(MeterSample(kind, reading), self.now)
        self.outputs.extend(out)
        return out

    @property
    def messages(self) -> list[TransactionEventOut]:
        return [o for o in self.outputs if isinstance(o, TransactionEventOut)]

    @property
    def rows(self) -> list[Row]:
        return [row(m) for m in self.messages]
