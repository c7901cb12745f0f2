-- Leases; the same as migrations/sqlite/0014_leases.sql, where the table is explained.
CREATE TABLE node_leases (
    name        TEXT   PRIMARY KEY,
    owner       TEXT   NOT NULL,
    lease_until BIGINT NOT NULL
);
