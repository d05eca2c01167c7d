"""SetChargingProfile validation (K01): may this profile be installed, and if not, why not.

Owns every rule the station applies before installing a profile, and the ``reasonCode`` each
rejection carries. It never raises for anything the CSMS sent: :func:`validate` returns a
:class:`Rejection` (status Rejected + reasonCode + a human text) or None. It does no I/O and
takes the device model limits, the EVSEs, the running transactions, the installed profiles and
``now`` as arguments.

Reason codes come from the 2.0.1 appendix (``reason_codes.csv``) and, on ``ocpp2.1``, from the
2.1 appendix and errata 2025-09 (``InvalidOperationMode``, ``PhaseConflict``, ``NoPhaseForDC``,
``NoFreqWattCurve``, ``UnsupportedKind``, ``UnsupportedPurpose``, ``InvalidProfileId``). Over
2.0.1 the codes that only 2.1 defines are replaced by the nearest 2.0.1 one.

Decisions where the specification is silent or only binds the CSMS (each rule's docstring line
names its source):

* K01.FR.06/39 say "the CSMS SHALL NOT send" a duplicate stack level; the station rejects one
  with ``DuplicateProfile``, whose appendix description is exactly that case. K01.FR.52/53 (a
  TxDefaultProfile on EVSE 0 and one on an EVSE with the same stack level) are applied with the
  same overlapping-validity condition as K01.FR.06.
* The number of installed profiles (SmartChargingCtrlr.Entries maxLimit) and of periods
  (PeriodsPerSchedule) are both ``TooManyElements`` ("Typically used for SetChargingProfile").
* A 2.1-only field, kind or purpose on a 2.0.1 connection is ``UnsupportedParam`` (the 2.0.1
  schema would not let it through; a converter bug must still not install it).
* A negative ``limit`` is accepted in its legacy form only: on 2.1, not together with
  ``dischargeLimit``, ``setpoint`` or an operationMode other than ChargingOnly.
* ``setpoint`` under ChargingOnly, ``evseSleep`` outside Idle (errata K01.FR.126 note: "can only
  occur during operationMode Idle"), duplicate curve points and a non-positive ``duration`` are
  ``InvalidSchedule``; ``recurrencyKind`` on a kind other than Recurring is ignored.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from itertools import pairwise

from station.smartcharging.model import (
    ChargingProfile,
    ChargingProfileKind,
    ChargingProfilePurpose,
    ChargingSchedule,
    OcppVersion,
    OperationMode,
    RateUnit,
    SchedulePeriod,
    SmartChargingValueError,
)

__all__ = ["ReasonCode", "Rejection", "SmartChargingLimits", "validate"]

_Purpose = ChargingProfilePurpose
_Kind = ChargingProfileKind
_Mode = OperationMode


class ReasonCode(StrEnum):
    """The reasonCodes SetChargingProfile rejections use (appendix "Reason codes")."""

    DUPLICATE_PROFILE = "DuplicateProfile"
    INVALID_OPERATION_MODE = "InvalidOperationMode"  # 2.1 errata K01.FR.114/115
    INVALID_PROFILE = "InvalidProfile"
    INVALID_PROFILE_ID = "InvalidProfileId"  # 2.1
    INVALID_SCHEDULE = "InvalidSchedule"
    INVALID_STACK_LEVEL = "InvalidStackLevel"
    INVALID_VALUE = "InvalidValue"
    MISSING_PARAM = "MissingParam"
    NO_FREQ_WATT_CURVE = "NoFreqWattCurve"  # 2.1
    NO_PHASE_FOR_DC = "NoPhaseForDC"  # 2.1
    PHASE_CONFLICT = "PhaseConflict"  # 2.1 errata K01.FR.141/144/146
    TOO_MANY_ELEMENTS = "TooManyElements"
    TX_NOT_FOUND = "TxNotFound"
    UNKNOWN_EVSE = "UnknownEvse"
    UNSUPPORTED_KIND = "UnsupportedKind"  # 2.1
    UNSUPPORTED_PARAM = "UnsupportedParam"
    UNSUPPORTED_PURPOSE = "UnsupportedPurpose"  # 2.1
    UNSUPPORTED_RATE_UNIT = "UnsupportedRateUnit"


_ADDITIONAL_INFO_MAX = 512  # StatusInfoType.additionalInfo maxLength in 2.0.1 (2.1: 1024)


@dataclass(frozen=True, slots=True)
class Rejection:
    """SetChargingProfileResponse status Rejected with its statusInfo."""

    reason_code: ReasonCode
    additional_info: str
    status: str = "Rejected"

    def __post_init__(self) -> None:
        if len(self.additional_info) > _ADDITIONAL_INFO_MAX:
            object.__setattr__(
                self, "additional_info", self.additional_info[: _ADDITIONAL_INFO_MAX - 3] + "..."
            )


_ALL_MODES = frozenset(OperationMode)

# K01.FR.111-113 (2.1 errata 2025-09 §2.24): the modes each purpose may use.
_MODES_FOR_PURPOSE: dict[ChargingProfilePurpose, frozenset[OperationMode]] = {
    _Purpose.TX_PROFILE: _ALL_MODES,
    _Purpose.TX_DEFAULT_PROFILE: _ALL_MODES,
    _Purpose.CHARGING_STATION_MAX_PROFILE: frozenset({_Mode.CHARGING_ONLY}),
    _Purpose.PRIORITY_CHARGING: frozenset({_Mode.CHARGING_ONLY}),
    _Purpose.CHARGING_STATION_EXTERNAL_CONSTRAINTS: frozenset(
        {_Mode.CHARGING_ONLY, _Mode.EXTERNAL_LIMITS, _Mode.EXTERNAL_SETPOINT}
    ),
    _Purpose.LOCAL_GENERATION: frozenset({_Mode.CHARGING_ONLY, _Mode.EXTERNAL_LIMITS}),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class SmartChargingLimits:
    """The device model values validation depends on (SmartChargingCtrlr, V2XChargingCtrlr).

    Attributes:
        version: the negotiated OCPP version.
        entries_max: SmartChargingCtrlr.Entries maxLimit: profiles the station can hold.
        periods_per_schedule_max: SmartChargingCtrlr.PeriodsPerSchedule.
        stack_level_max: SmartChargingCtrlr.ProfileStackLevel (highest acceptable stackLevel).
        supported_rate_units: SmartChargingCtrlr.RateUnit.
        external_constraints_allowed: accept ChargingStationExternalConstraints (False for the
            CSMS, K01.FR.22; True when validating a limit an external system set locally).
        supply_phases: ChargingStationSupplyPhases (K01.FR.45).
        ac_phase_switching_supported: SmartChargingCtrlr.ACPhaseSwitchingSupported (K01.FR.20).
        dc_evse_ids: the DC EVSEs (numberPhases/phaseToUse do not apply, K01.FR.44).
        dc_input_phase_control: EVSE.DCInputPhaseControl (2.1 K01.FR.44/54).
        supported_operation_modes: V2XChargingCtrlr.SupportedOperationModes (K01.FR.115).
        supported_additional_purposes: SmartChargingCtrlr.SupportedAdditionalPurposes (K01.FR.120).
        supports_dynamic_profiles: SmartChargingCtrlr.SupportsDynamicProfiles (K01.FR.121).
        supports_max_offline_duration: SmartChargingCtrlr.SupportsMaxOfflineDuration.
        supports_use_local_time: SmartChargingCtrlr.SupportsUseLocalTime (K01.FR.123).
        supports_randomized_delay: SmartChargingCtrlr.SupportsRandomizedDelay (K01.FR.124).
        supports_limit_at_soc: SmartChargingCtrlr.SupportsLimitAtSoC (K01.FR.125).
        supports_evse_sleep: SmartChargingCtrlr.SupportsEvseSleep (K01.FR.126).
        max_external_constraints_id: SmartChargingCtrlr.MaxExternalConstraintsId (K01.FR.81).
    """

    version: OcppVersion
    entries_max: int
    periods_per_schedule_max: int
    stack_level_max: int
    supported_rate_units: frozenset[RateUnit] = frozenset({RateUnit.A, RateUnit.W})
    external_constraints_allowed: bool = False
    supply_phases: int = 3
    ac_phase_switching_supported: bool = False
    dc_evse_ids: frozenset[int] = frozenset()
    dc_input_phase_control: bool = False
    supported_operation_modes: frozenset[OperationMode] = _ALL_MODES
    supported_additional_purposes: frozenset[ChargingProfilePurpose] = frozenset(
        {_Purpose.PRIORITY_CHARGING, _Purpose.LOCAL_GENERATION}
    )
    supports_dynamic_profiles: bool = True
    supports_max_offline_duration: bool = True
    supports_use_local_time: bool = False
    supports_randomized_delay: bool = False
    supports_limit_at_soc: bool = True
    supports_evse_sleep: bool = False
    max_external_constraints_id: int | None = None

    def __post_init__(self) -> None:
        # Accept the plain strings "2.0.1" / "2.1" from configuration as well as the members.
        object.__setattr__(self, "version", OcppVersion(self.version))
        for name in ("entries_max", "periods_per_schedule_max", "stack_level_max"):
            if getattr(self, name) < 0:
                raise SmartChargingValueError(f"SmartChargingLimits.{name} must be >= 0")

    @property
    def v21(self) -> bool:
        return self.version == OcppVersion.V2_1


class _RejectedError(Exception):
    """Internal: carries a rejection out of nested checks."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(rejection.additional_info)
        self.rejection = rejection


