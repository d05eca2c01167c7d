"""Smart charging, pure: profile validation, storage semantics, stacking and composite schedules.

No I/O, no asyncio, no ``ocpp`` imports; ``now`` is always an argument (DESIGN.md). The OCPP
shell converts payloads onto :mod:`station.smartcharging.model` types, asks :func:`validate`,
keeps a :class:`ProfileSet` (persisted by ``store/``), and hands :func:`composite_schedule`
results to GetCompositeSchedule and to the energy manager, sleeping until
:func:`next_change_after`. Sibling packages import only the names in ``__all__``.

``service.py`` is that shell (asyncio timer, ports, the energy manager call); it is not part of the
pure core and not re-exported here: ``app.py`` and the OCPP handlers import it by module path.
"""

from station.smartcharging.codec import profile_from_json, profile_to_json
from station.smartcharging.composite import (
    CompositePeriod,
    CompositeSchedule,
    ElectricalParams,
    PeriodValue,
    composite_schedule,
    convert_rate,
    limit_at,
    next_change_after,
    to_legacy_limit,
)
from station.smartcharging.dynamic import (
    ScheduleUpdate,
    apply_schedule_update,
    next_pull,
    pulls_due,
)
from station.smartcharging.external import (
    ExternalLimit,
    external_profile,
    external_profile_id,
    limit_of,
    significant_change,
)
from station.smartcharging.model import (
    ChargingLimitSource,
    ChargingProfile,
    ChargingProfileKind,
    ChargingProfilePurpose,
    ChargingSchedule,
    FreqWattPoint,
    LimitAtSoc,
    OcppVersion,
    OperationMode,
    RateUnit,
    RecurrencyKind,
    SchedulePeriod,
    SignalWattPoint,
    SmartChargingValueError,
    TransactionInfo,
    from_legacy_negative_limit,
)
from station.smartcharging.needs import (
    BIDIRECTIONAL_MODES,
    ChargingNeeds,
    ChargingNeedsStatus,
    EnergyTransferMode,
    discharge_permitted,
)
from station.smartcharging.store import (
    ClearCriteria,
    ProfileCriteria,
    ProfileSet,
    ReportBatch,
    report_batches,
)
from station.smartcharging.validation import (
    ReasonCode,
    Rejection,
    SmartChargingLimits,
    validate,
)

__all__ = [
    "BIDIRECTIONAL_MODES",
    "ChargingLimitSource",
    "ChargingNeeds",
    "ChargingNeedsStatus",
    "ChargingProfile",
    "ChargingProfileKind",
    "ChargingProfilePurpose",
    "ChargingSchedule",
    "ClearCriteria",
    "CompositePeriod",
    "CompositeSchedule",
    "ElectricalParams",
    "EnergyTransferMode",
    "ExternalLimit",
    "FreqWattPoint",
    "LimitAtSoc",
    "OcppVersion",
    "OperationMode",
    "PeriodValue",
    "ProfileCriteria",
    "ProfileSet",
    "RateUnit",
    "ReasonCode",
    "RecurrencyKind",
    "Rejection",
    "ReportBatch",
    "SchedulePeriod",
    "ScheduleUpdate",
    "SignalWattPoint",
    "SmartChargingLimits",
    "SmartChargingValueError",
    "TransactionInfo",
    "apply_schedule_update",
    "composite_schedule",
    "convert_rate",
    "discharge_permitted",
    "external_profile",
    "external_profile_id",
    "from_legacy_negative_limit",
    "limit_at",
    "limit_of",
    "next_change_after",
    "next_pull",
    "profile_from_json",
    "profile_to_json",
    "pulls_due",
    "report_batches",
    "significant_change",
    "to_legacy_limit",
    "validate",
]
