"""CSMS requests about transactions (E, F, H, C blocks): a mixin of the station's session.

The handlers here convert their input, ask the transactions service (``self.link.transactions``)
and return a ``call_result`` of the session's version; see ``link.py`` for the pattern. Anything
that produces a TransactionEvent runs in the ``@after`` hook, so the CSMS always has our response
before the event it causes (F01: RequestStartTransactionResponse, then TransactionEvent).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ocpp.exceptions import FormatViolationError, PropertyConstraintViolationError

from station.clock import parse_ocpp_time
from station.ocpp.convert import ConvertError, profile_from_ocpp
from station.ocpp.session import after, on
from station.ocpp.tx_convert import id_token_from_wire
from station.smartcharging import OcppVersion
from station.smartcharging.service import SmartChargingService
from station.transactions.reservations import Reservation

if TYPE_CHECKING:
    from station.ocpp.link import OcppLink
    from station.transactions.reservation_service import ReservationService
    from station.transactions.service import TransactionService

__all__ = ["TransactionHandlers"]

log = logging.getLogger(__name__)


class TransactionHandlers:
    """``@on`` handlers for transactions, authorization and reservations."""

    link: OcppLink
    results: Any
    version: str
    #: RequestStartTransaction → the EVSE chosen in ``@on``, for its ``@after`` hook.
    _remote_start_evse: int | None = None

    def _tx_service(self) -> TransactionService | None:
        service: TransactionService | None = self.link.transactions
        return service

    # -------------------------------------------------------------------- F01/F02 start

    @on("RequestStartTransaction")
    def on_request_start_transaction(
        self,
        id_token: dict[str, Any],
        remote_start_id: int,
        evse_id: int | None = None,
        charging_profile: dict[str, Any] | None = None,
        group_id_token: dict[str, Any] | None = None,
        **_: Any,
    ) -> Any:
        self._remote_start_evse = None
        service = self._tx_service()
        try:
            token = id_token_from_wire(id_token)
            group = id_token_from_wire(group_id_token) if group_id_token else None
        except ValueError as exc:
            raise PropertyConstraintViolationError(description=f"idToken: {exc}") from None
        if service is None:
            return self.results.RequestStartTransaction(status="Rejected")
        chosen = service.remote_start_evse(evse_id)
        connectors = dict(self.link.availability.connectors)
        if chosen is None or not self.link.availability.is_operative(
            chosen, connectors.get(chosen, 1)
        ):
            # F01.FR.?: an EVSE that is busy, unknown or inoperative rejects the request.
            log.info("RequestStartTransaction %d rejected (evse %s)", remote_start_id, evse_id)
            return self.results.RequestStartTransaction(status="Rejected")
        reservations: ReservationService | None = self.link.reservations
        if reservations is not None and not reservations.admit(chosen, token, group).allowed:
            # H03: a reserved EVSE is for the reserved token or group only (errata §2.24: a
            # RequestStartTransaction's token counts like a presented one).
            log.info(
                "RequestStartTransaction %d rejected: EVSE %d reserved", remote_start_id, chosen
            )
            return self.results.RequestStartTransaction(status="Rejected")
        if charging_profile is not None:
            rejected = self._install_start_profile(chosen, charging_profile)
            if rejected is not None:
                log.info("RequestStartTransaction %d rejected: %s", remote_start_id, rejected)
                return self.results.RequestStartTransaction(status="Rejected", status_info=rejected)
        self._remote_start_evse = chosen
        return self.results.RequestStartTransaction(status="Accepted")

    def _install_start_profile(
        self, evse_id: int, charging_profile: dict[str, Any]
    ) -> dict[str, str] | None:
        """F01/K05: the request's TxProfile, validated and installed on ``evse_id`` for the
        transaction about to start (committed before the answer); the statusInfo to reject the
        request with, or None."""
        service = self.link.smart_charging
        if not isinstance(service, SmartChargingService):
            return {"reason_code": "UnsupportedRequest", "additional_info": "no smart charging"}
        try:
            profile = profile_from_ocpp(
                charging_profile, evse_id=evse_id, received_at=service.clock.now()
            )
        except ConvertError as exc:
            raise FormatViolationError(description=str(exc)) from None
        rejection = service.set_start_profile(profile, OcppVersion(self.version))
        if rejection is None:
            return None
        return {
            "reason_code": str(rejection.reason_code),
            "additional_info": rejection.additional_info,
        }

    @after("RequestStartTransaction")
    def after_request_start_transaction(
        self,
        id_token: dict[str, Any],
        remote_start_id: int,
        group_id_token: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        chosen, self._remote_start_evse = self._remote_start_evse, None
        service = self._tx_service()
        if chosen is None or service is None:
            return
        group = id_token_from_wire(group_id_token) if group_id_token else None
        service.remote_start(chosen, id_token_from_wire(id_token), remote_start_id, group)

    # -------------------------------------------------------------------------- F03 stop

    @on("RequestStopTransaction")
    def on_request_stop_transaction(self, transaction_id: str, **_: Any) -> Any:
        service = self._tx_service()
        # F03.FR.?: an unknown transaction id is Rejected.
        known = service is not None and service.evse_of(transaction_id) is not None
        return self.results.RequestStopTransaction(status="Accepted" if known else "Rejected")

    @after("RequestStopTransaction")
    def after_request_stop_transaction(self, transaction_id: str, **_: Any) -> None:
        service = self._tx_service()
        if service is not None:
            service.remote_stop(transaction_id)

    # ----------------------------------------------------------------- E14 status

    @on("GetTransactionStatus")
    def on_get_transaction_status(self, transaction_id: str | None = None, **_: Any) -> Any:
        service = self._tx_service()
        if service is None:
            return self.results.GetTransactionStatus(messages_in_queue=False)
        queued = service.messages_in_queue(transaction_id)
        if transaction_id is None:
            # E14.FR.06: without a transaction id, only messagesInQueue (for any transaction).
            return self.results.GetTransactionStatus(messages_in_queue=queued)
        ongoing = service.evse_of(transaction_id) is not None
        return self.results.GetTransactionStatus(
            messages_in_queue=queued, ongoing_indicator=ongoing
        )

    # ---------------------------------------------------------------- F05 unlock

    @on("UnlockConnector")
    def on_unlock_connector(self, evse_id: int, connector_id: int, **_: Any) -> Any:
        service = self._tx_service()
        if (evse_id, connector_id) not in self.link.availability.connectors or service is None:
            return self.results.UnlockConnector(status="UnknownConnector")
        if evse_id in service.busy_evses():
            # F05.FR.02: not while an authorized transaction runs; the CSMS stops it first.
            return self.results.UnlockConnector(status="OngoingAuthorizedTransaction")
        port = service.ports.get(evse_id)
        if port is None:
            return self.results.UnlockConnector(status="UnlockFailed")
        port.unlock_connector(connector_id)
        return self.results.UnlockConnector(status="Unlocked")

    # ------------------------------------------------------------ H01/H02 reservations

    def _reservations(self) -> ReservationService | None:
        service: ReservationService | None = self.link.reservations
        return service

    @on("ReserveNow")
    def on_reserve_now(
        self,
        id: int,
        expiry_date_time: str,
        id_token: dict[str, Any],
        evse_id: int | None = None,
        group_id_token: dict[str, Any] | None = None,
        connector_type: str | None = None,
        **_: Any,
    ) -> Any:
        service = self._reservations()
        try:
            token = id_token_from_wire(id_token)
            group = id_token_from_wire(group_id_token) if group_id_token else None
        except ValueError as exc:
            raise PropertyConstraintViolationError(description=f"idToken: {exc}") from None
        try:
            expires_at = parse_ocpp_time(expiry_date_time)
        except ValueError as exc:
            raise FormatViolationError(description=f"expiryDateTime: {exc}") from None
        if service is None:
            return self.results.ReserveNow(status="Rejected")
        status = service.reserve(Reservation(id, token, expires_at, evse_id, group, connector_type))
        return self.results.ReserveNow(status=status.value)

    @after("ReserveNow")
    def after_reserve_now(self, **_: Any) -> None:
        # G01: Reserved statuses (and Removed updates) go out after our response.
        service = self._reservations()
        if service is not None:
            service.refresh()

    @on("CancelReservation")
    def on_cancel_reservation(self, reservation_id: int, **_: Any) -> Any:
        service = self._reservations()
        if service is None:
            return self.results.CancelReservation(status="Rejected")
        return self.results.CancelReservation(status=service.cancel(reservation_id).value)

    @after("CancelReservation")
    def after_cancel_reservation(self, **_: Any) -> None:
        # H02: the connector becomes Available again (StatusNotification after the response).
        service = self._reservations()
        if service is not None:
            service.refresh()
