"""open transactions: each EVSE's open transaction, persisted with its queued events

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21

Written to match station.store.models exactly; tests/test_store.py checks that autogenerate finds
no difference. Batch mode, as every migration of this SQLite database (STYLE.md A2.15).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "open_transactions",
        sa.Column("evse_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("transaction_id", sa.String(length=36), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("next_seq_no", sa.Integer(), nullable=False),
        sa.Column("last_reading", sa.Text(), nullable=True),
        sa.Column("ended_measurands", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.PrimaryKeyConstraint("evse_id", name=op.f("pk_open_transactions")),
        sa.UniqueConstraint("transaction_id", name=op.f("uq_open_transactions_transaction_id")),
    )


def downgrade() -> None:
    op.drop_table("open_transactions")
