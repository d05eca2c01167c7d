"""NotifyEvent (N07, both protocol versions): problems of the station's own components.

Owns the mapping from a station-side problem (the grid out of its window, the AC/DC converter
not following its set-point) onto the device model's standardized components and the
``Problem`` variable (OCPP 2.0.1/2.1 Part 2 appendices, 3.2: ``AcDcConverter``,
``ElectricalFeed``; the generic ``Problem`` variable: "Component itself has a 'Problem' condition
that impacts in any significant way on its normal operation"). Each problem is one event when it
starts (``actualValue`` "true") and one with ``cleared`` when it ends, with a ``techInfo`` line
saying what happened. The events wait for the link; a failure to deliver is logged (they are
not transaction messages and are not queued: OCPPCommCtrlr.QueueAllMessages is not offered).
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

from station.clock import format_ocpp_time
from station.errors import OcppError
from station.ocpp.link import OcppLink
from station.ocpp.tx_convert import OcppTransactionPort

__all__ = ["AC_DC_CONVERTER", "ELECTRICAL_FEED", "OcppEventPort"]

log = logging.getLogger(__name__)

AC_DC_CONVERTER = "AcDcConverter"
"""Appendix 3.2.2: the power converter between the grid and the DC output (the inverter)."""
ELECTRICAL_FEED = "ElectricalFeed"
"""Appendix 3.2.24: the station's incoming grid connection."""


class OcppEventPort:
    """Sends NotifyEventRequest over the link (any protocol version)."""

    def __init__(self, link: OcppLink) -> None:
        self._link = link
        self._online = OcppTransactionPort(link)
        self._event_ids = itertools.count(1)

    async def problem(
        self,
        component: str,
        *,
        active: bool,
        tech_info: str,
        tech_code: str | None = None,
        evse_id: int | None = None,
    ) -> None:
        """One NotifyEvent: ``component``'s ``Problem`` became ``active`` (or cleared)."""
        await self._online.wait_online()
        session = self._link.session
        if session is None:
            log.info("NotifyEvent %s not sent: no CSMS link", component)
            return
        now = format_ocpp_time(self._link.clock.now())
        event: dict[str, Any] = {
            "event_id": next(self._event_ids),
            "timestamp": now,
            "trigger": "Alerting",
            "actual_value": "true" if active else "false",
            "tech_info": tech_info[:500],
            "cleared": not active,
            "component": {"name": component}
            | ({"evse": {"id": evse_id}} if evse_id is not None else {}),
            "variable": {"name": "Problem"},
            "event_notification_type": "HardWiredNotification",
        }
        if tech_code is not None:
            event["tech_code"] = tech_code[:50]
        try:
            await self._link.call(
                session.calls.NotifyEvent(generated_at=now, seq_no=0, event_data=[event])
            )
        except OcppError as exc:
            log.warning("NotifyEvent %s (%s) failed: %s", component, tech_info, exc)
