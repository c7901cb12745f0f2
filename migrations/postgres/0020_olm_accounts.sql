-- Olm accounts of ghost devices; the same as migrations/sqlite/0020_olm_accounts.sql.
CREATE TABLE matrix_olm_accounts (
    user_id          TEXT   NOT NULL PRIMARY KEY,
    device_id        TEXT   NOT NULL,
    sealed           BYTEA  NOT NULL,
    version          BIGINT NOT NULL,
    device_published BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
