"""The availability core (G01, G03, G04): table tests and a hypothesis state-machine check."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from station.availability import AvailabilityModel, ConnectorStatus

CONNECTORS = [(1, 1), (2, 1)]


def model(stored: dict[tuple[int, int], bool] | None = None) -> AvailabilityModel:
    return AvailabilityModel(CONNECTORS, stored or {})


def test_everything_starts_available() -> None:
    assert set(model().statuses().values()) == {ConnectorStatus.AVAILABLE}


def test_evse_inoperative_changes_only_that_evse() -> None:
    m = model()
    outcome = m.request(1, None, operative=False, busy=frozenset())
    assert outcome.status == "Accepted"
    assert outcome.changed == ((1, 1),)
    assert m.status(1, 1) is ConnectorStatus.UNAVAILABLE
    assert m.status(2, 1) is ConnectorStatus.AVAILABLE


def test_station_inoperative_changes_every_connector() -> None:
    m = model()
    outcome = m.request(None, None, operative=False, busy=frozenset())
    assert outcome.changed == ((1, 1), (2, 1))


def test_same_state_again_is_accepted_and_changes_nothing() -> None:
    m = model()
    assert m.request(1, 1, operative=True, busy=frozenset()).changed == ()


def test_unknown_parts_are_rejected() -> None:
    m = model()
    assert m.request(3, None, operative=False, busy=frozenset()).status == "Rejected"
    assert m.request(1, 2, operative=False, busy=frozenset()).status == "Rejected"


def test_busy_evse_is_scheduled_until_its_transaction_ends() -> None:
    m = model()
    outcome = m.request(1, None, operative=False, busy=frozenset({1}))
    assert (outcome.status, outcome.changed) == ("Scheduled", ())
    assert m.status(1, 1) is ConnectorStatus.AVAILABLE
    assert m.transaction_ended(2) == ()
    assert m.transaction_ended(1) == ((1, 1),)
    assert m.status(1, 1) is ConnectorStatus.UNAVAILABLE


def test_back_to_operative_is_never_scheduled() -> None:
    m = model({(1, 0): False})
    assert m.request(1, None, operative=True, busy=frozenset({1})).status == "Accepted"


def test_stored_state_is_restored_and_unknown_keys_ignored() -> None:
    m = model({(1, 0): False, (9, 9): False})
    assert m.status(1, 1) is ConnectorStatus.UNAVAILABLE
    assert (9, 9) not in m.operative


def test_status_precedence() -> None:
    m = model()
    assert m.set_occupied(1, 1, True)
    assert m.status(1, 1) is ConnectorStatus.OCCUPIED
    m.request(1, None, operative=False, busy=frozenset())
    assert m.status(1, 1) is ConnectorStatus.UNAVAILABLE
    assert m.set_faulted(1, 1, True)
    assert m.status(1, 1) is ConnectorStatus.FAULTED


requests = st.tuples(
    st.sampled_from([None, 1, 2, 3]),
    st.sampled_from([None, 1, 2]),
    st.booleans(),
    st.frozensets(st.sampled_from([1, 2])),
)


@given(st.lists(requests, max_size=30))
def test_reported_changes_are_exactly_the_status_differences(steps: list) -> None:  # type: ignore[type-arg]
    m = model()
    for evse_id, connector_id, operative, busy in steps:
        before = m.statuses()
        outcome = m.request(evse_id, connector_id, operative, busy)
        after = m.statuses()
        assert set(outcome.changed) == {c for c in CONNECTORS if before[c] != after[c]}
        if outcome.status != "Accepted":
            assert before == after
        # A connector is Unavailable exactly when it or a parent is inoperative.
        for evse, conn in CONNECTORS:
            inoperative = not (
                m.operative[(0, 0)] and m.operative[(evse, 0)] and m.operative[(evse, conn)]
            )
            assert (after[(evse, conn)] is ConnectorStatus.UNAVAILABLE) == inoperative


def test_reserved_outranks_occupied() -> None:
    """G01.FR.09 (errata 2025-01 §2.21): a cable plugged into a Reserved connector does not
    change its status; Occupied once the reservation is gone."""
    m = model()
    assert m.set_reserved(1, 1, True)
    assert not m.set_occupied(1, 1, True)
    assert m.status(1, 1) is ConnectorStatus.RESERVED
    assert m.set_reserved(1, 1, False)
    assert m.status(1, 1) is ConnectorStatus.OCCUPIED
