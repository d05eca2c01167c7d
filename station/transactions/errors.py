"""The transaction core's exceptions, under the station's tree (STYLE.md A2.3, after h11/_util.py)::

    StationError                      (station/errors.py)
     └── TransactionError
          ├── LocalTransactionError   we were wrong: an event the current state does not accept,
          │                           an event that contradicts the session (a stop with a token
          │                           that may not stop it), a naive ``now``, a bad transaction id
          └── RemoteTransactionError  a peer was wrong: the meter reported an energy register
                                      lower than the one it reported before

After either one the :class:`~station.transactions.machine.TransactionMachine` is in ``ERROR`` and
refuses all further input, as h11's ``Connection`` does after a protocol error. The open
transaction stays readable so that the shell can end it (:func:`~station.transactions.abort`).
"""

from __future__ import annotations

from station.errors import StationError

__all__ = ["LocalTransactionError", "RemoteTransactionError", "TransactionError"]


class TransactionError(StationError):
    """Something went wrong in a transaction state machine."""


class LocalTransactionError(TransactionError):
    """We were wrong: the shell fed an event the machine may not take now.

    The transaction counterpart of h11's ``LocalProtocolError``: a missing key in
    ``TRANSITIONS`` raises this (STYLE.md A2.2).
    """


class RemoteTransactionError(TransactionError):
    """A peer was wrong: the energy meter went backwards."""