def _reject(code: ReasonCode, text: str) -> _RejectedError:
    return _RejectedError(Rejection(code, text))


def _v21_code(limits: SmartChargingLimits, code: ReasonCode, fallback: ReasonCode) -> ReasonCode:
    """``code`` on 2.1; the nearest 2.0.1 appendix code otherwise."""
    return code if limits.v21 else fallback


def validate(
    profile: ChargingProfile,
    *,
    evse_ids: Collection[int],
    active_transactions: Mapping[int, str],
    installed: Iterable[ChargingProfile],
    limits: SmartChargingLimits,
    now: datetime,
    from_request_start_transaction: bool = False,
) -> Rejection | None:
    """Decide whether a SetChargingProfileRequest (or RequestStartTransaction) profile may be set.

    Args:
        profile: the profile as received, with ``evse_id`` from the request.
        evse_ids: the EVSEs the station has (ids > 0).
        active_transactions: transaction id per EVSE with a running transaction.
        installed: the profiles installed now (a profile with the same id will be replaced).
        limits: the device model limits and the OCPP version.
        now: the current time (the start of validity of a profile without ``valid_from``).
        from_request_start_transaction: the profile came in RequestStartTransaction: it must be
            a TxProfile and there is no transaction yet to match (K05).

    Returns:
        None when the profile may be installed, else the rejection to send.
    """
    installed = tuple(installed)
    try:
        _check_version(profile, limits)
        _check_purpose_and_kind(profile, limits, from_request_start_transaction)
        _check_evse(profile, evse_ids)
        _check_identity(profile, installed, limits)
        for index, schedule in enumerate(profile.schedules):
            _check_schedule(profile, index, schedule, limits)
        _check_phase_conflicts(profile, installed, limits)
        if profile.purpose == _Purpose.TX_PROFILE and not from_request_start_transaction:
            _check_transaction(profile, active_transactions)
        _check_duplicates(profile, installed, now)
        _check_entries(profile, installed, limits)
    except _RejectedError as rejected:
        return rejected.rejection
    return None


