//! Standard input and output for the `dm3` command, and its two kinds of failure.

use std::io::{Read, Write as _};
use std::path::Path;

use serde_json::Value;

/// The largest stdin the command reads; a DM3 envelope is bounded far below this.
const MAX_INPUT_BYTES: u64 = 64 * 1024 * 1024;

/// A failure, by the exit code it maps to.
#[derive(Debug)]
pub enum Failure {
    /// Exit 1: the input is well formed but a check failed.
    Check(String),
    /// Exit 2: the input or the arguments are malformed.
    Malformed(String),
}

impl Failure {
    pub fn malformed(error: impl std::fmt::Display) -> Self {
        Self::Malformed(error.to_string())
    }

    pub fn check(error: impl std::fmt::Display) -> Self {
        Self::Check(error.to_string())
    }
}

/// Reads all of stdin as UTF-8 text, bounded.
pub fn read_stdin() -> Result<String, Failure> {
    read_bounded(std::io::stdin(), "stdin")
}

/// Reads a file, or stdin when there is no path or it is `-`, as UTF-8 text, bounded.
pub fn read_input(path: Option<&Path>) -> Result<String, Failure> {
    match path {
        Some(path) if path != Path::new("-") => {
            let file = std::fs::File::open(path)
                .map_err(|error| Failure::Malformed(format!("cannot open {}: {error}", path.display())))?;
            read_bounded(file, &path.display().to_string())
        }
        _ => read_stdin(),
    }
}

fn read_bounded(source: impl Read, name: &str) -> Result<String, Failure> {
    let mut text = String::new();
    let read = source
        .take(MAX_INPUT_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|error| Failure::Malformed(format!("cannot read {name} as UTF-8: {error}")))?;
    if read as u64 > MAX_INPUT_BYTES {
        return Err(Failure::Malformed(format!("{name} is larger than {MAX_INPUT_BYTES} bytes")));
    }
    Ok(text)
}

/// Reads stdin as one JSON value.
pub fn read_json() -> Result<Value, Failure> {
    let text = read_stdin()?;
    serde_json::from_str(&text)
        .map_err(|error| Failure::Malformed(format!("stdin is not valid JSON: {error}")))
}

/// Writes the output and one newline.
pub fn write_stdout(output: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{output}")
        .and_then(|()| stdout.flush())
        .map_err(|error| Failure::Malformed(format!("cannot write stdout: {error}")))
}
