"""CSMS requests about smart charging and V2X (K, Q blocks): a mixin of the station's session.

The handlers here convert their input (``station.ocpp.convert``), ask the smart-charging service
(``self.link.smart_charging``) and return a ``call_result`` of the session's version; see
``link.py`` for the pattern.
"""

from __future__ import annotations

__all__ = ["SmartChargingHandlers"]


class SmartChargingHandlers:
    """``@on`` handlers for charging profiles, composite schedules and V2X."""