# --- checks ---------------------------------------------------------------------------------


def _check_version(profile: ChargingProfile, limits: SmartChargingLimits) -> None:
    """2.1-only kinds, purposes and fields cannot be installed over 2.0.1."""
    if limits.v21:
        return
    found: list[str] = []
    if profile.kind == _Kind.DYNAMIC:
        found.append("chargingProfileKind Dynamic")
    if profile.purpose in (_Purpose.PRIORITY_CHARGING, _Purpose.LOCAL_GENERATION):
        found.append(f"chargingProfilePurpose {profile.purpose}")
    if profile.max_offline_duration_s is not None or profile.invalid_after_offline_duration:
        found.append("maxOfflineDuration")
    if profile.dyn_update_interval_s is not None or profile.dyn_update_time is not None:
        found.append("dynUpdateInterval/dynUpdateTime")
    if profile.price_schedule_signature is not None:
        found.append("priceScheduleSignature")
    for schedule in profile.schedules:
        if schedule.limit_at_soc is not None:
            found.append("limitAtSoC")
        if schedule.power_tolerance is not None:
            found.append("powerTolerance")
        if schedule.use_local_time:
            found.append("useLocalTime")
        if schedule.randomized_delay_s:
            found.append("randomizedDelay")
        if schedule.signature_id is not None or schedule.digest_value is not None:
            found.append("signatureId/digestValue")
        for period in schedule.periods:
            found.extend(_v21_period_fields(period))
    if found:
        raise _reject(
            ReasonCode.UNSUPPORTED_PARAM,
            f"{found[0]} is an OCPP 2.1 field; this connection uses OCPP 2.0.1",
        )


def _v21_period_fields(period: SchedulePeriod) -> list[str]:
    names = []
    pairs = (
        ("limit_L2/limit_L3", period.limit_l2 is not None or period.limit_l3 is not None),
        (
            "dischargeLimit",
            any(
                v is not None
                for v in (
                    period.discharge_limit,
                    period.discharge_limit_l2,
                    period.discharge_limit_l3,
                )
            ),
        ),
        (
            "setpoint",
            any(v is not None for v in (period.setpoint, period.setpoint_l2, period.setpoint_l3)),
        ),
        (
            "setpointReactive",
            any(
                v is not None
                for v in (
                    period.setpoint_reactive,
                    period.setpoint_reactive_l2,
                    period.setpoint_reactive_l3,
                )
            ),
        ),
        ("operationMode", period.operation_mode != _Mode.CHARGING_ONLY),
        ("preconditioningRequest", period.preconditioning_request),
        ("evseSleep", period.evse_sleep),
        ("v2xBaseline", period.v2x_baseline is not None),
        ("v2xFreqWattCurve", bool(period.v2x_freq_watt_curve)),
        ("v2xSignalWattCurve", bool(period.v2x_signal_watt_curve)),
    )
    for name, present in pairs:
        if present:
            names.append(name)
    return names


