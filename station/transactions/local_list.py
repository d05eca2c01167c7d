"""The Local Authorization List's update rules (OCPP 2.0.1 D01/D02), as a pure function.

Owns what a SendLocalList does to the list: a Full update replaces it, a Differential one adds,
updates (an entry with idTokenInfo) and removes (an entry without) tokens; a Differential update
whose versionNumber is not above the current one is a VersionMismatch, and a disabled list
(LocalAuthListCtrlr.Enabled false) refuses every update (Failed). It stores nothing: the shell
writes :class:`LocalListChange` to ``store/`` and answers with its status.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from station.transactions.auth import IdTokenInfo
from station.transactions.model import IdToken

__all__ = [
    "LocalListChange",
    "LocalListUpdate",
    "SendLocalListStatus",
    "UpdateType",
    "plan_local_list_update",
]


class UpdateType(StrEnum):
    """UpdateEnumType."""

    DIFFERENTIAL = "Differential"
    FULL = "Full"


class SendLocalListStatus(StrEnum):
    """SendLocalListStatusEnumType."""

    ACCEPTED = "Accepted"
    FAILED = "Failed"
    VERSION_MISMATCH = "VersionMismatch"


@dataclass(frozen=True, slots=True)
class LocalListUpdate:
    """A SendLocalListRequest: ``info`` None removes the token (Differential only)."""

    version: int
    update_type: UpdateType
    entries: Sequence[tuple[IdToken, IdTokenInfo | None]] = ()


@dataclass(frozen=True, slots=True)
class LocalListChange:
    """What to write: ``full`` empties the list first; ``status`` not Accepted: write nothing."""

    status: SendLocalListStatus
    version: int = 0
    upserts: tuple[tuple[IdToken, IdTokenInfo], ...] = ()
    removals: tuple[IdToken, ...] = ()
    full: bool = False


def plan_local_list_update(
    update: LocalListUpdate, current_version: int, *, enabled: bool
) -> LocalListChange:
    """Decide on a SendLocalList.

    Args:
        update: the request.
        current_version: the stored list's version (0: no list).
        enabled: LocalAuthListCtrlr.Enabled.

    Returns:
        The change to write, with the status to answer.
    """
    if not enabled:
        return LocalListChange(SendLocalListStatus.FAILED)
    full = update.update_type is UpdateType.FULL
    if not full and update.version <= current_version:
        # D01.FR.?: a Differential update must carry a newer version than the list's.
        return LocalListChange(SendLocalListStatus.VERSION_MISMATCH)
    upserts = tuple((token, info) for token, info in update.entries if info is not None)
    # A Full list replaces everything: an entry without idTokenInfo simply is not in it.
    removals = () if full else tuple(t for t, info in update.entries if info is None)
    return LocalListChange(SendLocalListStatus.ACCEPTED, update.version, upserts, removals, full)
