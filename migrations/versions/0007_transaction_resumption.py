"""transaction resumption: the session's authorization and a keep-alive time per open transaction

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21

OCPP 2.1 TxCtrlr.ResumptionTimeout (issue 3: open transactions are "either ended with stoppedReason
PowerLoss ... or resumed, as configured"): to resume a transaction the station needs the token
that authorized it and when the interruption began. Written to match station.store.models
exactly; tests/test_store.py checks that autogenerate finds no difference. The new columns are
nullable, so rows written before this revision read as "no token, time unknown" (not resumed).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("open_transactions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("id_token", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("id_token_type", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("group_id_token", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("group_id_token_type", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("alive_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("open_transactions", schema=None) as batch_op:
        batch_op.drop_column("alive_at")
        batch_op.drop_column("group_id_token_type")
        batch_op.drop_column("group_id_token")
        batch_op.drop_column("id_token_type")
        batch_op.drop_column("id_token")