def _check_purpose_and_kind(
    profile: ChargingProfile, limits: SmartChargingLimits, from_request_start: bool
) -> None:
    purpose = profile.purpose
    if (
        purpose == _Purpose.CHARGING_STATION_EXTERNAL_CONSTRAINTS
        and not limits.external_constraints_allowed
    ):
        # K01.FR.22: the CSMS cannot set ChargingStationExternalConstraints.
        raise _reject(
            ReasonCode.INVALID_PROFILE,
            "ChargingStationExternalConstraints can only be set by an external system (K01.FR.22)",
        )
    if (
        purpose in (_Purpose.PRIORITY_CHARGING, _Purpose.LOCAL_GENERATION)
        and purpose not in limits.supported_additional_purposes
    ):
        raise _reject(
            ReasonCode.UNSUPPORTED_PURPOSE,
            f"chargingProfilePurpose {purpose} is not supported (K01.FR.120)",
        )
    if profile.kind == _Kind.DYNAMIC and not limits.supports_dynamic_profiles:
        raise _reject(
            ReasonCode.UNSUPPORTED_KIND, "chargingProfileKind Dynamic is not supported (K01.FR.121)"
        )
    if profile.kind != _Kind.DYNAMIC and (
        profile.dyn_update_interval_s is not None or profile.dyn_update_time is not None
    ):
        raise _reject(
            ReasonCode.INVALID_PROFILE,
            "dynUpdateInterval/dynUpdateTime need chargingProfileKind Dynamic (K01.FR.122)",
        )
    if profile.dyn_update_interval_s is not None and profile.dyn_update_interval_s < 0:
        raise _reject(ReasonCode.INVALID_PROFILE, "dynUpdateInterval must not be negative")
    if (
        profile.max_offline_duration_s is not None or profile.invalid_after_offline_duration
    ) and not limits.supports_max_offline_duration:
        raise _reject(
            ReasonCode.UNSUPPORTED_PARAM,
            "maxOfflineDuration/invalidAfterOfflineDuration are not supported",
        )
    if profile.max_offline_duration_s is not None and profile.max_offline_duration_s < 0:
        raise _reject(ReasonCode.INVALID_PROFILE, "maxOfflineDuration must not be negative")
    if from_request_start and purpose != _Purpose.TX_PROFILE:
        raise _reject(
            ReasonCode.INVALID_PROFILE,
            "a charging profile in RequestStartTransaction must be a TxProfile (K05)",
        )
    if purpose == _Purpose.CHARGING_STATION_MAX_PROFILE and profile.kind == _Kind.RELATIVE:
        raise _reject(
            ReasonCode.INVALID_PROFILE,
            "a ChargingStationMaxProfile cannot be Relative (K01.FR.38)",
        )
    if profile.kind == _Kind.RECURRING and profile.recurrency is None:
        raise _reject(ReasonCode.INVALID_PROFILE, "a Recurring profile needs recurrencyKind")
    if profile.transaction_id is not None and purpose != _Purpose.TX_PROFILE:
        raise _reject(
            ReasonCode.INVALID_PROFILE,
            "transactionId SHALL only be included with purpose TxProfile (schema description)",
        )
    if (
        profile.valid_from is not None
        and profile.valid_to is not None
        and profile.valid_from >= profile.valid_to
    ):
        raise _reject(ReasonCode.INVALID_PROFILE, "validFrom must be before validTo")
    count = len(profile.schedules)
    if not 1 <= count <= 3:
        raise _reject(
            ReasonCode.INVALID_PROFILE, f"a profile has 1 to 3 chargingSchedules, got {count}"
        )
    if count > 1 and purpose != _Purpose.TX_PROFILE:
        raise _reject(
            ReasonCode.INVALID_PROFILE,
            "only a TxProfile (for ISO 15118) may have more than one chargingSchedule (K01.FR.34)",
        )


def _check_evse(profile: ChargingProfile, evse_ids: Collection[int]) -> None:
    evse_id = profile.evse_id
    if evse_id < 0:
        raise _reject(ReasonCode.INVALID_VALUE, f"evseId {evse_id} is negative")
    if evse_id != 0 and evse_id not in evse_ids:
        raise _reject(ReasonCode.UNKNOWN_EVSE, f"EVSE {evse_id} does not exist (K01.FR.28)")
    if profile.purpose == _Purpose.CHARGING_STATION_MAX_PROFILE and evse_id != 0:
        raise _reject(
            ReasonCode.INVALID_VALUE, "a ChargingStationMaxProfile can only be set on evseId 0"
        )
    if profile.purpose == _Purpose.TX_PROFILE and evse_id == 0:
        raise _reject(ReasonCode.INVALID_VALUE, "a TxProfile needs an evseId > 0 (K01.FR.16)")


