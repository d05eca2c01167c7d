"""The reservations core (H01-H04): table tests, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from station.transactions.model import IdToken, IdTokenType
from station.transactions.reservations import (
    Admission,
    CancelStatus,
    EvseView,
    Reservation,
    ReservationBook,
    ReserveStatus,
)

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=15)
A = IdToken("AAA", IdTokenType.ISO14443)
B = IdToken("BBB", IdTokenType.ISO14443)
GROUP = IdToken("FLEET", IdTokenType.CENTRAL)
OTHER_GROUP = IdToken("OTHERS", IdTokenType.CENTRAL)

FREE = EvseView(connector_types=frozenset({"cCCS2"}))
CHADEMO = EvseView(connector_types=frozenset({"cG105"}))
PLUGGED = EvseView(occupied=True, connector_types=frozenset({"cCCS2"}))
IN_USE = EvseView(occupied=True, in_use=True, connector_types=frozenset({"cCCS2"}))
FAULTED = EvseView(faulted=True, connector_types=frozenset({"cCCS2"}))
INOPERATIVE = EvseView(operative=False, connector_types=frozenset({"cCCS2"}))


def res(
    reservation_id: int = 1,
    evse_id: int | None = 1,
    *,
    token: IdToken = A,
    group: IdToken | None = None,
    expires_at: datetime = LATER,
    connector_type: str | None = None,
) -> Reservation:
    return Reservation(reservation_id, token, expires_at, evse_id, group, connector_type)


@pytest.mark.parametrize(
    ("views", "request_", "kwargs", "status"),
    [
        ({1: FREE}, res(), {}, ReserveStatus.ACCEPTED),
        ({1: FAULTED}, res(), {}, ReserveStatus.FAULTED),
        ({1: INOPERATIVE}, res(), {}, ReserveStatus.UNAVAILABLE),
        ({1: PLUGGED}, res(), {}, ReserveStatus.OCCUPIED),
        ({1: IN_USE}, res(), {}, ReserveStatus.OCCUPIED),
        ({1: FREE}, res(evse_id=9), {}, ReserveStatus.REJECTED),  # unknown EVSE
        ({1: FREE}, res(), {"enabled": False}, ReserveStatus.REJECTED),
        ({1: FREE}, res(expires_at=NOW), {}, ReserveStatus.REJECTED),  # already expired
        ({1: FREE}, res(connector_type="cG105"), {}, ReserveStatus.REJECTED),
        ({1: FREE}, res(connector_type="cCCS2"), {}, ReserveStatus.ACCEPTED),
        # Without evseId (H01, NonEvseSpecific):
        ({1: FREE}, res(evse_id=None), {}, ReserveStatus.ACCEPTED),
        ({1: FREE}, res(evse_id=None), {"non_evse_specific": False}, ReserveStatus.REJECTED),
        ({1: IN_USE, 2: FREE}, res(evse_id=None), {}, ReserveStatus.ACCEPTED),
        ({1: IN_USE, 2: PLUGGED}, res(evse_id=None), {}, ReserveStatus.OCCUPIED),
        ({1: FAULTED, 2: FAULTED}, res(evse_id=None), {}, ReserveStatus.FAULTED),
        ({1: FAULTED, 2: INOPERATIVE}, res(evse_id=None), {}, ReserveStatus.UNAVAILABLE),
        ({1: FAULTED, 2: IN_USE}, res(evse_id=None), {}, ReserveStatus.OCCUPIED),
        ({1: FREE, 2: CHADEMO}, res(evse_id=None, connector_type="cG105"), {}, "Accepted"),
        ({1: FREE}, res(evse_id=None, connector_type="cG105"), {}, ReserveStatus.REJECTED),
    ],
)
def test_reserve_answers(
    views: dict[int, EvseView], request_: Reservation, kwargs: dict[str, bool], status: str
) -> None:
    book = ReservationBook()
    assert book.reserve(request_, views, NOW, **kwargs) == status
    assert len(book) == (1 if status == "Accepted" else 0)


@pytest.mark.parametrize(
    ("held", "request_", "status"),
    [
        # Another reservation of the EVSE makes it Occupied; the same id replaces it (H01).
        ([res(1)], res(2), ReserveStatus.OCCUPIED),
        ([res(1)], res(1, token=B), ReserveStatus.ACCEPTED),
        ([res(1)], res(2, evse_id=2), ReserveStatus.ACCEPTED),
        # One EVSE left and a reservation without EVSE relies on it.
        ([res(1, evse_id=None)], res(2, evse_id=2), ReserveStatus.ACCEPTED),
        ([res(1, evse_id=None), res(2, evse_id=None)], res(3, evse_id=2), ReserveStatus.OCCUPIED),
        ([res(1, evse_id=None), res(2, evse_id=None)], res(3, evse_id=None), "Occupied"),
        ([res(1, evse_id=1)], res(2, evse_id=None), ReserveStatus.ACCEPTED),
        ([res(1, evse_id=1), res(2, evse_id=2)], res(3, evse_id=None), "Occupied"),
    ],
)
def test_reserve_against_held(held: list[Reservation], request_: Reservation, status: str) -> None:
    views = {1: FREE, 2: FREE}
    book = ReservationBook()
    for reservation in held:
        assert book.reserve(reservation, views, NOW) is ReserveStatus.ACCEPTED
    assert book.reserve(request_, views, NOW) == status


def test_replacement_refused_keeps_the_old_reservation() -> None:
    book = ReservationBook()
    book.reserve(res(1, evse_id=1), {1: FREE, 2: PLUGGED}, NOW)
    assert book.reserve(res(1, evse_id=2), {1: FREE, 2: PLUGGED}, NOW) is ReserveStatus.OCCUPIED
    assert book.get(1) == res(1, evse_id=1)
    # Replaced by a reservation elsewhere: the first EVSE is free again.
    assert book.reserve(res(1, evse_id=2), {1: FREE, 2: FREE}, NOW) is ReserveStatus.ACCEPTED
    assert book.reserved_evses({1: FREE, 2: FREE}) == {2}


def test_cancel() -> None:
    book = ReservationBook()
    book.reserve(res(7), {1: FREE}, NOW)
    assert book.cancel(8) is CancelStatus.REJECTED
    assert book.cancel(7) is CancelStatus.ACCEPTED
    assert book.cancel(7) is CancelStatus.REJECTED
    assert len(book) == 0


def test_expiry() -> None:
    book = ReservationBook()
    views = {1: FREE, 2: FREE}
    book.reserve(res(1, evse_id=1, expires_at=NOW + timedelta(seconds=10)), views, NOW)
    book.reserve(res(2, evse_id=2, expires_at=NOW + timedelta(seconds=20)), views, NOW)
    assert book.next_expiry() == NOW + timedelta(seconds=10)
    assert book.expire(NOW + timedelta(seconds=9)) == []
    assert [r.reservation_id for r in book.expire(NOW + timedelta(seconds=10))] == [1]
    assert book.next_expiry() == NOW + timedelta(seconds=20)
    assert [r.reservation_id for r in book.expire(NOW + timedelta(hours=1))] == [2]
    assert book.next_expiry() is None


@pytest.mark.parametrize(
    ("held", "evse_id", "token", "group", "expected"),
    [
        # H03: the reserved token, or a token of the reservation's group, consumes it.
        (res(1), 1, A, None, Admission(True, res(1))),
        (res(1), 1, IdToken("aaa", IdTokenType.ISO14443), None, Admission(True, res(1))),
        (res(1), 1, B, None, Admission(False)),
        (res(1, group=GROUP), 1, B, GROUP, Admission(True, res(1, group=GROUP))),
        (res(1, group=GROUP), 1, B, OTHER_GROUP, Admission(False)),
        (res(1), 1, IdToken("AAA", IdTokenType.CENTRAL), None, Admission(False)),  # type differs
        # Another EVSE is not affected by a specific reservation.
        (res(1), 2, B, None, Admission(True)),
        # Without EVSE: the holder consumes it anywhere; others may take one EVSE of two.
        (res(1, evse_id=None), 2, A, None, Admission(True, res(1, evse_id=None))),
        (res(1, evse_id=None), 2, B, None, Admission(True)),
    ],
)
def test_admit(
    held: Reservation, evse_id: int, token: IdToken, group: IdToken | None, expected: Admission
) -> None:
    book = ReservationBook()
    views = {1: FREE, 2: FREE}
    assert book.reserve(held, views, NOW) is ReserveStatus.ACCEPTED
    assert book.admit(evse_id, token, group, views) == expected


def test_reservation_without_evse_keeps_the_last_evse() -> None:
    """With one EVSE in use, the other is held for the reservation: Reserved, and a stranger
    may not start there; the holder may, and consuming it frees the EVSE."""
    book = ReservationBook()
    views = {1: FREE, 2: FREE}
    book.reserve(res(5, evse_id=None), views, NOW)
    assert book.reserved_evses(views) == frozenset()  # errata §2.24 S3: both stay Available
    views = {1: IN_USE, 2: FREE}
    assert book.reserved_evses(views) == {2}
    assert book.admit(2, B, None, views) == Admission(False)
    admission = book.admit(2, A, None, views)
    assert admission.allowed and admission.reservation is not None
    assert book.consume(admission.reservation.reservation_id) is not None
    assert book.reserved_evses(views) == frozenset()
    assert book.admit(2, B, None, views) == Admission(True)


def test_plugged_cable_keeps_the_reservation() -> None:
    """G01.FR.09: a cable at a reserved EVSE does not end the reservation or its status."""
    book = ReservationBook()
    book.reserve(res(1), {1: FREE}, NOW)
    assert book.reserved_evses({1: PLUGGED}) == {1}
    assert book.remove_unserviceable({1: PLUGGED}) == []


@pytest.mark.parametrize(
    ("views", "removed"),
    [
        ({1: FREE, 2: FREE}, []),
        ({1: FAULTED, 2: FREE}, [1]),
        ({1: INOPERATIVE, 2: FREE}, [1]),
        ({1: INOPERATIVE, 2: FAULTED}, [1, 2]),
        ({1: IN_USE, 2: IN_USE}, []),  # busy is not broken: the sessions may end in time
        ({2: FREE}, [1]),  # the EVSE is gone
    ],
)
def test_remove_unserviceable(views: dict[int, EvseView], removed: list[int]) -> None:
    book = ReservationBook()
    book.reserve(res(1, evse_id=1), {1: FREE, 2: FREE}, NOW)
    book.reserve(res(2, evse_id=None), {1: FREE, 2: FREE}, NOW)
    assert [r.reservation_id for r in book.remove_unserviceable(views)] == removed
