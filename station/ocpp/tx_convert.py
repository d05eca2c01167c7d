"""Transactions at the OCPP edge: domain values ↔ wire payloads, and the link as a CsmsPort.

Owns the one translation between :mod:`station.transactions` (which knows no OCPP types) and the
TransactionEvent / Authorize messages of OCPP 2.0.1 and 2.1. The payload that goes into the
durable queue is the **wire** shape (camelCase JSON, the same for both versions: every field used
here exists with the same name in both schemas), so a queued message is replayed byte for byte
whatever happens to the station's code in between; :class:`OcppTransactionPort` turns it into the
session's request dataclass at sending time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from station.clock import format_ocpp_time, parse_ocpp_time
from station.errors import ConnectionLostError, LocalOcppError, RemoteOcppError
from station.ocpp import keys, rpc
from station.ocpp.devicemodel import AUTH_STORAGE_MAX_B
from station.transactions import (
    AuthorizationStatus,
    IdToken,
    IdTokenInfo,
    IdTokenType,
    MeterValue,
    SampledValue,
    TransactionEventOut,
    tx_config_from_variables,
)
from station.transactions.reservations import ReservationUpdate
from station.transactions.service import TRANSACTION_EVENT, ServiceSettings

if TYPE_CHECKING:
    from station.ocpp.devicemodel import DeviceModel
    from station.ocpp.link import OcppLink

__all__ = [
    "OcppTransactionPort",
    "id_token_from_wire",
    "id_token_info_from_snake",
    "id_token_wire",
    "meter_values_payload",
    "service_settings",
    "transaction_event_payload",
]

log = logging.getLogger(__name__)


def id_token_wire(token: IdToken) -> dict[str, Any]:
    """IdTokenType, camelCase."""
    return {"idToken": token.id_token, "type": token.type.value}


def id_token_from_wire(data: dict[str, Any]) -> IdToken:
    """IdTokenType from a snake_case (as handlers receive it) or camelCase dict.

    Raises:
        ValueError: an unknown type or an empty id.
    """
    value = data.get("id_token", data.get("idToken"))
    return IdToken(str(value), IdTokenType(data["type"]))


def _sampled_value(value: SampledValue) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "value": value.value,
        "measurand": value.measurand.value,
        "context": value.context.value,
        "location": value.location.value,
        "unitOfMeasure": {"unit": value.unit},
    }
    if value.phase is not None:
        wire["phase"] = value.phase
    signed = value.signed_meter_value
    if signed is not None:
        wire["signedMeterValue"] = {
            "signedMeterData": signed.signed_meter_data,
            "signingMethod": signed.signing_method,
            "encodingMethod": signed.encoding_method,
            "publicKey": signed.public_key,
        }
    return wire


def _meter_value(value: MeterValue) -> dict[str, Any]:
    return {
        "timestamp": format_ocpp_time(value.timestamp),
        "sampledValue": [_sampled_value(v) for v in value.sampled_values],
    }


def transaction_event_payload(message: TransactionEventOut) -> dict[str, Any]:
    """A TransactionEventRequest payload (camelCase) for ``message``."""
    info: dict[str, Any] = {"transactionId": message.transaction_id}
    if message.charging_state is not None:
        info["chargingState"] = message.charging_state.value
    if message.stopped_reason is not None:
        info["stoppedReason"] = message.stopped_reason.value
    if message.remote_start_id is not None:
        info["remoteStartId"] = message.remote_start_id
    payload: dict[str, Any] = {
        "eventType": message.event_type.value,
        "timestamp": format_ocpp_time(message.timestamp),
        "triggerReason": message.trigger_reason.value,
        "seqNo": message.seq_no,
        "transactionInfo": info,
        "evse": {"id": message.evse_id, "connectorId": message.connector_id},
    }
    if message.offline:
        payload["offline"] = True
    if message.reservation_id is not None:
        payload["reservationId"] = message.reservation_id
    if message.number_of_phases_used is not None:
        payload["numberOfPhasesUsed"] = message.number_of_phases_used
    if message.id_token is not None:
        payload["idToken"] = id_token_wire(message.id_token)
    if message.meter_values:
        payload["meterValue"] = [_meter_value(v) for v in message.meter_values]
    return payload


def meter_values_payload(evse_id: int, values: Sequence[MeterValue]) -> dict[str, Any]:
    """A MeterValuesRequest payload (camelCase); ``evse_id`` 0 is the main meter."""
    return {"evseId": evse_id, "meterValue": [_meter_value(v) for v in values]}


def id_token_info_from_snake(data: dict[str, Any]) -> IdTokenInfo:
    """IdTokenInfoType as the session returns it (snake_case keys).

    Raises:
        RemoteOcppError: a status, expiry or group token this station cannot read.
    """
    try:
        expiry = data.get("cache_expiry_date_time")
        group = data.get("group_id_token")
        return IdTokenInfo(
            status=AuthorizationStatus(data["status"]),
            cache_expiry=parse_ocpp_time(expiry) if expiry else None,
            group_id_token=id_token_from_wire(group) if group else None,
            evse_ids=tuple(int(e) for e in data.get("evse_id") or ()),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise RemoteOcppError(f"unusable idTokenInfo {data!r}: {exc}") from exc


class OcppTransactionPort:
    """The OCPP link as the transactions service's ``CsmsPort``."""

    def __init__(self, link: OcppLink) -> None:
        self._link = link

    @property
    def online(self) -> bool:
        from station.ocpp.link import Registration

        link = self._link
        return link.session is not None and link.registration is Registration.ACCEPTED

    async def wait_online(self) -> None:
        """Return once CALLs can be sent (connected and accepted)."""
        link = self._link
        while not self.online:
            event = link.accepted if link.connected.is_set() else link.connected
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await event.wait()
            if event.is_set() and not self.online:
                await asyncio.sleep(0.05)  # between two states of the link: never spin

    def encode(self, message: TransactionEventOut) -> dict[str, Any]:
        """The wire payload of ``message``, checked once, here, against the TransactionEvent
        request schema of every supported version (the queue holds it until a session of
        either version sends it; it is not checked again at each attempt).

        Raises:
            LocalOcppError: the payload is valid for no supported version (our bug).
        """
        payload = transaction_event_payload(message)
        problems: list[str] = []
        for version in keys.SUPPORTED_VERSIONS:
            try:
                rpc.check_payload(
                    rpc.MessageType.CALL,
                    TRANSACTION_EVENT,
                    transaction_event_for_version(payload, version),
                    version,
                )
            except rpc.FrameError as exc:
                problems.append(f"OCPP {version}: {exc.description}")
        if len(problems) == len(keys.SUPPORTED_VERSIONS):
            raise LocalOcppError(f"TransactionEvent: invalid request: {'; '.join(problems)}")
        if problems:
            log.warning("TransactionEvent seqNo %d: %s", message.seq_no, problems[0])
        return payload

    async def send_transaction_event(self, payload: dict[str, Any]) -> IdTokenInfo | None:
        session = self._link.session
        if session is None or not self.online:
            raise ConnectionLostError("TransactionEvent: CSMS link not available")
        # Checked against the schema by encode() when it was queued; sent as it was stored.
        response = await session.call_wire(
            TRANSACTION_EVENT, transaction_event_for_version(payload, session.version)
        )
        info = getattr(response, "id_token_info", None)
        return id_token_info_from_snake(info) if info else None

    async def send_meter_values(self, evse_id: int, values: Sequence[MeterValue]) -> None:
        session = self._link.session
        if session is None:
            raise ConnectionLostError("MeterValues: CSMS link not available")
        payload = meter_values_payload(evse_id, values)
        await self._link.call(session.calls.MeterValues(**keys.to_snake(payload, session.version)))

    async def authorize(self, token: IdToken) -> IdTokenInfo:
        session = self._link.session
        if session is None:
            raise ConnectionLostError("Authorize: CSMS link not available")
        request = session.calls.Authorize(
            id_token={"id_token": token.id_token, "type": token.type.value}
        )
        response = await self._link.call(request)
        return id_token_info_from_snake(response.id_token_info)

    async def send_security_event(self, event_type: str, tech_info: str) -> None:
        """SecurityEventNotificationRequest (A04), once the link is up: a full offline queue
        (issue 3) is reported while the station is offline, so it waits for the connection.

        Raises:
            OcppError: the CSMS did not accept it (ConnectionLostError if the link dropped).
        """
        await self.wait_online()
        session = self._link.session
        if session is None:
            raise ConnectionLostError("SecurityEventNotification: CSMS link not available")
        await self._link.call(
            session.calls.SecurityEventNotification(
                type=event_type,
                timestamp=format_ocpp_time(self._link.clock.now()),
                tech_info=tech_info[:255],
            )
        )

    async def send_reservation_status_update(
        self, reservation_id: int, status: ReservationUpdate
    ) -> None:
        """H04: ReservationStatusUpdateRequest (Expired / Removed)."""
        session = self._link.session
        if session is None:
            raise ConnectionLostError("ReservationStatusUpdate: CSMS link not available")
        await self._link.call(
            session.calls.ReservationStatusUpdate(
                reservation_id=reservation_id, reservation_update_status=status.value
            )
        )


