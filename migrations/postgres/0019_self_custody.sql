-- Gateway mode; the same as migrations/sqlite/0019_self_custody.sql.
ALTER TABLE identities ADD COLUMN custody TEXT NOT NULL DEFAULT 'custodial'
    CHECK (custody IN ('custodial', 'self'));
