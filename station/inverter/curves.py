"""Volt-var (SunSpec 705 DERVoltVar) and volt-watt (706 DERVoltWatt) curves: pure, no I/O.

Owns the register layout of the repeating curve groups of 705/706 (after the fixed part of the
model: ``NCrv`` curves, each a header ``Crv`` followed by ``NPt`` points ``Pt``), and the
translation of an OCPP :class:`~station.der.model.DerCurve` into the raw values of one curve:

- ``x`` is the voltage in percent of nominal (SunSpec ``VNomPct``), scaled by ``V_SF``;
- ``y`` is var (705 ``Var``) or watts (706 ``W``) in percent, scaled by ``DeptRef_SF``, with the
  reference (``DeptRef``) from the curve's ``yUnit``. The values pass through unchanged: both
  OCPP and SunSpec state them as IEEE 1547 does, from the inverter's side of the grid connection;
- unused points (beyond ``ActPt``) are written "not implemented".

It does not talk to a device (``station.inverter.device`` does).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from station.der.model import DerCurve, DerUnit
from station.inverter.errors import LocalInverterError
from station.inverter.sunspec import (
    ModelDef,
    PointValue,
    encode_point,
    load_group,
    load_model,
    to_raw,
)

__all__ = ["CURVE_MODELS", "CurveLayout", "curve_layout", "curve_values"]

CURVE_MODELS: Final[Mapping[int, str]] = {705: "Var", 706: "W"}
"""The curve models and the name of their y point."""

_DEPT_REF: Final[Mapping[int, Mapping[DerUnit, int]]] = {
    705: {
        DerUnit.PCT_MAX_W: 0,  # W_MAX_PCT
        DerUnit.PCT_MAX_VAR: 1,  # VAR_MAX_PCT
        DerUnit.PCT_VAR_AVAIL: 2,  # VAR_AVAL_PCT
    },
    706: {DerUnit.PCT_MAX_W: 0, DerUnit.PCT_W_AVAIL: 1},  # W_MAX_PCT, W_AVAL_PCT
}


@dataclass(frozen=True, slots=True)
class CurveLayout:
    """Where curve ``n`` (1-based) of a 705/706 model lies, for ``n_pt`` points per curve.

    Attributes:
        model: the fixed part of the model.
        header: one curve's header (offsets from the curve's start).
        point: one curve point (offsets from the point's start).
        n_pt: points per curve (``NPt``).
    """

    model: ModelDef
    header: ModelDef
    point: ModelDef
    n_pt: int

    @property
    def curve_size(self) -> int:
        """Registers of one curve (header and points)."""
        return self.header.length + self.n_pt * self.point.length

    def curve_offset(self, curve: int) -> int:
        """Offset of curve ``curve`` (1-based) from the model's ID register."""
        return 2 + self.model.length + (curve - 1) * self.curve_size

    def length(self, n_crv: int) -> int:
        """The model's ``L`` for ``n_crv`` curves."""
        return self.model.length + n_crv * self.curve_size


def curve_layout(model_id: int, n_pt: int) -> CurveLayout:
    """The layout of model ``model_id`` (705 or 706) with ``n_pt`` points per curve.

    Raises:
        LocalInverterError: not a curve model, or ``n_pt`` below 1.
    """
    if model_id not in CURVE_MODELS:
        raise LocalInverterError(f"model {model_id} is not a volt curve model (705, 706)")
    if n_pt < 1:
        raise LocalInverterError(f"model {model_id}: NPt {n_pt} leaves no room for a curve")
    return CurveLayout(
        load_model(model_id),
        load_group(model_id, ("Crv",)),
        load_group(model_id, ("Crv", "Pt")),
        n_pt,
    )


def curve_values(
    layout: CurveLayout, fixed: Mapping[str, PointValue], curve: DerCurve
) -> tuple[dict[str, int], list[int]]:
    """The raw header values (``ActPt``, ``DeptRef``) and the words of all ``NPt`` points.

    Args:
        layout: the device's layout.
        fixed: the model's fixed part as read (for ``V_SF`` and ``DeptRef_SF``).
        curve: the OCPP curve: ``x`` in % of nominal voltage, ``y`` in % of ``y_unit``.

    Raises:
        LocalInverterError: too many or no points, a unit the model cannot express, a value the
            registers cannot hold, or a scale factor the device does not implement.
    """
    model_id = layout.model.model_id
    y_name = CURVE_MODELS[model_id]
    if not 1 <= len(curve.points) <= layout.n_pt:
        raise LocalInverterError(
            f"model {model_id}: a curve of {len(curve.points)} points, the device takes "
            f"1..{layout.n_pt}"
        )
    dept_ref = _DEPT_REF[model_id].get(curve.y_unit)
    if dept_ref is None:
        raise LocalInverterError(f"model {model_id}: yUnit {curve.y_unit} is not supported")
    words: list[int] = []
    v_point, y_point = layout.point.point("V"), layout.point.point(y_name)
    for pt in curve.points:
        if pt.x < 0:
            raise LocalInverterError(f"model {model_id}: voltage {pt.x} % is negative")
        words += encode_point(v_point, to_raw(layout.point, fixed, "V", pt.x))
        words += encode_point(y_point, to_raw(layout.point, fixed, y_name, pt.y))
    for _ in range(layout.n_pt - len(curve.points)):
        words += encode_point(v_point, None) + encode_point(y_point, None)
    return {"ActPt": len(curve.points), "DeptRef": dept_ref}, words
