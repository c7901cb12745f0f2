//! Creating a file that must not exist yet, with its permissions set from the first byte.
//!
//! `init` writes key material. Two rules follow: never replace an existing file (an operator
//! re-running `init` must not lose the key that opens their data), and never let a secret file
//! exist, even for a moment, with permissions wider than intended. So the file is created with
//! `O_CREAT|O_EXCL` and its final mode in one call, then flushed to disk before we report
//! success.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Creates `path` with `mode` (e.g. `0o600`) and writes `contents`, failing with
/// [`std::io::ErrorKind::AlreadyExists`] if anything is already there.
pub fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}
