"""The set of installed charging profiles, as an immutable value (K01, K09, K10, K11-K13).

Owns what "installed" means: install-or-replace by id, clearing by id or criteria, the selection
GetChargingProfiles reports, and the housekeeping when transactions end or validity runs out.
It must not persist anything: ``store/`` saves what the shell tells it to (the ids each
operation returns are exactly the rows to write or delete). Every operation returns a new
:class:`ProfileSet`; the old one is unchanged, so the shell can compare before and after.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from station.smartcharging.model import (
    ChargingLimitSource,
    ChargingProfile,
    ChargingProfilePurpose,
)

__all__ = ["ClearCriteria", "ProfileCriteria", "ProfileSet", "ReportBatch", "report_batches"]

_Purpose = ChargingProfilePurpose
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class ClearCriteria:
    """ClearChargingProfileType: every given field must match; absent fields match anything.

    Attributes:
        evse_id: 0 = profiles set for the station as a whole; absent = any EVSE (schema).
        purpose: only profiles of this purpose.
        stack_level: only profiles of this stack level.
    """

    evse_id: int | None = None
    purpose: ChargingProfilePurpose | None = None
    stack_level: int | None = None

    def matches(self, profile: ChargingProfile) -> bool:
        return (
            (self.evse_id is None or profile.evse_id == self.evse_id)
            and (self.purpose is None or profile.purpose == self.purpose)
            and (self.stack_level is None or profile.stack_level == self.stack_level)
        )


@dataclass(frozen=True, slots=True)
class ProfileCriteria:
    """GetChargingProfilesRequest ``evseId`` + ``chargingProfile`` criterion (K09).

    Every given field must match (the 2.1 schema: "Reported charging profiles SHALL match the
    criteria in field chargingProfile").

    Attributes:
        evse_id: absent = all installed profiles; 0 = "only charging profiles installed on the
            Charging Station itself (the grid connection)"; n = those installed on EVSE n.
        purpose: chargingProfilePurpose.
        stack_level: stackLevel.
        profile_ids: chargingProfileId: "Any ChargingProfile that matches one of these".
        limit_sources: chargingLimitSource: any of these sources.
    """

    evse_id: int | None = None
    purpose: ChargingProfilePurpose | None = None
    stack_level: int | None = None
    profile_ids: frozenset[int] | None = None
    limit_sources: frozenset[str] | None = None

    def matches(self, profile: ChargingProfile) -> bool:
        return (
            (self.evse_id is None or profile.evse_id == self.evse_id)
            and (self.purpose is None or profile.purpose == self.purpose)
            and (self.stack_level is None or profile.stack_level == self.stack_level)
            and (self.profile_ids is None or profile.id in self.profile_ids)
            and (self.limit_sources is None or profile.limit_source in self.limit_sources)
        )


class ProfileSet:
    """Installed charging profiles, keyed by id; immutable, iterated in id order.

    The set holds what the CSMS installed and, if the shell chooses to keep them here, the
    external limits it represents as ChargingStationExternalConstraints / LocalGeneration
    profiles (K11.FR.06): clearing on the CSMS's behalf never touches those (K10).
    """

    __slots__ = ("_by_id",)

    def __init__(self, profiles: Iterable[ChargingProfile] = ()) -> None:
        by_id: dict[int, ChargingProfile] = {}
        for profile in profiles:
            by_id[profile.id] = profile
        self._by_id = dict(sorted(by_id.items()))

    def __iter__(self) -> Iterator[ChargingProfile]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, profile_id: object) -> bool:
        return profile_id in self._by_id

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProfileSet) and self._by_id == other._by_id

    def __hash__(self) -> int:
        return hash(tuple(self._by_id.values()))

    def __repr__(self) -> str:
        return f"ProfileSet({list(self._by_id.values())!r})"

    def get(self, profile_id: int) -> ChargingProfile | None:
        """The profile with this id, if installed."""
        return self._by_id.get(profile_id)

    def install(self, profile: ChargingProfile) -> ProfileSet:
        """Add a profile; one with the same id is replaced (K01.FR.05).

        Validation (:func:`station.smartcharging.validate`) decides beforehand whether the CSMS
        may do this; this method only applies the decision.
        """
        by_id = dict(self._by_id)
        by_id[profile.id] = profile
        return ProfileSet(by_id.values())

    def _without(self, doomed: Iterable[int]) -> tuple[ProfileSet, tuple[int, ...]]:
        gone = tuple(sorted(set(doomed)))
        if not gone:
            return self, ()
        return ProfileSet(p for p in self._by_id.values() if p.id not in gone), gone

    def clear(
        self,
        *,
        profile_id: int | None = None,
        criteria: ClearCriteria | None = None,
        include_external: bool = False,
    ) -> tuple[ProfileSet, tuple[int, ...]]:
        """ClearChargingProfile (K10): remove one profile by id, or every match of the criteria.

        With ``profile_id`` the criteria are not used. Without both, every profile matches (as
        an empty request did in OCPP 1.6). Profiles the CSMS did not install (external limits,
        ``limit_source`` other than CSO) stay unless ``include_external`` is True: the CSMS
        cannot clear ChargingStationExternalConstraints (K10), only the external system that set
        them can (K13, :meth:`clear_limit_source`).

        Returns:
            The new set and the ids removed; no ids = ClearChargingProfileResponse ``Unknown``,
            some = ``Accepted``.
        """

        def clearable(profile: ChargingProfile) -> bool:
            if include_external:
                return True
            return (
                profile.purpose != _Purpose.CHARGING_STATION_EXTERNAL_CONSTRAINTS
                and profile.limit_source == ChargingLimitSource.CSO
            )

        if profile_id is not None:
            found = self._by_id.get(profile_id)
            return self._without([] if found is None or not clearable(found) else [profile_id])
        match = criteria or ClearCriteria()
        return self._without(
            p.id for p in self._by_id.values() if clearable(p) and match.matches(p)
        )

    def clear_limit_source(
        self, source: str, evse_id: int | None = None
    ) -> tuple[ProfileSet, tuple[int, ...]]:
        """An external limit is released (K13, ClearedChargingLimit): remove what it set.

        Removes the profiles with ``limit_source == source`` (on ``evse_id`` when given) whose
        purpose is ChargingStationExternalConstraints or LocalGeneration.
        """
        external = (_Purpose.CHARGING_STATION_EXTERNAL_CONSTRAINTS, _Purpose.LOCAL_GENERATION)
        return self._without(
            p.id
            for p in self._by_id.values()
            if p.purpose in external
            and p.limit_source == source
            and (evse_id is None or p.evse_id == evse_id)
        )

    def query(self, criteria: ProfileCriteria) -> tuple[ChargingProfile, ...]:
        """GetChargingProfiles (K09): the matching profiles, in id order.

        An empty result is GetChargingProfilesResponse ``NoProfiles``.
        """
        return tuple(p for p in self._by_id.values() if criteria.matches(p))

    def for_evse(self, evse_id: int) -> tuple[ChargingProfile, ...]:
        """Profiles installed on exactly this EVSE (0 = on the station itself)."""
        return tuple(p for p in self._by_id.values() if p.evse_id == evse_id)

    def bind_transaction(self, evse_id: int, transaction_id: str) -> ProfileSet:
        """Give the TxProfiles that came with RequestStartTransaction their transaction id.

        A TxProfile from RequestStartTransaction has no transactionId (the transaction did not
        exist yet); once it starts on ``evse_id`` the profile belongs to it (K05).
        """
        changed = [
            replace(p, transaction_id=transaction_id)
            for p in self._by_id.values()
            if p.purpose == _Purpose.TX_PROFILE
            and p.evse_id == evse_id
            and p.transaction_id is None
        ]
        if not changed:
            return self
        by_id = dict(self._by_id)
        for profile in changed:
            by_id[profile.id] = profile
        return ProfileSet(by_id.values())

    def remove_transaction(
        self, transaction_id: str, evse_id: int | None = None
    ) -> tuple[ProfileSet, tuple[int, ...]]:
        """A transaction ended: its TxProfiles go with it.

        "If the duration is left empty, the last period will continue indefinitely or until end
        of the transaction if chargingProfilePurpose = TxProfile" (2.0.1 schema description of
        duration). With ``evse_id``, unbound TxProfiles on that EVSE (from a
        RequestStartTransaction that never became this transaction) go too.
        """
        return self._without(
            p.id
            for p in self._by_id.values()
            if p.purpose == _Purpose.TX_PROFILE
            and (
                p.transaction_id == transaction_id
                or (p.transaction_id is None and evse_id is not None and p.evse_id == evse_id)
            )
        )

    def remove_expired(self, now: datetime) -> tuple[ProfileSet, tuple[int, ...]]:
        """Drop profiles whose ``valid_to`` has passed: they can never apply again."""
        return self._without(
            p.id for p in self._by_id.values() if p.valid_to is not None and p.valid_to <= now
        )

    def remove_invalid_after_offline(
        self, offline_since: datetime, now: datetime
    ) -> tuple[ProfileSet, tuple[int, ...]]:
        """Drop profiles that became invalid for good while offline (2.1 maxOfflineDuration).

        A profile with ``invalid_after_offline_duration`` and ``max_offline_duration_s`` is
        removed once the station has been offline for that long (schema description: "this
        charging profile will become permanently invalid"; from the same instant on which the
        composite schedule stops counting it, so no timer is needed). Profiles without the flag
        only stop counting while offline; the composite schedule handles those.
        """
        # In whole seconds, as the composite schedule counts (both instants truncated), so a
        # profile is removed at the very instant it stops counting there.
        offline_s = (now - _EPOCH) // _SECOND - (offline_since - _EPOCH) // _SECOND
        return self._without(
            p.id
            for p in self._by_id.values()
            if p.invalid_after_offline_duration
            and p.max_offline_duration_s is not None
            and offline_s >= p.max_offline_duration_s
        )


@dataclass(frozen=True, slots=True)
class ReportBatch:
    """The content of one ReportChargingProfilesRequest (K09).

    Each message carries one ``evseId`` and one ``chargingLimitSource``; ``tbc`` is True on
    every message but the last of the report.
    """

    evse_id: int
    limit_source: str
    profiles: tuple[ChargingProfile, ...]
    tbc: bool


def report_batches(
    profiles: Iterable[ChargingProfile], *, max_profiles_per_message: int
) -> tuple[ReportBatch, ...]:
    """Split the profiles of a GetChargingProfiles answer into ReportChargingProfiles messages.

    Profiles are grouped by (EVSE, limit source), since each message carries one of each, in
    EVSE then source then id order, and groups larger than ``max_profiles_per_message`` are
    split.

    Raises:
        ValueError: ``max_profiles_per_message`` is less than 1.
    """
    if max_profiles_per_message < 1:
        raise ValueError(f"max_profiles_per_message must be >= 1, got {max_profiles_per_message}")
    groups: dict[tuple[int, str], list[ChargingProfile]] = {}
    for profile in sorted(profiles, key=lambda p: (p.evse_id, str(p.limit_source), p.id)):
        groups.setdefault((profile.evse_id, str(profile.limit_source)), []).append(profile)
    chunks: list[tuple[int, str, tuple[ChargingProfile, ...]]] = []
    for (evse_id, source), members in groups.items():
        for i in range(0, len(members), max_profiles_per_message):
            chunks.append((evse_id, source, tuple(members[i : i + max_profiles_per_message])))
    return tuple(
        ReportBatch(evse_id, source, chunk, tbc=i < len(chunks) - 1)
        for i, (evse_id, source, chunk) in enumerate(chunks)
    )