_WIRE_2_0_1_TRIGGERS = {"TxResumed": "ChargingStateChanged"}
"""OCPP 2.1 triggerReasons written for an OCPP 2.0.1 CSMS, whose enumeration lacks them. A
resumed transaction's event reports its chargingState, so ChargingStateChanged says what
changed."""


def transaction_event_for_version(payload: dict[str, Any], version: str) -> dict[str, Any]:
    """The queued (version-neutral) TransactionEvent payload as ``version`` sends it: the same
    object, except a 2.1-only triggerReason on OCPP 2.0.1 (:data:`_WIRE_2_0_1_TRIGGERS`)."""
    if version == "2.0.1":
        trigger = _WIRE_2_0_1_TRIGGERS.get(payload.get("triggerReason", ""))
        if trigger is not None:
            return {**payload, "triggerReason": trigger}
    return payload


_TX_VARIABLES = (
    ("TxCtrlr", "TxStartPoint"),
    ("TxCtrlr", "TxStopPoint"),
    ("TxCtrlr", "EVConnectionTimeOut"),
    ("SampledDataCtrlr", "TxStartedMeasurands"),
    ("SampledDataCtrlr", "TxUpdatedMeasurands"),
    ("SampledDataCtrlr", "TxEndedMeasurands"),
    ("SampledDataCtrlr", "TxEndedInterval"),
    ("AlignedDataCtrlr", "Measurands"),
    ("AlignedDataCtrlr", "TxEndedMeasurands"),
    ("AlignedDataCtrlr", "TxEndedInterval"),
)


