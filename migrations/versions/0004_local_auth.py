"""authorization: the Local Authorization List (and its version) and the Authorization Cache

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23

Written to match station.store.models exactly; tests/test_store.py checks that autogenerate finds
no difference. Only new tables: nothing to rebuild, so no batch operation is needed (any later
ALTER of these tables goes through batch mode, STYLE.md A2.15).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "local_auth_list",
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("token_key", sa.String(length=255), nullable=False),
        sa.Column("id_token", sa.String(length=255), nullable=False),
        sa.Column("id_token_info", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("type", "token_key", name=op.f("pk_local_auth_list")),
    )
    op.create_table(
        "local_auth_list_version",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_local_auth_list_version")),
    )
    op.create_table(
        "auth_cache",
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("token_key", sa.String(length=255), nullable=False),
        sa.Column("id_token_info", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("last_used_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("type", "token_key", name=op.f("pk_auth_cache")),
    )


def downgrade() -> None:
    op.drop_table("auth_cache")
    op.drop_table("local_auth_list_version")
    op.drop_table("local_auth_list")
