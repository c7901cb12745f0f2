//! Files only their owner may read: the key file (the user's wallet) and the session file (the
//! access token and the device's secret keys). Both are written with mode 0600 and refused
//! when their mode lets others read them, and both are read with a size bound, before parsing.
//!
//! Errors are the reason alone; each caller names the file in its own error.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// Reads the file as text, if only its owner may read it and it is at most `max_bytes` long.
pub fn read(path: &Path, max_bytes: u64) -> Result<Zeroizing<String>, String> {
    let metadata = std::fs::metadata(path).map_err(|e| e.to_string())?;
    let mode = metadata.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(format!("others may read it (mode {:o}); make it 0600", mode & 0o777));
    }
    if metadata.len() > max_bytes {
        return Err(format!("larger than {max_bytes} bytes"));
    }
    std::fs::read_to_string(path).map(Zeroizing::new).map_err(|e| e.to_string())
}

/// Writes a new file, mode 0600, synced; fails if one is there.
pub fn create(path: &Path, text: &str) -> Result<(), String> {
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| e.to_string())?;
    out.write_all(text.as_bytes()).and_then(|()| out.sync_all()).map_err(|e| e.to_string())
}

/// Replaces the file whole (a new file renamed over it), so a crash leaves the old one or the
/// new one, never half of either.
pub fn replace(path: &Path, text: &str) -> Result<(), String> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    // What a crashed earlier write left.
    let _ = std::fs::remove_file(&partial);
    create(&partial, text)?;
    std::fs::rename(&partial, path).map_err(|e| e.to_string())
}
