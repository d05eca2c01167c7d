"""End to end: reservations (H01-H04) of a real station against a real CSMS over a WebSocket.

ReserveNow / CancelReservation from the CSMS, ReservationStatusUpdate and the connector status
Reserved from the station, and a reservation used by its token (its id in the TransactionEvent).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from station.clock import format_ocpp_time
from station.sim.csms import Csms, Frame
from tests import test_transactions_e2e
from tests.test_link import calls, request, variable
from tests.test_transactions_e2e import Start, set_variables, tx_events, wait_event

bench = test_transactions_e2e.bench  # the fixture: a CSMS and one station

HOLDER = "RESERVED-1"
STRANGER = "STRANGER-1"


def reserve_now(
    reservation_id: int, evse_id: int | None, *, token: str = HOLDER, expires_in_s: float = 600
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "id": reservation_id,
        "expiryDateTime": format_ocpp_time(datetime.now(UTC) + timedelta(seconds=expires_in_s)),
        "idToken": {"idToken": token, "type": "ISO14443"},
    }
    if evse_id is not None:
        payload["evseId"] = evse_id
    return payload


def status_is(status: str, evse_id: int) -> Any:
    def match(frame: Frame) -> bool:
        return frame.payload.get("connectorStatus") == status and frame.payload["evseId"] == evse_id

    return match


async def wait_status(csms: Csms, status: str, evse_id: int, since: int) -> None:
    await calls(csms, "StatusNotification", where=status_is(status, evse_id), since=since)


async def test_reservation_is_used_by_its_token_only(bench: Start) -> None:
    """H01 Accepted → Reserved; H03 a stranger's token starts nothing, the holder's starts the
    transaction with the reservationId; the connector is Occupied after (G01.FR.09)."""
    b = await bench(accepted_tokens={HOLDER, STRANGER})
    csms, station = b.csms, b.station
    assert station is not None
    since = len(csms.frames)
    assert (await request(csms, "ReserveNow", reserve_now(11, 1)))["status"] == "Accepted"
    await wait_status(csms, "Reserved", 1, since)
    # Taken: another reservation of the same EVSE is Occupied.
    again = await request(csms, "ReserveNow", reserve_now(12, 1, token=STRANGER))
    assert again["status"] == "Occupied"
    # A remote start for a stranger at the reserved EVSE is Rejected (H03, errata §2.24).
    start = {"idToken": {"idToken": STRANGER, "type": "Central"}, "remoteStartId": 5, "evseId": 1}
    assert (await request(csms, "RequestStartTransaction", start))["status"] == "Rejected"

    vehicle = station.sim_vehicles[1]
    before_plug = len(csms.frames)
    vehicle.plug()
    vehicle.present(STRANGER)
    await calls(csms, "Authorize", since=before_plug)
    vehicle.present(HOLDER)
    (started,) = await wait_event(csms, "Started")
    assert started["idToken"]["idToken"] == HOLDER
    assert started["reservationId"] == 11
    await wait_status(csms, "Occupied", 1, before_plug)
    # The plug did not change the status while reserved (G01.FR.09).
    statuses = [
        f.payload["connectorStatus"]
        for f in csms.frames[before_plug:]
        if f.action == "StatusNotification" and f.direction == "in"
    ]
    assert statuses == ["Occupied"]
    assert station.reservations.book.get(11) is None
    assert all(e.get("idToken", {}).get("idToken") != STRANGER for e in tx_events(csms))


async def test_cancel_and_expiry(bench: Start) -> None:
    """H02 CancelReservation (unknown: Rejected); H04 expiry sends ReservationStatusUpdate
    Expired and the connector is Available again."""
    b = await bench()
    csms = b.csms
    since = len(csms.frames)
    assert (await request(csms, "ReserveNow", reserve_now(21, 2)))["status"] == "Accepted"
    await wait_status(csms, "Reserved", 2, since)
    unknown = await request(csms, "CancelReservation", {"reservationId": 99})
    assert unknown["status"] == "Rejected"
    since = len(csms.frames)
    cancel = await request(csms, "CancelReservation", {"reservationId": 21})
    assert cancel["status"] == "Accepted"
    await wait_status(csms, "Available", 2, since)

    since = len(csms.frames)
    short = reserve_now(22, 2, expires_in_s=1)
    assert (await request(csms, "ReserveNow", short))["status"] == "Accepted"
    await wait_status(csms, "Reserved", 2, since)
    (update,) = await calls(csms, "ReservationStatusUpdate", since=since, timeout_s=5)
    assert update.payload == {"reservationId": 22, "reservationUpdateStatus": "Expired"}
    await wait_status(csms, "Available", 2, since)


async def test_inoperative_evse_and_unspecified_evse(bench: Start) -> None:
    """An EVSE taken out of service loses its reservation (Removed) and answers Unavailable; a
    reservation without evseId holds the last free EVSE (Reserved); Enabled false: Rejected."""
    b = await bench()
    csms = b.csms
    assert (await request(csms, "ReserveNow", reserve_now(31, 1)))["status"] == "Accepted"
    since = len(csms.frames)
    change = {"operationalStatus": "Inoperative", "evse": {"id": 1}}
    assert (await request(csms, "ChangeAvailability", change))["status"] == "Accepted"
    (update,) = await calls(csms, "ReservationStatusUpdate", since=since)
    assert update.payload == {"reservationId": 31, "reservationUpdateStatus": "Removed"}
    assert (await request(csms, "ReserveNow", reserve_now(32, 1)))["status"] == "Unavailable"

    since = len(csms.frames)
    assert (await request(csms, "ReserveNow", reserve_now(33, None)))["status"] == "Accepted"
    await wait_status(csms, "Reserved", 2, since)  # the only operative EVSE
    assert (await request(csms, "ReserveNow", reserve_now(34, None)))["status"] == "Occupied"

    await set_variables(csms, variable("ReservationCtrlr", "Enabled", value="false"))
    assert (await request(csms, "ReserveNow", reserve_now(33, 2)))["status"] == "Rejected"


async def test_a_reservation_survives_a_restart(bench: Start) -> None:
    """H01 + the store: a reservation is on disk before ReserveNow is answered; after a restart
    on the same database the EVSE is Reserved again, a stranger is still refused there (H03),
    and the reservation expires at its expiryDateTime (H04)."""
    b = await bench(accepted_tokens={HOLDER, STRANGER})
    csms = b.csms
    since = len(csms.frames)
    reservation = reserve_now(41, 1, expires_in_s=4)
    expires_at = datetime.fromisoformat(reservation["expiryDateTime"].replace("Z", "+00:00"))
    assert (await request(csms, "ReserveNow", reservation))["status"] == "Accepted"
    await wait_status(csms, "Reserved", 1, since)

    await b.shutdown()
    since = len(csms.frames)
    station = b.start()
    await calls(csms, "BootNotification", since=since)
    await wait_status(csms, "Reserved", 1, since)
    held = station.reservations.book.get(41)
    assert held is not None and held.expires_at == expires_at
    stranger = {"idToken": {"idToken": STRANGER, "type": "Central"}, "remoteStartId": 7}
    refused = await request(csms, "RequestStartTransaction", {**stranger, "evseId": 1})
    assert refused["status"] == "Rejected"

    (update,) = await calls(csms, "ReservationStatusUpdate", since=since, timeout_s=10)
    assert update.payload == {"reservationId": 41, "reservationUpdateStatus": "Expired"}
    assert datetime.now(UTC) >= expires_at
    await wait_status(csms, "Available", 1, since)
    assert station.reservations.book.get(41) is None
    accepted = await request(csms, "RequestStartTransaction", {**stranger, "evseId": 1})
    assert accepted["status"] == "Accepted"
