"""observations: the per-row foreign key to indicators gives way to a guard on indicators

Checking the foreign key costs PostgreSQL one index probe and row lock per stored value: on a bulk
ingest it doubled the cost of COPY into ``observations`` (3.7 s -> 8.5 s per million rows, see
docs/performance.md). What the key protected is kept another way:
- no orphan can be written: every write of ``observations`` goes through
  ``service.record_observations``, which reads the indicators from this database and, on PostgreSQL,
  holds them ``FOR UPDATE`` until its commit;
- no observation can be orphaned: indicators are retired, never deleted, and the trigger below
  refuses to delete (or re-key) an indicator that has observations, in the same transaction.

Revision ID: 0002
Revises: 0001
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

FK = "fk_observations_indicator_id_indicators"
MESSAGE = "indicator has observations: retire it instead of deleting it"

PG_FUNCTION = f"""
CREATE FUNCTION indicators_keep_observed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (TG_OP = 'DELETE' OR NEW.id IS DISTINCT FROM OLD.id)
       AND EXISTS (SELECT 1 FROM observations WHERE indicator_id = OLD.id) THEN
        RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'foreign_key_violation', DETAIL = OLD.id;
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$
"""
PG_TRIGGER = """
CREATE TRIGGER trg_indicators_keep_observed BEFORE DELETE OR UPDATE OF id ON indicators
FOR EACH ROW EXECUTE FUNCTION indicators_keep_observed()
"""
SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER trg_indicators_keep_observed_delete BEFORE DELETE ON indicators
    WHEN EXISTS (SELECT 1 FROM observations WHERE indicator_id = OLD.id)
    BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END""",
    f"""CREATE TRIGGER trg_indicators_keep_observed_rekey BEFORE UPDATE OF id ON indicators
    WHEN NEW.id IS NOT OLD.id AND EXISTS (SELECT 1 FROM observations WHERE indicator_id = OLD.id)
    BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END""",
]


def upgrade() -> None:
    with op.batch_alter_table("observations") as batch:  # SQLite: the table is rebuilt without the key
        batch.drop_constraint(FK, type_="foreignkey")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        op.execute(PG_TRIGGER)
    else:
        for ddl in SQLITE_TRIGGERS:
            op.execute(ddl)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER trg_indicators_keep_observed ON indicators")
        op.execute("DROP FUNCTION indicators_keep_observed()")
    else:
        op.execute("DROP TRIGGER trg_indicators_keep_observed_delete")
        op.execute("DROP TRIGGER trg_indicators_keep_observed_rekey")
    with op.batch_alter_table("observations") as batch:
        batch.create_foreign_key(FK, "indicators", ["indicator_id"], ["id"])
