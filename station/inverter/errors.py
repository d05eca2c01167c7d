"""The inverter link's exceptions, under the station's tree (STYLE.md A2.3, after h11/_util.py)::

    StationError                              (station/errors.py)
     └── InverterError
          ├── LocalInverterError              we were wrong: a value that does not fit its
          │                                   register, a point the model does not define, a
          │                                   model we have no definition for, a closed link
          └── RemoteInverterError             the inverter (or the line to it) was wrong
               ├── InverterLinkError          no connection: refused, lost, or in back-off
               │    └── InverterTimeoutError  no answer within the timeout
               ├── InverterRefusedError       a Modbus exception response (``code``)
               ├── SunSpecError               no "SunS" marker, a broken model chain, a model
               │                              missing or shorter than its definition, bad data
               └── InverterFaultError         the inverter did not follow a set-point
                                              (set-and-verify failed; ``report`` says how)

:mod:`station.inverter.modbus` translates every pymodbus exception into these, once, with
``raise ... from exc``; nothing above the adapter sees a pymodbus type.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from station.errors import StationError

if TYPE_CHECKING:
    from station.inverter.device import FaultReport

__all__ = [
    "InverterError",
    "InverterFaultError",
    "InverterLinkError",
    "InverterRefusedError",
    "InverterTimeoutError",
    "LocalInverterError",
    "RemoteInverterError",
    "SunSpecError",
]


class InverterError(StationError):
    """Something went wrong with the inverter or its link."""


class LocalInverterError(InverterError):
    """We were wrong: a value out of its register's range, an unknown point or model."""


class RemoteInverterError(InverterError):
    """The inverter, or the line to it, was wrong."""


class InverterLinkError(RemoteInverterError):
    """No usable connection: refused, lost, or waiting for the next reconnect attempt."""


class InverterTimeoutError(InverterLinkError):
    """The inverter did not answer a request within the timeout."""


class InverterRefusedError(RemoteInverterError):
    """The inverter answered with a Modbus exception response.

    Attributes:
        code: the Modbus exception code (1 illegal function, 2 illegal data address, 3 illegal
            data value, 4 server device failure, 6 server device busy, ...).
        address: the first register of the refused request.
    """

    def __init__(self, code: int, address: int, what: str = "request") -> None:
        self.code = code
        self.address = address
        super().__init__(f"inverter refused the {what} at register {address}: exception {code}")


class SunSpecError(RemoteInverterError):
    """The device does not present a usable SunSpec register map."""


class InverterFaultError(RemoteInverterError):
    """The inverter did not follow a set-point; it was commanded to 0 W and the fault reported.

    Attributes:
        report: what was commanded, what happened, when.
    """

    def __init__(self, report: FaultReport) -> None:
        self.report = report
        super().__init__(f"inverter fault ({report.kind}): {report.detail}")
