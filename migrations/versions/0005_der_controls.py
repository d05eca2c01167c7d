"""DER controls: the OCPP 2.1 DER controls the CSMS set, so that they survive a restart

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24

Written to match station.store.models exactly; tests/test_store.py checks that autogenerate finds
no difference. Only a new table: nothing to rebuild, so no batch operation is needed (any later
ALTER of it goes through batch mode, STYLE.md A2.15).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "der_controls",
        sa.Column("control_id", sa.String(length=36), nullable=False),
        sa.Column("control_type", sa.String(length=30), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("control", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("running", sa.Boolean(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("control_id", name=op.f("pk_der_controls")),
    )


def downgrade() -> None:
    op.drop_table("der_controls")
