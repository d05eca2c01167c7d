"""charging profiles: the installed charging profiles, so that they survive a restart

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

Written to match station.store.models exactly; tests/test_store.py checks that autogenerate finds
no difference. Batch mode, as every migration of this SQLite database (STYLE.md A2.15).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "charging_profiles",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("evse_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=40), nullable=False),
        sa.Column("stack_level", sa.Integer(), nullable=False),
        sa.Column("transaction_id", sa.String(length=36), nullable=True),
        sa.Column("profile", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_charging_profiles")),
    )
    with op.batch_alter_table("charging_profiles", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_charging_profiles_transaction_id"), ["transaction_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("charging_profiles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_charging_profiles_transaction_id"))
    op.drop_table("charging_profiles")
