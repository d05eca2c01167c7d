"""Smart-charging domain types: charging profiles, schedules and periods, in the station's terms.

Owns the typed form of OCPP 2.0.1 / 2.1 ``ChargingProfileType``, ``ChargingScheduleType`` and
``ChargingSchedulePeriodType`` with every field that changes what the station does, plus the
2.0.1 "negative limit" normalisation. It must not import ``ocpp`` or do I/O: ``station/ocpp/``
converts payloads onto these types (STYLE.md A2.7) and back.

Conventions (DESIGN.md):

* **Sign**: seen from the vehicle, ``+`` = into the vehicle (charging), ``-`` = out of it
  (discharging). OCPP 2.1 ``setpoint`` and ``dischargeLimit`` already use this sign, so they are
  stored as received. A limit of 0 means no power, never a change of direction.
* **Units**: ``limit``, ``discharge_limit``, ``setpoint``, ``setpoint_reactive`` and
  ``min_charging_rate`` are in the schedule's :attr:`ChargingSchedule.rate_unit` (A per phase or
  W for all phases, per the schema descriptions); curve points carry W and Hz in their names.
  Durations are whole seconds (``*_s``); instants are timezone-aware UTC ``datetime``.
* **Stored as received**: profiles keep the values the CSMS sent (also a 2.0.1 negative
  ``limit``) so that ReportChargingProfiles (K09) reports them back unchanged; the composite
  schedule applies :func:`from_legacy_negative_limit` when it evaluates a period.
* Fields that only carry price information for ISO 15118 (``salesTariff``,
  ``absolutePriceSchedule``, ``priceLevelSchedule``) are kept opaque in
  :attr:`ChargingSchedule.price_schedule_json`; the core never reads them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from station.errors import StationError

__all__ = [
    "ChargingLimitSource",
    "ChargingProfile",
    "ChargingProfileKind",
    "ChargingProfilePurpose",
    "ChargingSchedule",
    "FreqWattPoint",
    "LimitAtSoc",
    "OcppVersion",
    "OperationMode",
    "RateUnit",
    "RecurrencyKind",
    "SchedulePeriod",
    "SignalWattPoint",
    "SmartChargingValueError",
    "TransactionInfo",
    "from_legacy_negative_limit",
]


class SmartChargingValueError(StationError, ValueError):
    """A smart-charging domain value was built wrongly (a bug at the edge, not the CSMS's fault).

    Raised at construction, e.g. for a naive ``datetime``. What the CSMS may get wrong is
    answered by :func:`station.smartcharging.validate` with a rejection, never an exception.
    """


class OcppVersion(StrEnum):
    """The negotiated OCPP version: decides which fields, kinds and purposes exist."""

    V2_0_1 = "2.0.1"
    V2_1 = "2.1"


class ChargingProfilePurpose(StrEnum):
    """ChargingProfilePurposeEnumType; PriorityCharging and LocalGeneration are 2.1 only."""

    CHARGING_STATION_MAX_PROFILE = "ChargingStationMaxProfile"
    TX_DEFAULT_PROFILE = "TxDefaultProfile"
    TX_PROFILE = "TxProfile"
    CHARGING_STATION_EXTERNAL_CONSTRAINTS = "ChargingStationExternalConstraints"
    PRIORITY_CHARGING = "PriorityCharging"
    LOCAL_GENERATION = "LocalGeneration"


class ChargingProfileKind(StrEnum):
    """ChargingProfileKindEnumType; Dynamic is 2.1 only (K28/K29)."""

    ABSOLUTE = "Absolute"
    RECURRING = "Recurring"
    RELATIVE = "Relative"
    DYNAMIC = "Dynamic"


class RecurrencyKind(StrEnum):
    """RecurrencyKindEnumType: the period after which a Recurring schedule starts again."""

    DAILY = "Daily"
    WEEKLY = "Weekly"


class RateUnit(StrEnum):
    """ChargingRateUnitEnumType: A (current per phase) or W (power of all phases)."""

    A = "A"
    W = "W"


class OperationMode(StrEnum):
    """OperationModeEnumType (2.1): what the EVSE does during a period (Q01-Q12).

    "When absent defaults to ChargingOnly" (schema description); over 2.0.1 it is always
    ChargingOnly except for a normalised negative limit (:func:`from_legacy_negative_limit`).
    """

    IDLE = "Idle"
    CHARGING_ONLY = "ChargingOnly"
    CENTRAL_SETPOINT = "CentralSetpoint"
    EXTERNAL_SETPOINT = "ExternalSetpoint"
    EXTERNAL_LIMITS = "ExternalLimits"
    CENTRAL_FREQUENCY = "CentralFrequency"
    LOCAL_FREQUENCY = "LocalFrequency"
    LOCAL_LOAD_BALANCING = "LocalLoadBalancing"


class ChargingLimitSource(StrEnum):
    """ChargingLimitSourceEnumType (2.0.1) / ChargingLimitSourceEnumStringType (2.1 appendix).

    2.1 makes the field a string of at most 20 characters, so profiles store ``str`` and these
    members are the known values. Profiles from the CSMS carry ``CSO``.
    """

    EMS = "EMS"
    OTHER = "Other"
    SO = "SO"
    CSO = "CSO"


def _aware(name: str, value: datetime | None) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise SmartChargingValueError(f"{name} must be a timezone-aware datetime, got {value!r}")


@dataclass(frozen=True, slots=True)
class FreqWattPoint:
    """V2XFreqWattPointType: at ``frequency_hz``, charge (+) or discharge (-) ``power_w``."""

    frequency_hz: float
    power_w: float


@dataclass(frozen=True, slots=True)
class SignalWattPoint:
    """V2XSignalWattPointType: at AFRRSignal ``signal``, charge (+)/discharge (-) ``power_w``."""

    signal: int
    power_w: float


@dataclass(frozen=True, slots=True)
class LimitAtSoc:
    """LimitAtSocType (2.1): beyond ``soc_pct`` the limit is capped at ``limit`` (rate unit)."""

    soc_pct: int
    limit: float


@dataclass(frozen=True, slots=True, kw_only=True)
class SchedulePeriod:
    """ChargingSchedulePeriodType: one period of a schedule, from ``start_period_s`` on.

    Values are in the schedule's rate unit; ``None`` means the field was absent. ``limit`` is
    optional in 2.1 "only when not required by the operationMode" and required in 2.0.1.
    ``*_l2``/``*_l3`` are the per-phase forms; when present the unsuffixed field is phase L1.

    Attributes:
        start_period_s: seconds from the start of the schedule; also ends the previous period.
        limit: the most that may be charged; a negative value is the 2.0.1 way to give a
            discharge limit (see :func:`from_legacy_negative_limit`).
        discharge_limit: the most that may be discharged, <= 0 (2.1).
        setpoint: the value to follow, signed (2.1): negative = discharge.
        setpoint_reactive: reactive set-point: positive inductive, negative capacitive (2.1).
        number_phases: phases that may be used (AC); 3 is assumed when absent (K01.FR.49).
        phase_to_use: the phase to use when ``number_phases`` is 1 (K01.FR.19/20).
        operation_mode: 2.1 operationMode; ChargingOnly when absent.
        preconditioning_request: the EV should keep its battery preconditioned (2.1).
        evse_sleep: the EVSE may power its electronics down; only with Idle (K01.FR.126, 2.1).
        v2x_baseline: W, the base on which the curves' power is added (2.1).
        v2x_freq_watt_curve: LocalFrequency curve (Q08), 1-20 points (2.1).
        v2x_signal_watt_curve: CentralFrequency aFRR curve (Q07/Q08), 1-20 points (2.1).
    """

    start_period_s: int
    limit: float | None = None
    limit_l2: float | None = None
    limit_l3: float | None = None
    discharge_limit: float | None = None
    discharge_limit_l2: float | None = None
    discharge_limit_l3: float | None = None
    setpoint: float | None = None
    setpoint_l2: float | None = None
    setpoint_l3: float | None = None
    setpoint_reactive: float | None = None
    setpoint_reactive_l2: float | None = None
    setpoint_reactive_l3: float | None = None
    number_phases: int | None = None
    phase_to_use: int | None = None
    operation_mode: OperationMode = OperationMode.CHARGING_ONLY
    preconditioning_request: bool = False
    evse_sleep: bool = False
    v2x_baseline: float | None = None
    v2x_freq_watt_curve: tuple[FreqWattPoint, ...] = ()
    v2x_signal_watt_curve: tuple[SignalWattPoint, ...] = ()

    def numbers(self) -> tuple[float | None, ...]:
        """Every decimal field, for checks that apply to all of them (e.g. finiteness)."""
        return (
            self.limit,
            self.limit_l2,
            self.limit_l3,
            self.discharge_limit,
            self.discharge_limit_l2,
            self.discharge_limit_l3,
            self.setpoint,
            self.setpoint_l2,
            self.setpoint_l3,
            self.setpoint_reactive,
            self.setpoint_reactive_l2,
            self.setpoint_reactive_l3,
            self.v2x_baseline,
            *(v for p in self.v2x_freq_watt_curve for v in (p.frequency_hz, p.power_w)),
            *(p.power_w for p in self.v2x_signal_watt_curve),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargingSchedule:
    """ChargingScheduleType: periods with a start, an optional duration and a rate unit.

    Attributes:
        id: the schedule id (ISO 15118 SAScheduleTupleID).
        rate_unit: the unit of every value in the periods and of ``min_charging_rate``.
        periods: at least one; the first starts at 0 and starts strictly increase (K01.FR.31/35).
        start_schedule: start of an Absolute schedule or of the first Recurring occurrence
            (K01.FR.40); absent for Relative (K01.FR.41).
        duration_s: length of the schedule; absent = the last period goes on (until the next
            recurrence). For Dynamic profiles: how long the values stay valid after
            ``dyn_update_time`` (K28.FR.13/15).
        min_charging_rate: the EV's minimum efficient charging rate, for local optimisation.
        limit_at_soc: 2.1 limitAtSoC, applied by the energy manager that knows the SoC.
        power_tolerance: 2.1 powerTolerance for following an EVPowerProfile.
        use_local_time: 2.1 useLocalTime; only accepted when supported (K01.FR.123).
        randomized_delay_s: 2.1 randomizedDelay, 0 = none; only accepted when supported
            (K01.FR.124) and for Tx/TxDefault profiles (K01.FR.95).
        signature_id, digest_value: 2.1 signature references for ISO 15118 price schedules.
        price_schedule_json: the schedule's ``salesTariff`` / ``absolutePriceSchedule`` /
            ``priceLevelSchedule`` as JSON text, kept for reporting and the EV hand-off only.
    """

    id: int
    rate_unit: RateUnit
    periods: tuple[SchedulePeriod, ...]
    start_schedule: datetime | None = None
    duration_s: int | None = None
    min_charging_rate: float | None = None
    limit_at_soc: LimitAtSoc | None = None
    power_tolerance: float | None = None
    use_local_time: bool = False
    randomized_delay_s: int = 0
    signature_id: int | None = None
    digest_value: str | None = None
    price_schedule_json: str | None = None

    def __post_init__(self) -> None:
        _aware("ChargingSchedule.start_schedule", self.start_schedule)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargingProfile:
    """ChargingProfileType together with the EVSE it was set on and where it came from.

    Attributes:
        id: unique within the station; external constraints may use negative ids (K11.FR.06).
        stack_level: >= 0; higher wins within a purpose (schema description).
        purpose: ChargingProfilePurposeEnumType.
        kind: ChargingProfileKindEnumType.
        schedules: 1-3 schedules; more than one only for ISO 15118 TxProfiles (K01.FR.34). The
            composite schedule uses the first unless told otherwise (K15.FR.22).
        evse_id: the SetChargingProfileRequest ``evseId``: 0 = the station as a whole
            (ChargingStationMax, external constraints) or every EVSE (TxDefault).
        recurrency: Daily or Weekly, for Recurring profiles.
        valid_from: absent = valid from :attr:`received_at` ("as soon as it is received").
        valid_to: absent = valid until replaced.
        transaction_id: the transaction a TxProfile belongs to; ``None`` for a TxProfile that
            came with RequestStartTransaction until :meth:`ProfileSet.bind_transaction`.
        max_offline_duration_s: 2.1: seconds the profile stays valid while offline.
        invalid_after_offline_duration: 2.1: after that, invalid for good (not only while offline).
        dyn_update_interval_s: 2.1 Dynamic: pull an update this long after the last one (K28).
        dyn_update_time: 2.1 Dynamic: when the values were last updated (K28.FR.09).
        price_schedule_signature: 2.1 priceScheduleSignature, carried for ISO 15118.
        limit_source: ChargingLimitSource of whoever installed it (CSO for the CSMS); reported
            in ReportChargingProfiles and used by GetChargingProfiles criteria (K09).
        received_at: when the station accepted it; the start of validity without ``valid_from``.
    """

    id: int
    stack_level: int
    purpose: ChargingProfilePurpose
    kind: ChargingProfileKind
    schedules: tuple[ChargingSchedule, ...]
    evse_id: int = 0
    recurrency: RecurrencyKind | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    transaction_id: str | None = None
    max_offline_duration_s: int | None = None
    invalid_after_offline_duration: bool = False
    dyn_update_interval_s: int | None = None
    dyn_update_time: datetime | None = None
    price_schedule_signature: str | None = None
    limit_source: str = ChargingLimitSource.CSO
    received_at: datetime | None = None

    def __post_init__(self) -> None:
        _aware("ChargingProfile.valid_from", self.valid_from)
        _aware("ChargingProfile.valid_to", self.valid_to)
        _aware("ChargingProfile.dyn_update_time", self.dyn_update_time)
        _aware("ChargingProfile.received_at", self.received_at)

    @property
    def schedule(self) -> ChargingSchedule:
        """The first schedule: the one the composite schedule uses by default."""
        return self.schedules[0]


@dataclass(frozen=True, slots=True)
class TransactionInfo:
    """The transaction on an EVSE, as the composite schedule needs it.

    ``started_at`` anchors Relative profiles ("relative to start of charging", schema
    description of startSchedule); the shell passes the transaction start, or the instant
    energy transfer started if it prefers that reading.
    """

    transaction_id: str
    started_at: datetime

    def __post_init__(self) -> None:
        _aware("TransactionInfo.started_at", self.started_at)


def _negative(value: float | None) -> bool:
    return value is not None and not math.isnan(value) and value < 0


def from_legacy_negative_limit(period: SchedulePeriod) -> SchedulePeriod:
    """Turn a 2.0.1-style negative ``limit`` into the 2.1 fields that mean the same.

    "Over ocpp2.0.1, a negative limit is a discharge limit" (DESIGN.md), and the 2.1 schema
    keeps it "only ... for backwards compatibility with older systems that use a negative value
    to specify a discharging limit". A positive limit lets the vehicle charge as hard as it can
    up to the limit; the negative limit is read the same way in the other direction: discharge
    as hard as possible, down to the limit. So a period with ``limit = L < 0`` becomes

    * ``limit = 0``: no charging (0 is "no power", never a change of direction);
    * ``discharge_limit = L``: discharge allowed down to ``L``;
    * ``setpoint = L`` and ``operation_mode = CentralSetpoint``: the station follows ``L``,
      clamped by every other limit (EVSE and vehicle ratings, station maximum, grid).

    The same applies per phase to ``limit_l2``/``limit_l3``. Any other period (``limit >= 0``
    or absent) is returned unchanged, so the function is idempotent.

    Args:
        period: a period as received.

    Returns:
        The period the composite schedule evaluates.
    """
    if period.limit_l2 is None and period.limit_l3 is None:
        if period.limit is None or not period.limit < 0:
            return period  # the common case, decided without further calls
    elif not (_negative(period.limit) or _negative(period.limit_l2) or _negative(period.limit_l3)):
        return period

    def split(value: float | None) -> tuple[float | None, float | None]:
        if value is not None and value < 0:
            return 0.0, value
        return value, None

    limit, discharge = split(period.limit)
    limit_l2, discharge_l2 = split(period.limit_l2)
    limit_l3, discharge_l3 = split(period.limit_l3)
    return replace(
        period,
        limit=limit,
        limit_l2=limit_l2,
        limit_l3=limit_l3,
        discharge_limit=discharge,
        discharge_limit_l2=discharge_l2,
        discharge_limit_l3=discharge_l3,
        setpoint=discharge if discharge is not None else 0.0,
        setpoint_l2=discharge_l2,
        setpoint_l3=discharge_l3,
        operation_mode=OperationMode.CENTRAL_SETPOINT,
    )
