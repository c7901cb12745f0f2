//! The SQL migrations, embedded in the binary and applied at start-up.
//!
//! The files live in `migrations/sqlite/` and `migrations/postgres/` (one folder per backend,
//! because DDL differs: STRICT tables and AUTOINCREMENT here, IDENTITY columns there). They
//! are compiled in with `include_str!` rather than `sqlx::migrate!` so that the build needs
//! neither sqlx's macros nor a database, and a deployed binary needs no migrations folder.
//!
//! Add a migration: write `000N_what.sql` in both folders, and add it to both lists below
//! with the same version number. Never edit an applied file: sqlx checks their checksums.

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

use super::Pool;

const SQLITE: &[(i64, &str, &str)] = &[
    (1, "relay", include_str!("../../migrations/sqlite/0001_relay.sql")),
    (2, "sessions", include_str!("../../migrations/sqlite/0002_sessions.sql")),
    (3, "identities", include_str!("../../migrations/sqlite/0003_identities.sql")),
    (4, "engine", include_str!("../../migrations/sqlite/0004_engine.sql")),
    (5, "telegram", include_str!("../../migrations/sqlite/0005_telegram.sql")),
    (6, "telegram_reactions", include_str!("../../migrations/sqlite/0006_telegram_reactions.sql")),
    (7, "tagged_job_payloads", include_str!("../../migrations/sqlite/0007_tagged_job_payloads.sql")),
    (
        8,
        "lowercase_message_hashes",
        include_str!("../../migrations/sqlite/0008_lowercase_message_hashes.sql"),
    ),
    (9, "portal_states", include_str!("../../migrations/sqlite/0009_portal_states.sql")),
    (10, "bounds", include_str!("../../migrations/sqlite/0010_bounds.sql")),
    (11, "blocked_senders", include_str!("../../migrations/sqlite/0011_blocked_senders.sql")),
    (12, "first_contact", include_str!("../../migrations/sqlite/0012_first_contact.sql")),
    (13, "admin_conversations", include_str!("../../migrations/sqlite/0013_admin_conversations.sql")),
    (14, "leases", include_str!("../../migrations/sqlite/0014_leases.sql")),
    (15, "telegram_aliases", include_str!("../../migrations/sqlite/0015_telegram_aliases.sql")),
    (18, "ciphertext_only_portals", include_str!("../../migrations/sqlite/0018_ciphertext_only_portals.sql")),
    (19, "self_custody", include_str!("../../migrations/sqlite/0019_self_custody.sql")),
    (20, "olm_accounts", include_str!("../../migrations/sqlite/0020_olm_accounts.sql")),
    (21, "megolm_senders", include_str!("../../migrations/sqlite/0021_megolm_senders.sql")),
    (22, "megolm_outbound", include_str!("../../migrations/sqlite/0022_megolm_outbound.sql")),
    (23, "to_device_inbox", include_str!("../../migrations/sqlite/0023_to_device_inbox.sql")),
    (24, "device_lists", include_str!("../../migrations/sqlite/0024_device_lists.sql")),
    (25, "cross_signing_pins", include_str!("../../migrations/sqlite/0025_cross_signing_pins.sql")),
];

const POSTGRES: &[(i64, &str, &str)] = &[
    (1, "relay", include_str!("../../migrations/postgres/0001_relay.sql")),
    (2, "sessions", include_str!("../../migrations/postgres/0002_sessions.sql")),
    (3, "identities", include_str!("../../migrations/postgres/0003_identities.sql")),
    (4, "engine", include_str!("../../migrations/postgres/0004_engine.sql")),
    (5, "telegram", include_str!("../../migrations/postgres/0005_telegram.sql")),
    (6, "telegram_reactions", include_str!("../../migrations/postgres/0006_telegram_reactions.sql")),
    (7, "tagged_job_payloads", include_str!("../../migrations/postgres/0007_tagged_job_payloads.sql")),
    (
        8,
        "lowercase_message_hashes",
        include_str!("../../migrations/postgres/0008_lowercase_message_hashes.sql"),
    ),
    (9, "portal_states", include_str!("../../migrations/postgres/0009_portal_states.sql")),
    (10, "bounds", include_str!("../../migrations/postgres/0010_bounds.sql")),
    (11, "blocked_senders", include_str!("../../migrations/postgres/0011_blocked_senders.sql")),
    (12, "first_contact", include_str!("../../migrations/postgres/0012_first_contact.sql")),
    (13, "admin_conversations", include_str!("../../migrations/postgres/0013_admin_conversations.sql")),
    (14, "leases", include_str!("../../migrations/postgres/0014_leases.sql")),
    (15, "telegram_aliases", include_str!("../../migrations/postgres/0015_telegram_aliases.sql")),
    (
        18,
        "ciphertext_only_portals",
        include_str!("../../migrations/postgres/0018_ciphertext_only_portals.sql"),
    ),
    (19, "self_custody", include_str!("../../migrations/postgres/0019_self_custody.sql")),
    (20, "olm_accounts", include_str!("../../migrations/postgres/0020_olm_accounts.sql")),
    (21, "megolm_senders", include_str!("../../migrations/postgres/0021_megolm_senders.sql")),
    (22, "megolm_outbound", include_str!("../../migrations/postgres/0022_megolm_outbound.sql")),
    (23, "to_device_inbox", include_str!("../../migrations/postgres/0023_to_device_inbox.sql")),
    (24, "device_lists", include_str!("../../migrations/postgres/0024_device_lists.sql")),
    (25, "cross_signing_pins", include_str!("../../migrations/postgres/0025_cross_signing_pins.sql")),
];

fn migrator(files: &'static [(i64, &'static str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        files
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    Cow::Borrowed(*description),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// Applies the migrations not yet applied, in one transaction each.
pub(super) async fn run(pool: &Pool) -> Result<(), sqlx::migrate::MigrateError> {
    match pool {
        Pool::Sqlite(p) => migrator(SQLITE).run(p).await,
        Pool::Postgres(p) => migrator(POSTGRES).run(p).await,
    }
}
