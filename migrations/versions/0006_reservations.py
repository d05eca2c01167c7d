"""reservations: the reservations the station holds, so that they survive a restart (H01-H04)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21

Written to match station.store.models exactly; tests/test_store.py checks that autogenerate finds
no difference. Only a new table: nothing to rebuild, so no batch operation is needed (any later
ALTER of it goes through batch mode, STYLE.md A2.15).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reservations",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("evse_id", sa.Integer(), nullable=True),
        sa.Column("id_token", sa.String(length=255), nullable=False),
        sa.Column("id_token_type", sa.String(length=20), nullable=False),
        sa.Column("group_id_token", sa.String(length=255), nullable=True),
        sa.Column("group_id_token_type", sa.String(length=20), nullable=True),
        sa.Column("connector_type", sa.String(length=50), nullable=True),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reservations")),
    )


def downgrade() -> None:
    op.drop_table("reservations")
