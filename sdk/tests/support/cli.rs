//! Runs the `dm3` command as a person does: arguments, stdin, and the contract every command
//! keeps (one trailing newline on success, one stderr line on failure, never a panic).
#![allow(clippy::unwrap_used, clippy::panic)]

use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::Value;

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn dm3(args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dm3"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that rejects its arguments exits before reading stdin.
    if let Err(error) = child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        assert_eq!(error.kind(), std::io::ErrorKind::BrokenPipe);
    }
    let output = child.wait_with_output().unwrap();
    let run = Run {
        code: output.status.code().unwrap(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    };
    if run.code == 0 {
        assert!(run.stdout.ends_with('\n') && !run.stdout.ends_with("\n\n"), "one trailing newline");
        assert!(run.stderr.is_empty());
    } else {
        assert_eq!(run.stderr.lines().count().min(1), 1, "a failure says why: {:?}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
    run
}

pub fn json_out(run: &Run) -> Value {
    assert_eq!(run.code, 0, "{}", run.stderr);
    serde_json::from_str(&run.stdout).unwrap()
}
