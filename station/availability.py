"""Availability and connector status, a pure core.

Owns which parts of the station are operative (G03/G04 ChangeAvailability, persisted by the shell)
and the connector status that StatusNotification reports (G01). It does no I/O: the shell loads
the persisted state, passes it in, and persists :attr:`AvailabilityModel.operative` changes.

Keys are ``(evse_id, connector_id)``: ``(0, 0)`` is the whole station, ``(n, 0)`` EVSE ``n``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["AvailabilityModel", "ChangeOutcome", "ConnectorStatus"]


class ConnectorStatus(StrEnum):
    """ConnectorStatusEnumType."""

    AVAILABLE = "Available"
    OCCUPIED = "Occupied"
    RESERVED = "Reserved"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"


@dataclass(frozen=True, slots=True)
class ChangeOutcome:
    """The answer to a ChangeAvailability request and what it changed now."""

    status: str  # ChangeAvailabilityStatusEnumType: Accepted, Rejected, Scheduled
    changed: tuple[tuple[int, int], ...]  # connectors whose reported status changed now


class AvailabilityModel:
    """Operative/inoperative state of station, EVSEs and connectors, and connector status."""

    def __init__(
        self, connectors: Iterable[tuple[int, int]], stored: Mapping[tuple[int, int], bool]
    ) -> None:
        self.connectors: tuple[tuple[int, int], ...] = tuple(sorted(connectors))
        self._evses = {evse for evse, _ in self.connectors}
        self.operative: dict[tuple[int, int], bool] = {(0, 0): True}
        for evse in self._evses:
            self.operative[(evse, 0)] = True
        for key in self.connectors:
            self.operative[key] = True
        for key, value in stored.items():
            if key in self.operative:
                self.operative[key] = value
        self._scheduled: dict[tuple[int, int], bool] = {}
        self._occupied: set[tuple[int, int]] = set()
        self._reserved: set[tuple[int, int]] = set()
        self._faulted: set[tuple[int, int]] = set()

    def status(self, evse_id: int, connector_id: int) -> ConnectorStatus:
        """What StatusNotification reports for one connector (G01)."""
        key = (evse_id, connector_id)
        if key in self._faulted:
            return ConnectorStatus.FAULTED
        if not self.is_operative(evse_id, connector_id):
            return ConnectorStatus.UNAVAILABLE
        if key in self._reserved:
            # G01.FR.09 (errata 2025-01 §2.21): a cable plugged into a Reserved connector does
            # not change its status; it becomes Occupied once the reservation is used.
            return ConnectorStatus.RESERVED
        if key in self._occupied:
            return ConnectorStatus.OCCUPIED
        return ConnectorStatus.AVAILABLE

    def statuses(self) -> dict[tuple[int, int], ConnectorStatus]:
        return {key: self.status(*key) for key in self.connectors}

    def is_operative(self, evse_id: int, connector_id: int) -> bool:
        return (
            self.operative[(0, 0)]
            and self.operative.get((evse_id, 0), False)
            and self.operative.get((evse_id, connector_id), False)
        )

    def request(
        self, evse_id: int | None, connector_id: int | None, operative: bool, busy: frozenset[int]
    ) -> ChangeOutcome:
        """ChangeAvailability (G03 EVSE/connector, G04 the whole station).

        Args:
            evse_id: None for the whole station.
            connector_id: None for the whole EVSE.
            operative: the requested state.
            busy: EVSE ids with a transaction in progress; taking such a part out of service is
                Scheduled until its transaction ends (G03.FR.03 / G04.FR.03).
        """
        key = (evse_id or 0, connector_id or 0)
        if key not in self.operative:
            return ChangeOutcome("Rejected", ())
        affected = [c for c in self.connectors if key == (0, 0) or _covers(key, c)]
        if not operative and any(c[0] in busy for c in affected):
            self._scheduled[key] = operative
            return ChangeOutcome("Scheduled", ())
        self._scheduled.pop(key, None)
        return ChangeOutcome("Accepted", self._apply(key, operative))

    def transaction_ended(self, evse_id: int) -> tuple[tuple[int, int], ...]:
        """Apply changes scheduled while EVSE ``evse_id`` was busy; returns changed connectors."""
        changed: list[tuple[int, int]] = []
        for key, value in list(self._scheduled.items()):
            if key == (0, 0) or key[0] == evse_id:
                del self._scheduled[key]
                changed.extend(self._apply(key, value))
        return tuple(dict.fromkeys(changed))

    def set_occupied(self, evse_id: int, connector_id: int, occupied: bool) -> bool:
        """Mark a connector (un)occupied; True when its reported status changed."""
        return self._flag(self._occupied, (evse_id, connector_id), occupied)

    def set_reserved(self, evse_id: int, connector_id: int, reserved: bool) -> bool:
        return self._flag(self._reserved, (evse_id, connector_id), reserved)

    def set_faulted(self, evse_id: int, connector_id: int, faulted: bool) -> bool:
        return self._flag(self._faulted, (evse_id, connector_id), faulted)

    def _flag(self, flags: set[tuple[int, int]], key: tuple[int, int], on: bool) -> bool:
        before = self.status(*key)
        if on:
            flags.add(key)
        else:
            flags.discard(key)
        return self.status(*key) != before

    def _apply(self, key: tuple[int, int], operative: bool) -> tuple[tuple[int, int], ...]:
        before = self.statuses()
        self.operative[key] = operative
        after = self.statuses()
        return tuple(c for c in self.connectors if before[c] != after[c])


def _covers(key: tuple[int, int], connector: tuple[int, int]) -> bool:
    evse_id, connector_id = key
    return connector[0] == evse_id and connector_id in (0, connector[1])
