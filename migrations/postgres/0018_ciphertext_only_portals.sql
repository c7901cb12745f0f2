-- Ciphertext-only portals; the same as migrations/sqlite/0018_ciphertext_only_portals.sql,
-- where the column is explained.
ALTER TABLE portals ADD COLUMN ciphertext_only BOOLEAN NOT NULL DEFAULT FALSE;
