"""The energy manager: every limit in, one signed power command per EVSE out.

:mod:`station.power.core` is the pure core (:func:`compute_command`); the shell that re-evaluates
it on every event and pushes the commands to the vehicle sessions and the inverter lives beside it.
Sibling packages import only the names listed in ``__all__`` (STYLE.md A2.12).
"""

from station.power.core import (
    Curve,
    EvseRating,
    ExternalInputs,
    GridState,
    OperationMode,
    PowerCommand,
    PowerInputs,
    PowerValueError,
    Reason,
    ScheduleNow,
    VehicleLimits,
    compute_command,
)

__all__ = [
    "Curve",
    "EvseRating",
    "ExternalInputs",
    "GridState",
    "OperationMode",
    "PowerCommand",
    "PowerInputs",
    "PowerValueError",
    "Reason",
    "ScheduleNow",
    "VehicleLimits",
    "compute_command",
]
