//! One JSON object per line on stdout.

use std::io::Write;

use serde_json::Value;

use super::Failure;

pub fn line(stdout: &mut dyn Write, value: &Value) -> Result<(), Failure> {
    writeln!(stdout, "{value}").map_err(|e| Failure::Failed(format!("writing stdout: {e}")))
}