def _check_identity(
    profile: ChargingProfile, installed: tuple[ChargingProfile, ...], limits: SmartChargingLimits
) -> None:
    external = _Purpose.CHARGING_STATION_EXTERNAL_CONSTRAINTS
    if (
        limits.v21
        and limits.max_external_constraints_id is not None
        and profile.purpose != external
        and profile.id <= limits.max_external_constraints_id
    ):
        raise _reject(
            ReasonCode.INVALID_PROFILE_ID,
            f"chargingProfile id {profile.id} is reserved for external constraints "
            f"(<= MaxExternalConstraintsId {limits.max_external_constraints_id}, K01.FR.81)",
        )
    if not limits.external_constraints_allowed:
        for other in installed:
            if other.id == profile.id and other.purpose == external:
                raise _reject(
                    ReasonCode.DUPLICATE_PROFILE,
                    f"profile {profile.id} is an external constraint the CSMS cannot replace "
                    "(K01.FR.05)",
                )
    if not 0 <= profile.stack_level <= limits.stack_level_max:
        raise _reject(
            ReasonCode.INVALID_STACK_LEVEL,
            f"stackLevel {profile.stack_level} is outside 0..{limits.stack_level_max} "
            "(SmartChargingCtrlr.ProfileStackLevel)",
        )


def _finite(value: float | None) -> bool:
    return value is None or math.isfinite(value)


def _check_schedule(
    profile: ChargingProfile, index: int, schedule: ChargingSchedule, limits: SmartChargingLimits
) -> None:
    where = f"chargingSchedule[{index}]"
    if schedule.rate_unit not in limits.supported_rate_units:
        raise _reject(
            ReasonCode.UNSUPPORTED_RATE_UNIT,
            f"{where}: chargingRateUnit {schedule.rate_unit} is not supported (K01.FR.26)",
        )
    kind = profile.kind
    if kind in (_Kind.ABSOLUTE, _Kind.RECURRING) and schedule.start_schedule is None:
        raise _reject(
            ReasonCode.INVALID_SCHEDULE,
            f"{where}: an {kind} profile needs startSchedule (K01.FR.40)",
        )
    if kind == _Kind.RELATIVE and schedule.start_schedule is not None:
        raise _reject(
            ReasonCode.INVALID_SCHEDULE,
            f"{where}: a Relative profile has no startSchedule (K01.FR.41)",
        )
    if schedule.duration_s is not None and schedule.duration_s <= 0:
        raise _reject(ReasonCode.INVALID_SCHEDULE, f"{where}: duration must be positive")
    if profile.purpose == _Purpose.PRIORITY_CHARGING and schedule.duration_s is not None:
        raise _reject(
            ReasonCode.INVALID_SCHEDULE,
            f"{where}: a PriorityCharging schedule has no duration (K01.FR.70/73)",
        )
    if not (_finite(schedule.min_charging_rate) and _finite(schedule.power_tolerance)):
        raise _reject(ReasonCode.INVALID_SCHEDULE, f"{where}: values must be finite numbers")
    if schedule.min_charging_rate is not None and schedule.min_charging_rate < 0:
        raise _reject(ReasonCode.INVALID_SCHEDULE, f"{where}: minChargingRate must be >= 0")
    if schedule.randomized_delay_s < 0:
        raise _reject(ReasonCode.INVALID_SCHEDULE, f"{where}: randomizedDelay must be >= 0")
    if schedule.randomized_delay_s > 0:
        if profile.purpose not in (_Purpose.TX_PROFILE, _Purpose.TX_DEFAULT_PROFILE):
            raise _reject(
                ReasonCode.INVALID_SCHEDULE,
                f"{where}: randomizedDelay is only allowed for Tx(Default)Profiles (K01.FR.95)",
            )
        if not limits.supports_randomized_delay:
            raise _reject(
                ReasonCode.INVALID_SCHEDULE,
                f"{where}: randomizedDelay is not supported (K01.FR.124)",
            )
    if schedule.use_local_time and not limits.supports_use_local_time:
        raise _reject(
            ReasonCode.INVALID_SCHEDULE, f"{where}: useLocalTime is not supported (K01.FR.123)"
        )
    if schedule.limit_at_soc is not None:
        if not limits.supports_limit_at_soc:
            raise _reject(
                ReasonCode.INVALID_SCHEDULE, f"{where}: limitAtSoC is not supported (K01.FR.125)"
            )
        soc = schedule.limit_at_soc
        if not (0 <= soc.soc_pct <= 100 and math.isfinite(soc.limit) and soc.limit >= 0):
            raise _reject(
                ReasonCode.INVALID_SCHEDULE,
                f"{where}: limitAtSoC needs soc 0..100 and a limit >= 0",
            )

    periods = schedule.periods
    if not periods:
        raise _reject(ReasonCode.INVALID_SCHEDULE, f"{where}: no chargingSchedulePeriod")
    if len(periods) > limits.periods_per_schedule_max:
        raise _reject(
            ReasonCode.TOO_MANY_ELEMENTS,
            f"{where}: {len(periods)} periods, at most {limits.periods_per_schedule_max} "
            "(SmartChargingCtrlr.PeriodsPerSchedule)",
        )
    if periods[0].start_period_s != 0:
        raise _reject(
            ReasonCode.INVALID_SCHEDULE,
            f"{where}: the first startPeriod must be 0 (K01.FR.31)",
        )
    for before, after in pairwise(periods):
        if after.start_period_s <= before.start_period_s:
            raise _reject(
                ReasonCode.INVALID_SCHEDULE,
                f"{where}: startPeriod {after.start_period_s} does not follow "
                f"{before.start_period_s}; starts must increase (K01.FR.35)",
            )
    if kind == _Kind.DYNAMIC and len(periods) != 1:
        raise _reject(
            ReasonCode.INVALID_SCHEDULE,
            f"{where}: a Dynamic profile has exactly one chargingSchedulePeriod (2.1 §5.5)",
        )
    for number, period in enumerate(periods):
        _check_period(
            profile, schedule, f"{where}.chargingSchedulePeriod[{number}]", period, limits
        )


