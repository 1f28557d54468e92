"""targets say what they apply to; rates and averages are not additive

Every target used to carry forward until the next one, so a one-month target replaced the
fiscal-year target for every later month. ``targets.applies`` (period, rest_of_year, fiscal_year,
onward) makes the rule explicit and joins the key, so a fiscal-year target and a target for its
first period can both exist. Stored targets keep their old meaning: ``onward``.

Percentages and scores were additive by default, so their year to date was a sum (326.5%): they
are not, whatever was stored.

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("targets", recreate="always") as batch:
        batch.add_column(sa.Column("applies", sa.String(16), nullable=False, server_default="onward"))
        batch.drop_constraint("pk_targets", type_="primary")
        batch.create_primary_key("pk_targets", ["indicator_id", "period_start", "applies"])
    op.execute("UPDATE indicators SET additive = false WHERE unit IN ('percentage', 'score')")


def downgrade() -> None:
    # Only one target per period survives the old key: the most general one.
    op.execute("DELETE FROM targets WHERE applies <> 'onward' AND EXISTS (SELECT 1 FROM targets o "
               "WHERE o.indicator_id = targets.indicator_id AND o.period_start = targets.period_start "
               "AND o.applies <> targets.applies AND (o.applies = 'onward' OR (o.applies = 'fiscal_year' "
               "AND targets.applies <> 'fiscal_year') OR (o.applies = 'rest_of_year' AND targets.applies = 'period')))")
    with op.batch_alter_table("targets", recreate="always") as batch:
        batch.drop_constraint("pk_targets", type_="primary")
        batch.create_primary_key("pk_targets", ["indicator_id", "period_start"])
        batch.drop_column("applies")
