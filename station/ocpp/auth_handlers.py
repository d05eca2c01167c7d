"""CSMS requests about the Local Authorization List and the Authorization Cache (D01, D02, C11):
a mixin of the station's session.

Each handler converts its input, asks the transactions service (``self.link.transactions``, which
owns the list and the cache and commits every change before answering) and returns a
``call_result`` of the session's version; see ``link.py`` for the pattern.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ocpp.exceptions import PropertyConstraintViolationError

from station.errors import RemoteOcppError
from station.ocpp.session import on
from station.ocpp.tx_convert import id_token_from_wire, id_token_info_from_snake
from station.transactions.auth import IdTokenInfo
from station.transactions.local_list import LocalListUpdate, UpdateType
from station.transactions.model import IdToken

if TYPE_CHECKING:
    from station.ocpp.link import OcppLink
    from station.transactions.service import TransactionService

__all__ = ["AuthorizationHandlers"]

log = logging.getLogger(__name__)


class AuthorizationHandlers:
    """``@on`` handlers for SendLocalList, GetLocalListVersion and ClearCache."""

    link: OcppLink
    results: Any

    def _auth_service(self) -> TransactionService | None:
        service: TransactionService | None = self.link.transactions
        return service

    @on("SendLocalList")
    def on_send_local_list(
        self,
        version_number: int,
        update_type: str,
        local_authorization_list: list[dict[str, Any]] | None = None,
        **_: Any,
    ) -> Any:
        service = self._auth_service()
        if service is None:
            return self.results.SendLocalList(status="Failed")
        entries: list[tuple[IdToken, IdTokenInfo | None]] = []
        for item in local_authorization_list or ():
            try:
                token = id_token_from_wire(item["id_token"])
                info_data = item.get("id_token_info")
                info = None if info_data is None else id_token_info_from_snake(info_data)
            except (ValueError, KeyError, RemoteOcppError) as exc:
                raise PropertyConstraintViolationError(
                    description=f"localAuthorizationList: {exc}"
                ) from None
            entries.append((token, info))
        update = LocalListUpdate(version_number, UpdateType(update_type), tuple(entries))
        status = service.send_local_list(update)
        return self.results.SendLocalList(status=status.value)

    @on("GetLocalListVersion")
    def on_get_local_list_version(self, **_: Any) -> Any:
        service = self._auth_service()
        version = 0 if service is None else service.local_list_version()
        return self.results.GetLocalListVersion(version_number=version)

    @on("ClearCache")
    def on_clear_cache(self, **_: Any) -> Any:
        service = self._auth_service()
        cleared = service is not None and service.clear_cache()
        return self.results.ClearCache(status="Accepted" if cleared else "Rejected")