def _check_period(
    profile: ChargingProfile,
    schedule: ChargingSchedule,
    where: str,
    period: SchedulePeriod,
    limits: SmartChargingLimits,
) -> None:
    invalid = ReasonCode.INVALID_SCHEDULE
    if not all(_finite(value) for value in period.numbers()):
        raise _reject(invalid, f"{where}: values must be finite numbers")
    mode = period.operation_mode
    if period.limit is None and (not limits.v21 or mode == _Mode.CHARGING_ONLY):
        raise _reject(
            invalid, f"{where}: limit is required with operationMode ChargingOnly (schema)"
        )

    # Phases: K01.FR.19/20/44/45/48.
    dc = profile.evse_id in limits.dc_evse_ids
    phases_given = period.number_phases is not None or period.phase_to_use is not None
    if phases_given and dc and not (limits.v21 and limits.dc_input_phase_control):
        raise _reject(
            _v21_code(limits, ReasonCode.NO_PHASE_FOR_DC, invalid),
            f"{where}: numberPhases/phaseToUse do not apply to DC EVSE {profile.evse_id} "
            "(K01.FR.44)",
        )
    if period.number_phases is not None:
        if not 1 <= period.number_phases <= 3:
            raise _reject(invalid, f"{where}: numberPhases must be 1..3")
        if period.number_phases > limits.supply_phases:
            raise _reject(
                invalid,
                f"{where}: numberPhases {period.number_phases} exceeds the "
                f"{limits.supply_phases} supply phases (K01.FR.45)",
            )
    if period.phase_to_use is not None:
        if not 1 <= period.phase_to_use <= 3:
            raise _reject(invalid, f"{where}: phaseToUse must be 1..3")
        if period.number_phases != 1:
            raise _reject(invalid, f"{where}: phaseToUse needs numberPhases 1 (K01.FR.19)")
        if not limits.ac_phase_switching_supported:
            raise _reject(
                invalid,
                f"{where}: phaseToUse needs ACPhaseSwitchingSupported (K01.FR.20)",
            )

    # Per-phase forms: V2X.07 / K01.FR.146 (base value needed), K01.FR.144 / V2X.10 (TxProfile).
    phase_conflict = _v21_code(limits, ReasonCode.PHASE_CONFLICT, invalid)
    triples = (
        ("limit", period.limit, period.limit_l2, period.limit_l3),
        (
            "dischargeLimit",
            period.discharge_limit,
            period.discharge_limit_l2,
            period.discharge_limit_l3,
        ),
        ("setpoint", period.setpoint, period.setpoint_l2, period.setpoint_l3),
        (
            "setpointReactive",
            period.setpoint_reactive,
            period.setpoint_reactive_l2,
            period.setpoint_reactive_l3,
        ),
    )
    for name, base, l2, l3 in triples:
        if l2 is None and l3 is None:
            continue
        if base is None:
            raise _reject(
                phase_conflict, f"{where}: {name}_L2/_L3 need {name} as well (K01.FR.146, V2X.07)"
            )
        if profile.purpose != _Purpose.TX_PROFILE:
            raise _reject(
                phase_conflict,
                f"{where}: {name}_L2/_L3 are only allowed in a TxProfile (K01.FR.144, V2X.10)",
            )

    # Signs: dischargeLimit <= 0 (schema maximum 0); a negative limit only in its legacy form.
    discharges = (period.discharge_limit, period.discharge_limit_l2, period.discharge_limit_l3)
    if any(value is not None and value > 0 for value in discharges):
        raise _reject(invalid, f"{where}: dischargeLimit must be <= 0 (schema)")
    limit_values = [v for v in (period.limit, period.limit_l2, period.limit_l3) if v is not None]
    if any(value < 0 for value in limit_values):
        if any(value > 0 for value in limit_values):
            raise _reject(invalid, f"{where}: limit and limit_L2/_L3 have different signs")
        if (
            any(value is not None for value in discharges)
            or period.setpoint is not None
            or mode != _Mode.CHARGING_ONLY
        ):
            raise _reject(
                invalid,
                f"{where}: a negative limit (legacy discharge limit) cannot be combined with "
                "dischargeLimit, setpoint or an operationMode",
            )

    # Operation mode: K01.FR.111-115, the 2.1 table "limits and setpoints per operation mode".
    if mode not in _MODES_FOR_PURPOSE[profile.purpose]:
        raise _reject(
            ReasonCode.INVALID_OPERATION_MODE,
            f"{where}: operationMode {mode} is not allowed for {profile.purpose} (K01.FR.111-114)",
        )
    if mode != _Mode.CHARGING_ONLY and mode not in limits.supported_operation_modes:
        raise _reject(
            ReasonCode.INVALID_OPERATION_MODE,
            f"{where}: operationMode {mode} is not supported (K01.FR.115)",
        )
    if mode == _Mode.CHARGING_ONLY and (
        period.setpoint is not None or period.setpoint_reactive is not None
    ):
        raise _reject(invalid, f"{where}: setpoint needs an operationMode that follows it")
    if mode in (_Mode.CENTRAL_SETPOINT, _Mode.CENTRAL_FREQUENCY) and period.setpoint is None:
        raise _reject(invalid, f"{where}: operationMode {mode} needs a setpoint")
    if mode == _Mode.LOCAL_FREQUENCY:
        if len(period.v2x_freq_watt_curve) < 2 or period.v2x_baseline is None:
            raise _reject(
                _v21_code(limits, ReasonCode.NO_FREQ_WATT_CURVE, invalid),
                f"{where}: LocalFrequency needs a v2xFreqWattCurve of >= 2 points and a "
                "v2xBaseline (Q08.FR.02)",
            )
        if schedule.rate_unit != RateUnit.W:
            raise _reject(invalid, f"{where}: LocalFrequency needs chargingRateUnit W (Q08.FR.05)")
    if period.evse_sleep and mode != _Mode.IDLE:
        raise _reject(
            invalid, f"{where}: evseSleep can only be used with operationMode Idle (K01.FR.126)"
        )
    frequencies = [p.frequency_hz for p in period.v2x_freq_watt_curve]
    signals = [p.signal for p in period.v2x_signal_watt_curve]
    if len(set(frequencies)) != len(frequencies) or len(set(signals)) != len(signals):
        raise _reject(invalid, f"{where}: a curve has two points at the same x value")
    if len(frequencies) > 20 or len(signals) > 20:
        raise _reject(invalid, f"{where}: a curve has at most 20 points (schema)")

    # setpoint within [dischargeLimit, limit] (schema description of setpoint).
    bounds = (
        (period.setpoint, period.limit, period.discharge_limit),
        (period.setpoint_l2, period.limit_l2, period.discharge_limit_l2),
        (period.setpoint_l3, period.limit_l3, period.discharge_limit_l3),
    )
    for setpoint, upper, lower in bounds:
        if setpoint is None:
            continue
        if (upper is not None and setpoint > upper) or (lower is not None and setpoint < lower):
            raise _reject(
                invalid,
                f"{where}: setpoint {setpoint} lies outside [dischargeLimit, limit] "
                f"= [{lower}, {upper}]",
            )


