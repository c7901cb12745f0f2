-- Virtual identities (issue 4); the same shape as migrations/sqlite/0003_identities.sql.

CREATE TABLE identities (
    name             TEXT   NOT NULL PRIMARY KEY,
    label            TEXT   NOT NULL,
    network          TEXT   NOT NULL,
    network_user_id  TEXT   NOT NULL,
    address          TEXT   NOT NULL,
    key_version      BIGINT NOT NULL,
    profile          TEXT   NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    disabled_at      BIGINT,
    UNIQUE (network, network_user_id)
);

CREATE TABLE identity_keys (
    name        TEXT   NOT NULL REFERENCES identities (name) ON DELETE CASCADE,
    version     BIGINT NOT NULL,
    address     TEXT   NOT NULL,
    sealed      BYTEA  NOT NULL,
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT,
    PRIMARY KEY (name, version)
);
