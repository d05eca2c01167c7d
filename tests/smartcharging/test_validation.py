"""SetChargingProfile validation (K01): one table row per rejection rule, and what is accepted."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from station.smartcharging import (
    ChargingProfile,
    FreqWattPoint,
    LimitAtSoc,
    OcppVersion,
    OperationMode,
    RateUnit,
    ReasonCode,
    Rejection,
    validate,
)
from tests.smartcharging.builders import (
    HOUR,
    T0,
    Kind,
    Purpose,
    at,
    limits,
    period,
    profile,
    schedule,
)

Mode = OperationMode
V201 = OcppVersion.V2_0_1
R = ReasonCode


def check(candidate: ChargingProfile, **options: Any) -> Rejection | None:
    kwargs: dict[str, Any] = {
        "evse_ids": {1, 2},
        "active_transactions": {1: "tx-1"},
        "installed": [],
        "limits": limits(),
        "now": T0,
    }
    if "version" in options:
        kwargs["limits"] = limits(options.pop("version"), **options.pop("limit_fields", {}))
    elif "limit_fields" in options:
        kwargs["limits"] = limits(**options.pop("limit_fields"))
    kwargs.update(options)
    return validate(candidate, **kwargs)


def tx(*periods: Any, **fields: Any) -> ChargingProfile:
    """A TxProfile of the running transaction on EVSE 1."""
    sched = fields.pop("schedules", None) or schedule(*periods or ((0, 16.0),), start=T0)
    fields.setdefault("transaction_id", "tx-1")
    return profile(5, Purpose.TX_PROFILE, schedules=sched, **fields)


def mode_period(mode: OperationMode, **fields: Any) -> Any:
    return period(0, fields.pop("limit", None), operation_mode=mode, **fields)


def station_max(**fields: Any) -> ChargingProfile:
    return profile(1, Purpose.CHARGING_STATION_MAX_PROFILE, evse=0, **fields)


# Ten TxDefaultProfiles at the same stack level, one per hour: the store is full (entries_max=10).
HOURLY = [profile(i, valid_from=at(i * HOUR), valid_to=at((i + 1) * HOUR)) for i in range(10)]

REJECTED = [
    # --- 2.1-only content over 2.0.1
    pytest.param(
        profile(kind=Kind.DYNAMIC, schedules=schedule()),
        {"version": V201},
        R.UNSUPPORTED_PARAM,
        id="201-dynamic",
    ),
    pytest.param(
        profile(purpose=Purpose.PRIORITY_CHARGING),
        {"version": V201},
        R.UNSUPPORTED_PARAM,
        id="201-priority",
    ),
    pytest.param(
        tx(period(0, 16.0, discharge_limit=-16.0)),
        {"version": V201},
        R.UNSUPPORTED_PARAM,
        id="201-discharge-limit",
    ),
    pytest.param(
        tx(mode_period(Mode.IDLE, limit=0.0)),
        {"version": V201},
        R.UNSUPPORTED_PARAM,
        id="201-operation-mode",
    ),
    pytest.param(
        profile(max_offline_duration_s=60),
        {"version": V201},
        R.UNSUPPORTED_PARAM,
        id="201-max-offline",
    ),
    pytest.param(
        profile(schedules=schedule(start=T0, limit_at_soc=LimitAtSoc(80, 8.0))),
        {"version": V201},
        R.UNSUPPORTED_PARAM,
        id="201-limit-at-soc",
    ),
    # --- purpose and kind
    pytest.param(
        profile(purpose=Purpose.CHARGING_STATION_EXTERNAL_CONSTRAINTS, evse=0),
        {},
        R.INVALID_PROFILE,
        id="external-by-csms-K01.FR.22",
    ),
    pytest.param(
        profile(purpose=Purpose.LOCAL_GENERATION, evse=0),
        {"limit_fields": {"supported_additional_purposes": frozenset()}},
        R.UNSUPPORTED_PURPOSE,
        id="unsupported-purpose-K01.FR.120",
    ),
    pytest.param(
        profile(kind=Kind.DYNAMIC, schedules=schedule()),
        {"limit_fields": {"supports_dynamic_profiles": False}},
        R.UNSUPPORTED_KIND,
        id="unsupported-dynamic-K01.FR.121",
    ),
    pytest.param(
        profile(dyn_update_interval_s=60),
        {},
        R.INVALID_PROFILE,
        id="dyn-fields-not-dynamic-K01.FR.122",
    ),
    pytest.param(
        profile(max_offline_duration_s=60),
        {"limit_fields": {"supports_max_offline_duration": False}},
        R.UNSUPPORTED_PARAM,
        id="max-offline-unsupported",
    ),
    pytest.param(
        profile(max_offline_duration_s=-1), {}, R.INVALID_PROFILE, id="max-offline-negative"
    ),
    pytest.param(
        profile(),
        {"from_request_start_transaction": True},
        R.INVALID_PROFILE,
        id="request-start-needs-txprofile",
    ),
    pytest.param(
        station_max(kind=Kind.RELATIVE, schedules=schedule()),
        {},
        R.INVALID_PROFILE,
        id="station-max-relative-K01.FR.38",
    ),
    pytest.param(
        replace(profile(kind=Kind.RECURRING), recurrency=None),
        {},
        R.INVALID_PROFILE,
        id="recurring-without-recurrency",
    ),
    pytest.param(
        profile(transaction_id="tx-1"), {}, R.INVALID_PROFILE, id="transaction-id-on-txdefault"
    ),
    pytest.param(
        profile(valid_from=at(HOUR), valid_to=at(HOUR)),
        {},
        R.INVALID_PROFILE,
        id="valid-from-not-before-valid-to",
    ),
    pytest.param(
        profile(schedules=(schedule(start=T0),) * 4), {}, R.INVALID_PROFILE, id="four-schedules"
    ),
    pytest.param(
        profile(schedules=(schedule(start=T0),) * 2),
        {},
        R.INVALID_PROFILE,
        id="two-schedules-not-txprofile",
    ),
    # --- EVSE
    pytest.param(profile(evse=-1), {}, R.INVALID_VALUE, id="negative-evse"),
    pytest.param(profile(evse=9), {}, R.UNKNOWN_EVSE, id="unknown-evse-K01.FR.28"),
    pytest.param(
        profile(1, Purpose.CHARGING_STATION_MAX_PROFILE, evse=1),
        {},
        R.INVALID_VALUE,
        id="station-max-on-an-evse",
    ),
    pytest.param(
        profile(5, Purpose.TX_PROFILE, evse=0, transaction_id="tx-1"),
        {},
        R.INVALID_VALUE,
        id="txprofile-on-evse0-K01.FR.16",
    ),
    # --- identity and stack level
    pytest.param(
        profile(3),
        {"limit_fields": {"max_external_constraints_id": 10}},
        R.INVALID_PROFILE_ID,
        id="id-reserved-K01.FR.81",
    ),
    pytest.param(
        profile(-3),
        {
            "installed": [
                profile(
                    -3, Purpose.CHARGING_STATION_EXTERNAL_CONSTRAINTS, evse=0, limit_source="EMS"
                )
            ]
        },
        R.DUPLICATE_PROFILE,
        id="replace-external-K01.FR.05",
    ),
    pytest.param(profile(stack=-1), {}, R.INVALID_STACK_LEVEL, id="stack-level-negative"),
    pytest.param(profile(stack=9), {}, R.INVALID_STACK_LEVEL, id="stack-level-above-max"),
    # --- schedule
    pytest.param(
        profile(schedules=schedule(unit=RateUnit.W, start=T0)),
        {"limit_fields": {"supported_rate_units": frozenset({RateUnit.A})}},
        R.UNSUPPORTED_RATE_UNIT,
        id="rate-unit-K01.FR.26",
    ),
    pytest.param(
        profile(schedules=schedule()), {}, R.INVALID_SCHEDULE, id="absolute-without-start-K01.FR.40"
    ),
    pytest.param(
        profile(kind=Kind.RECURRING, schedules=schedule()),
        {},
        R.INVALID_SCHEDULE,
        id="recurring-without-start-K01.FR.40",
    ),
    pytest.param(
        profile(kind=Kind.RELATIVE, schedules=schedule(start=T0)),
        {},
        R.INVALID_SCHEDULE,
        id="relative-with-start-K01.FR.41",
    ),
    pytest.param(
        profile(schedules=schedule(start=T0, duration_s=0)),
        {},
        R.INVALID_SCHEDULE,
        id="duration-zero",
    ),
    pytest.param(
        profile(purpose=Purpose.PRIORITY_CHARGING, schedules=schedule(start=T0, duration_s=60)),
        {},
        R.INVALID_SCHEDULE,
        id="priority-with-duration-K01.FR.70",
    ),
    pytest.param(
        profile(schedules=schedule(start=T0, min_charging_rate=-1.0)),
        {},
        R.INVALID_SCHEDULE,
        id="min-rate-negative",
    ),
    pytest.param(
        profile(schedules=schedule(start=T0, power_tolerance=float("inf"))),
        {},
        R.INVALID_SCHEDULE,
        id="power-tolerance-inf",
    ),
    pytest.param(
        station_max(schedules=schedule(start=T0, randomized_delay_s=60)),
        {"limit_fields": {"supports_randomized_delay": True}},
        R.INVALID_SCHEDULE,
        id="randomized-delay-not-tx-K01.FR.95",
    ),
    pytest.param(
        profile(schedules=schedule(start=T0, randomized_delay_s=60)),
        {},
        R.INVALID_SCHEDULE,
        id="randomized-delay-unsupported-K01.FR.124",
    ),
    pytest.param(
        profile(schedules=schedule(start=T0, randomized_delay_s=-5)),
        {},
        R.INVALID_SCHEDULE,
        id="randomized-delay-negative",
    ),
    pytest.param(
        profile(schedules=schedule(start=T0, use_local_time=True)),
        {},
        R.INVALID_SCHEDULE,
        id="local-time-unsupported-K01.FR.123",
    ),
    pytest.param(
        profile(schedules=schedule(start=T0, limit_at_soc=LimitAtSoc(80, 8.0))),
        {"limit_fields": {"supports_limit_at_soc": False}},
        R.INVALID_SCHEDULE,
        id="limit-at-soc-unsupported-K01.FR.125",
    ),
    pytest.param(
        profile(schedules=schedule(start=T0, limit_at_soc=LimitAtSoc(101, 8.0))),
        {},
        R.INVALID_SCHEDULE,
        id="limit-at-soc-range",
    ),
    pytest.param(
        profile(schedules=replace(schedule(start=T0), periods=())),
        {},
        R.INVALID_SCHEDULE,
        id="no-periods",
    ),
    pytest.param(
        profile(schedules=schedule(*[(i * 60, 16.0) for i in range(25)], start=T0)),
        {},
        R.TOO_MANY_ELEMENTS,
        id="periods-per-schedule",
    ),
    pytest.param(
        profile(schedules=schedule((60, 16.0), start=T0)),
        {},
        R.INVALID_SCHEDULE,
        id="first-start-not-0-K01.FR.31",
    ),
    pytest.param(
        profile(schedules=schedule((0, 16.0), (600, 10.0), (600, 8.0), start=T0)),
        {},
        R.INVALID_SCHEDULE,
        id="starts-not-increasing-K01.FR.35",
    ),
    pytest.param(
        profile(kind=Kind.DYNAMIC, schedules=schedule((0, 16.0), (60, 8.0))),
        {},
        R.INVALID_SCHEDULE,
        id="dynamic-two-periods",
    ),
    # --- period
    pytest.param(
        profile(schedules=schedule((0, float("nan")), start=T0)),
        {},
        R.INVALID_SCHEDULE,
        id="nan-limit",
    ),
    pytest.param(
        profile(schedules=schedule(period(0, None), start=T0)),
        {},
        R.INVALID_SCHEDULE,
        id="charging-only-needs-limit",
    ),
    pytest.param(
        profile(schedules=schedule(period(0, None), start=T0)),
        {"version": V201},
        R.INVALID_SCHEDULE,
        id="201-needs-limit",
    ),
    pytest.param(
        profile(schedules=schedule(period(0, 100.0, number_phases=3), start=T0)),
        {"limit_fields": {"dc_evse_ids": frozenset({1})}},
        R.NO_PHASE_FOR_DC,
        id="phases-on-dc-K01.FR.44",
    ),
    pytest.param(
        profile(schedules=schedule(period(0, 100.0, number_phases=3), start=T0)),
        {"version": V201, "limit_fields": {"dc_evse_ids": frozenset({1})}},
        R.INVALID_SCHEDULE,
        id="201-phases-on-dc-K01.FR.44",
    ),
    pytest.param(
        profile(schedules=schedule(period(0, 16.0, number_phases=4), start=T0)),
        {},
        R.INVALID_SCHEDULE,
        id="number-phases-4",
    ),
    pytest.param(
        profile(schedules=schedule(period(0, 16.0, number_phases=3), start=T0)),
        {"limit_fields": {"supply_phases": 1}},
        R.INVALID_SCHEDULE,
        id="number-phases-above-supply-K01.FR.45",
    ),
    pytest.param(
        profile(schedules=schedule(period(0, 16.0, number_phases=3, phase_to_use=2), start=T0)),
        {"limit_fields": {"ac_phase_switching_supported": True}},
        R.INVALID_SCHEDULE,
        id="phase-to-use-needs-one-phase-K01.FR.19",
    ),
    pytest.param(
        profile(schedules=schedule(period(0, 16.0, number_phases=1, phase_to_use=2), start=T0)),
        {},
        R.INVALID_SCHEDULE,
        id="phase-to-use-needs-switching-K01.FR.20",
    ),
    pytest.param(
        profile(schedules=schedule(period(0, 16.0, number_phases=1, phase_to_use=4), start=T0)),
        {"limit_fields": {"ac_phase_switching_supported": True}},
        R.INVALID_SCHEDULE,
        id="phase-to-use-range",
    ),
    pytest.param(
        tx(mode_period(Mode.CENTRAL_SETPOINT, setpoint=5.0, limit_l2=16.0)),
        {},
        R.PHASE_CONFLICT,
        id="l2-without-base-K01.FR.146",
    ),
    pytest.param(
        profile(schedules=schedule(period(0, 16.0, limit_l2=16.0, limit_l3=16.0), start=T0)),
        {},
        R.PHASE_CONFLICT,
        id="l2-not-in-txprofile-K01.FR.144",
    ),
    pytest.param(
        tx(period(0, 16.0, discharge_limit=5.0)),
        {},
        R.INVALID_SCHEDULE,
        id="discharge-limit-positive",
    ),
    pytest.param(
        tx(period(0, -16.0, limit_l2=16.0)), {}, R.INVALID_SCHEDULE, id="limit-signs-differ"
    ),
    pytest.param(
        tx(period(0, -16.0, discharge_limit=-10.0)),
        {},
        R.INVALID_SCHEDULE,
        id="negative-limit-with-discharge-limit",
    ),
    pytest.param(
        station_max(
            schedules=schedule(
                mode_period(Mode.CENTRAL_SETPOINT, limit=32.0, setpoint=10.0), start=T0
            )
        ),
        {},
        R.INVALID_OPERATION_MODE,
        id="mode-not-for-purpose-K01.FR.111",
    ),
    pytest.param(
        tx(mode_period(Mode.CENTRAL_FREQUENCY, setpoint=0.0)),
        {"limit_fields": {"supported_operation_modes": frozenset({Mode.CENTRAL_SETPOINT})}},
        R.INVALID_OPERATION_MODE,
        id="mode-unsupported-K01.FR.115",
    ),
    pytest.param(
        tx(period(0, 16.0, setpoint=8.0)), {}, R.INVALID_SCHEDULE, id="setpoint-under-charging-only"
    ),
    pytest.param(
        tx(mode_period(Mode.CENTRAL_SETPOINT, limit=16.0)),
        {},
        R.INVALID_SCHEDULE,
        id="central-setpoint-needs-setpoint",
    ),
    pytest.param(
        tx(
            mode_period(Mode.LOCAL_FREQUENCY, v2x_baseline=0.0),
            schedules=schedule(
                mode_period(Mode.LOCAL_FREQUENCY, v2x_baseline=0.0), unit=RateUnit.W, start=T0
            ),
        ),
        {},
        R.NO_FREQ_WATT_CURVE,
        id="local-frequency-needs-curve-Q08.FR.02",
    ),
    pytest.param(
        tx(
            schedules=schedule(
                mode_period(
                    Mode.LOCAL_FREQUENCY,
                    v2x_baseline=0.0,
                    v2x_freq_watt_curve=(FreqWattPoint(49.8, -10.0), FreqWattPoint(50.2, 10.0)),
                ),
                start=T0,
            )
        ),
        {},
        R.INVALID_SCHEDULE,
        id="local-frequency-needs-watts-Q08.FR.05",
    ),
    pytest.param(
        tx(mode_period(Mode.CENTRAL_SETPOINT, setpoint=0.0, evse_sleep=True)),
        {},
        R.INVALID_SCHEDULE,
        id="evse-sleep-outside-idle-K01.FR.126",
    ),
    pytest.param(
        tx(
            schedules=schedule(
                mode_period(
                    Mode.LOCAL_FREQUENCY,
                    v2x_baseline=0.0,
                    v2x_freq_watt_curve=(FreqWattPoint(50.0, -10.0), FreqWattPoint(50.0, 10.0)),
                ),
                unit=RateUnit.W,
                start=T0,
            )
        ),
        {},
        R.INVALID_SCHEDULE,
        id="curve-duplicate-points",
    ),
    pytest.param(
        tx(mode_period(Mode.CENTRAL_SETPOINT, limit=10.0, setpoint=12.0)),
        {},
        R.INVALID_SCHEDULE,
        id="setpoint-above-limit",
    ),
    pytest.param(
        tx(mode_period(Mode.CENTRAL_SETPOINT, discharge_limit=-10.0, setpoint=-12.0)),
        {},
        R.INVALID_SCHEDULE,
        id="setpoint-below-discharge-limit",
    ),
    # --- phase conflicts with installed profiles
    pytest.param(
        tx(period(0, 16.0, number_phases=1, phase_to_use=3)),
        {
            "installed": [
                station_max(
                    schedules=schedule(period(0, 32.0, number_phases=1, phase_to_use=1), start=T0)
                )
            ],
            "limit_fields": {"ac_phase_switching_supported": True},
        },
        R.PHASE_CONFLICT,
        id="phase-to-use-conflict-K01.FR.141",
    ),
    # --- transactions
    pytest.param(
        tx(transaction_id=None),
        {},
        R.MISSING_PARAM,
        id="txprofile-without-transaction-id-K01.FR.03",
    ),
    pytest.param(
        tx(evse=2, transaction_id="tx-1"), {}, R.TX_NOT_FOUND, id="no-transaction-on-evse-K01.FR.09"
    ),
    pytest.param(tx(transaction_id="tx-2"), {}, R.TX_NOT_FOUND, id="other-transaction-K01.FR.33"),
    # --- duplicates and entries
    pytest.param(
        profile(2, stack=1),
        {"installed": [profile(1, stack=1)]},
        R.DUPLICATE_PROFILE,
        id="duplicate-K01.FR.06",
    ),
    pytest.param(
        profile(2, stack=1, valid_from=at(HOUR)),
        {"installed": [profile(1, stack=1, valid_to=at(2 * HOUR))]},
        R.DUPLICATE_PROFILE,
        id="duplicate-overlapping-validity-K01.FR.06",
    ),
    pytest.param(
        replace(tx(), id=6, stack_level=0),
        {"installed": [tx()]},
        R.DUPLICATE_PROFILE,
        id="duplicate-txprofile-K01.FR.39",
    ),
    pytest.param(
        profile(2, evse=0, stack=1),
        {"installed": [profile(1, evse=1, stack=1)]},
        R.DUPLICATE_PROFILE,
        id="txdefault-evse0-vs-evse-K01.FR.52",
    ),
    pytest.param(
        profile(2, evse=1, stack=1),
        {"installed": [profile(1, evse=0, stack=1)]},
        R.DUPLICATE_PROFILE,
        id="txdefault-evse-vs-evse0-K01.FR.53",
    ),
    pytest.param(
        profile(99, valid_from=at(20 * HOUR)),
        {"installed": HOURLY},
        R.TOO_MANY_ELEMENTS,
        id="entries-full",
    ),
]


@pytest.mark.parametrize(("candidate", "options", "code"), REJECTED)
def test_rejected(candidate: ChargingProfile, options: dict[str, Any], code: ReasonCode) -> None:
    rejection = check(candidate, **options)
    assert rejection is not None, "expected a rejection"
    assert (rejection.status, rejection.reason_code) == ("Rejected", code), (
        rejection.additional_info
    )
    assert rejection.additional_info
    assert len(rejection.additional_info) <= 512


def test_every_reason_code_has_a_case() -> None:
    used = {case.values[2] for case in REJECTED}
    assert used == set(ReasonCode)


def test_reason_codes_fit_the_schema() -> None:
    assert all(len(code.value) <= 20 for code in ReasonCode)  # StatusInfoType.reasonCode maxLength


def test_long_additional_info_is_cut_to_the_schema_length() -> None:
    assert len(Rejection(R.INVALID_VALUE, "x" * 2000).additional_info) == 512


ACCEPTED = [
    pytest.param(profile(), {}, id="plain-txdefault"),
    pytest.param(station_max(schedules=schedule((0, 32.0), start=T0)), {}, id="station-max"),
    pytest.param(
        profile(1, stack=1), {"installed": [profile(1, stack=1)]}, id="same-id-replaces-K01.FR.05"
    ),
    pytest.param(
        profile(2, stack=1, valid_from=at(2 * HOUR)),
        {"installed": [profile(1, stack=1, valid_to=at(2 * HOUR))]},
        id="same-stack-no-overlap",
    ),
    pytest.param(
        profile(2, stack=1, evse=2),
        {"installed": [profile(1, stack=1, evse=1)]},
        id="same-stack-other-evse",
    ),
    pytest.param(tx(), {}, id="txprofile-of-running-transaction"),
    pytest.param(
        replace(tx(), id=6, stack_level=1), {"installed": [tx()]}, id="second-txprofile-other-stack"
    ),
    pytest.param(tx(period(0, -16.0)), {"version": V201}, id="201-negative-limit-is-discharge"),
    pytest.param(tx(period(0, -16.0)), {}, id="21-legacy-negative-limit"),
    pytest.param(
        tx(evse=2, transaction_id=None),
        {"from_request_start_transaction": True},
        id="request-start-transaction",
    ),
    pytest.param(
        profile(-1, Purpose.CHARGING_STATION_EXTERNAL_CONSTRAINTS, evse=0, limit_source="EMS"),
        {"limit_fields": {"external_constraints_allowed": True}},
        id="external-limit-set-locally",
    ),
    pytest.param(tx(mode_period(Mode.IDLE, evse_sleep=True)), {}, id="idle-with-evse-sleep"),
    pytest.param(
        tx(
            schedules=schedule(
                mode_period(
                    Mode.LOCAL_FREQUENCY,
                    v2x_baseline=0.0,
                    v2x_freq_watt_curve=(FreqWattPoint(50.2, 10.0), FreqWattPoint(49.8, -10.0)),
                ),
                unit=RateUnit.W,
                start=T0,
            )
        ),
        {},
        id="local-frequency",
    ),
    pytest.param(
        tx(
            mode_period(
                Mode.CENTRAL_SETPOINT,
                limit=16.0,
                discharge_limit=-16.0,
                setpoint=-16.0,
                setpoint_reactive=2.0,
            )
        ),
        {},
        id="central-setpoint-at-the-bound",
    ),
    pytest.param(
        tx(period(0, 16.0, limit_l2=12.0, limit_l3=10.0)), {}, id="per-phase-limits-in-txprofile"
    ),
    pytest.param(
        profile(schedules=schedule(period(0, 100.0, number_phases=3), start=T0)),
        {"limit_fields": {"dc_evse_ids": frozenset({1}), "dc_input_phase_control": True}},
        id="dc-input-phase-control",
    ),
    pytest.param(
        tx(
            schedules=(
                schedule(start=T0),
                schedule(start=T0, schedule_id=2),
                schedule(start=T0, schedule_id=3),
            )
        ),
        {},
        id="iso15118-three-schedules",
    ),
    pytest.param(
        profile(
            kind=Kind.DYNAMIC,
            schedules=schedule((0, 16.0), duration_s=60),
            dyn_update_interval_s=30,
        ),
        {},
        id="dynamic",
    ),
    pytest.param(
        profile(kind=Kind.RECURRING, schedules=schedule(start=T0)),
        {"version": V201},
        id="201-recurring",
    ),
    pytest.param(
        profile(9, valid_from=at(9 * HOUR), valid_to=at(10 * HOUR)),
        {"installed": HOURLY},
        id="entries-full-but-replacing",
    ),
]


@pytest.mark.parametrize(("candidate", "options"), ACCEPTED)
def test_accepted(candidate: ChargingProfile, options: dict[str, Any]) -> None:
    assert check(candidate, **options) is None


def test_limits_accept_version_strings() -> None:
    from station.smartcharging import SmartChargingLimits, SmartChargingValueError

    built = SmartChargingLimits(
        version="2.0.1",  # type: ignore[arg-type]
        entries_max=1,
        periods_per_schedule_max=1,
        stack_level_max=0,
    )
    assert built.version is OcppVersion.V2_0_1 and not built.v21
    with pytest.raises(ValueError):
        limits(version="1.6")  # type: ignore[arg-type]
    with pytest.raises(SmartChargingValueError):
        limits(entries_max=-1)