def _phases_to_use(profile: ChargingProfile) -> set[int]:
    return {
        period.phase_to_use
        for schedule in profile.schedules
        for period in schedule.periods
        if period.phase_to_use is not None
    }


_STATION_LEVEL = (
    _Purpose.CHARGING_STATION_MAX_PROFILE,
    _Purpose.CHARGING_STATION_EXTERNAL_CONSTRAINTS,
)
_TX_LEVEL = (_Purpose.TX_PROFILE, _Purpose.TX_DEFAULT_PROFILE, _Purpose.PRIORITY_CHARGING)


def _check_phase_conflicts(
    profile: ChargingProfile, installed: tuple[ChargingProfile, ...], limits: SmartChargingLimits
) -> None:
    """K01.FR.141 (2.1) / 2.0.1 errata §2.28: no conflicting phaseToUse between the levels.

    The station cannot always tell when periods of a Relative profile will overlap, so any
    difference between a station-level (ChargingStationMax, external constraints) and a
    transaction-level profile on the same EVSE (or EVSE 0) is a conflict, as the errata advise.
    """
    mine = _phases_to_use(profile)
    if not mine:
        return
    if profile.purpose in _STATION_LEVEL:
        others = [p for p in installed if p.purpose in _TX_LEVEL]
    elif profile.purpose in _TX_LEVEL:
        others = [p for p in installed if p.purpose in _STATION_LEVEL]
    else:
        return
    for other in others:
        if other.id == profile.id:
            continue
        if 0 not in (other.evse_id, profile.evse_id) and other.evse_id != profile.evse_id:
            continue
        theirs = _phases_to_use(other)
        if theirs and theirs != mine:
            raise _reject(
                _v21_code(limits, ReasonCode.PHASE_CONFLICT, ReasonCode.INVALID_SCHEDULE),
                f"phaseToUse {sorted(mine)} conflicts with {sorted(theirs)} of profile "
                f"{other.id} (K01.FR.141)",
            )


