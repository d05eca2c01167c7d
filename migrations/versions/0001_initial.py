"""initial schema: device variables, availability, outbound queue

Revision ID: 0001
Revises:
Create Date: 2025-11-21

Written to match station.store.models exactly; tests/test_store.py checks that autogenerate finds
no difference.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "device_variables",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("component", sa.String(length=50), nullable=False),
        sa.Column(
            "component_instance", sa.String(length=50), server_default=sa.text("''"), nullable=False
        ),
        sa.Column("evse_id", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("connector_id", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("variable", sa.String(length=50), nullable=False),
        sa.Column(
            "variable_instance", sa.String(length=50), server_default=sa.text("''"), nullable=False
        ),
        sa.Column("attribute", sa.String(length=10), nullable=False),
        sa.Column("value", sa.String(length=2500), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_variables")),
        sa.UniqueConstraint(
            "component",
            "component_instance",
            "evse_id",
            "connector_id",
            "variable",
            "variable_instance",
            "attribute",
            name="uq_device_variables_key",
        ),
    )
    op.create_table(
        "availability",
        sa.Column("evse_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("connector_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("operative", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("evse_id", "connector_id", name=op.f("pk_availability")),
    )
    op.create_table(
        "outbound_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("transaction_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_messages")),
        # AUTOINCREMENT: SQLite never reuses an id, so an id always names one message.
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_outbound_messages_transaction_id"),
        "outbound_messages",
        ["transaction_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_outbound_messages_transaction_id"), table_name="outbound_messages")
    op.drop_table("outbound_messages")
    op.drop_table("availability")
    op.drop_table("device_variables")
