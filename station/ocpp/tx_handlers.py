"""CSMS requests about transactions (E, F, H, C blocks): a mixin of the station's session.

The handlers here convert their input, ask the transactions service (``self.link.transactions``)
and return a ``call_result`` of the session's version; see ``link.py`` for the pattern.
"""

from __future__ import annotations

__all__ = ["TransactionHandlers"]


class TransactionHandlers:
    """``@on`` handlers for transactions, authorization and reservations."""