def _check_transaction(profile: ChargingProfile, active_transactions: Mapping[int, str]) -> None:
    if profile.transaction_id is None:
        raise _reject(ReasonCode.MISSING_PARAM, "a TxProfile needs a transactionId (K01.FR.03)")
    running = active_transactions.get(profile.evse_id)
    if running is None:
        raise _reject(
            ReasonCode.TX_NOT_FOUND,
            f"no transaction is running on EVSE {profile.evse_id} (K01.FR.09)",
        )
    if running != profile.transaction_id:
        raise _reject(
            ReasonCode.TX_NOT_FOUND,
            f"transaction {profile.transaction_id} is not the one on EVSE {profile.evse_id} "
            "(K01.FR.33)",
        )


def _window(profile: ChargingProfile, received: datetime | None) -> tuple[datetime | None, ...]:
    start = profile.valid_from if profile.valid_from is not None else received
    return (start, profile.valid_to)


def _overlap(a: tuple[datetime | None, ...], b: tuple[datetime | None, ...]) -> bool:
    """Half-open validity windows [from, to); None = unbounded on that side."""
    a_from, a_to = a
    b_from, b_to = b
    starts_before_b_ends = b_to is None or a_from is None or a_from < b_to
    b_starts_before_a_ends = a_to is None or b_from is None or b_from < a_to
    return starts_before_b_ends and b_starts_before_a_ends


def _check_duplicates(
    profile: ChargingProfile, installed: tuple[ChargingProfile, ...], now: datetime
) -> None:
    """K01.FR.06 (same purpose, stack level, EVSE; overlapping validity), K01.FR.39 (TxProfile:
    same stack level and transaction), K01.FR.52/53 (TxDefault on EVSE 0 vs. on an EVSE)."""
    mine = _window(profile, now)
    for other in installed:
        if other.id == profile.id or other.purpose != profile.purpose:
            continue
        if other.stack_level != profile.stack_level:
            continue
        if profile.purpose == _Purpose.TX_PROFILE:
            if (
                profile.transaction_id is not None
                and other.transaction_id == profile.transaction_id
            ):
                raise _reject(
                    ReasonCode.DUPLICATE_PROFILE,
                    f"TxProfile {other.id} already has stackLevel {profile.stack_level} for "
                    f"transaction {profile.transaction_id} (K01.FR.39)",
                )
            continue
        same_scope = other.evse_id == profile.evse_id
        tx_default_across = profile.purpose == _Purpose.TX_DEFAULT_PROFILE and (
            0 in (other.evse_id, profile.evse_id)
        )
        if not (same_scope or tx_default_across):
            continue
        if _overlap(mine, _window(other, other.received_at)):
            rule = "K01.FR.06" if same_scope else "K01.FR.52/53"
            raise _reject(
                ReasonCode.DUPLICATE_PROFILE,
                f"profile {other.id} already has {profile.purpose} stackLevel "
                f"{profile.stack_level} on EVSE {other.evse_id} with an overlapping validity "
                f"period ({rule})",
            )


def _check_entries(
    profile: ChargingProfile, installed: tuple[ChargingProfile, ...], limits: SmartChargingLimits
) -> None:
    count = sum(1 for other in installed if other.id != profile.id) + 1
    if count > limits.entries_max:
        raise _reject(
            ReasonCode.TOO_MANY_ELEMENTS,
            f"the station holds at most {limits.entries_max} charging profiles "
            "(SmartChargingCtrlr.Entries)",
        )