def service_settings(dm: DeviceModel) -> ServiceSettings:
    """The transactions service's settings, from the device model's current values.

    A value that does not parse (it cannot: the device model checks valuesList and type) keeps
    the default.
    """
    values: dict[tuple[str, str], str] = {}
    for key in _TX_VARIABLES:
        with contextlib.suppress(KeyError):
            values[key] = dm.value(*key)
    defaults = ServiceSettings()
    try:
        tx = tx_config_from_variables(values)
    except ValueError:
        tx = defaults.tx

    def number(component: str, variable: str, default: float, instance: str | None = None) -> float:
        with contextlib.suppress(KeyError, ValueError):
            return dm.float_value(component, variable, instance=instance)
        return default

    def flag(component: str, variable: str, default: bool) -> bool:
        with contextlib.suppress(KeyError, ValueError):
            return dm.bool_value(component, variable)
        return default

    auth = defaults.auth
    cache_lifetime_s = auth.cache_lifetime_s
    with contextlib.suppress(KeyError, ValueError):
        cache_lifetime_s = dm.float_value("AuthCacheCtrlr", "LifeTime")
    return ServiceSettings(
        tx=tx,
        message_attempts=int(
            number("OCPPCommCtrlr", "MessageAttempts", 5, instance="TransactionEvent")
        ),
        message_attempt_interval_s=number(
            "OCPPCommCtrlr", "MessageAttemptInterval", 30, instance="TransactionEvent"
        ),
        tx_updated_interval_s=number("SampledDataCtrlr", "TxUpdatedInterval", 60),
        aligned_interval_s=number("AlignedDataCtrlr", "Interval", 900),
        authorize_remote_start=flag("AuthCtrlr", "AuthorizeRemoteStart", False),
        stop_tx_on_invalid_id=flag("TxCtrlr", "StopTxOnInvalidId", True),
        max_energy_on_invalid_id_wh=number("TxCtrlr", "MaxEnergyOnInvalidId", 0.0),
        resumption_timeout_s=number("TxCtrlr", "ResumptionTimeout", 0.0),
        allow_energy_transfer_resumption=flag("TxCtrlr", "AllowEnergyTransferResumption", True),
        auth=type(auth)(
            local_pre_authorize=flag("AuthCtrlr", "LocalPreAuthorize", auth.local_pre_authorize),
            local_authorize_offline=flag(
                "AuthCtrlr", "LocalAuthorizeOffline", auth.local_authorize_offline
            ),
            offline_tx_for_unknown_id_enabled=flag(
                "AuthCtrlr", "OfflineTxForUnknownIdEnabled", auth.offline_tx_for_unknown_id_enabled
            ),
            disable_remote_authorization=flag(
                "AuthCtrlr", "DisableRemoteAuthorization", auth.disable_remote_authorization
            ),
            cache_enabled=flag("AuthCacheCtrlr", "Enabled", auth.cache_enabled),
            cache_lifetime_s=cache_lifetime_s,
            cache_disable_post_authorize=flag(
                "AuthCacheCtrlr", "DisablePostAuthorize", auth.cache_disable_post_authorize
            ),
            cache_storage_max_b=AUTH_STORAGE_MAX_B,  # AuthCacheCtrlr.Storage maxLimit
            local_list_enabled=flag("LocalAuthListCtrlr", "Enabled", auth.local_list_enabled),
            local_list_disable_post_authorize=flag(
                "LocalAuthListCtrlr", "DisablePostAuthorize", auth.local_list_disable_post_authorize
            ),
        ),
    )
