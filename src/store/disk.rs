//! Free space on the disk of the SQLite database, for `/ready`.
//!
//! SQLite on a full disk still answers reads (`SELECT 1`, the readiness probe's query) and
//! refuses only the writes that need room, so a node whose every submit fails would look ready.
//! The probe therefore asks the filesystem too. PostgreSQL's disk is PostgreSQL's to report (its
//! writes fail, and it stops if its WAL has no room, which the probe sees).

use std::path::Path;

/// Below this much free space the node reports itself not ready: one group commit of the relay
/// appends up to a few hundred KiB to the WAL, and a checkpoint needs room to grow the file.
pub const MIN_FREE_BYTES: u64 = 1 << 20;

/// The bytes an unprivileged writer may still use on the filesystem that holds `file`.
pub fn free_bytes(file: &Path) -> std::io::Result<u64> {
    let dir = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let stats = rustix::fs::statvfs(dir)?;
    Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
}
