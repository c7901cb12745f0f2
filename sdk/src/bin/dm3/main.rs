//! `dm3`: the DM3 encoder/decoder for clients, gateways and debugging.
//!
//! Every command reads JSON on stdin (`name-for` and `parse-name` only their
//! arguments) and writes JSON (or a word) on stdout, followed by one newline. The exit code is the contract scripts rely on:
//! 0 success; 1 well-formed input that fails a check (bad signature, wrong
//! key, tampered ciphertext); 2 malformed input or a usage error. Each
//! failure prints one line on stderr.

mod bridge_payload;
mod commands;
mod gateway;
mod io;
mod names;

use std::process::ExitCode;

use clap::Parser;

use commands::Command;
use io::Failure;

/// The DM3 encoder/decoder: canonical JSON, keys, messages, envelopes, bridge payloads, gateway envelopes, bridge names.
#[derive(Parser, Debug)]
#[command(name = "dm3", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() { 2 } else { 0 };
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    match commands::run(cli.command) {
        Ok(output) => match io::write_stdout(&output) {
            Ok(()) => ExitCode::SUCCESS,
            Err(failure) => report(failure),
        },
        Err(failure) => report(failure),
    }
}

fn report(failure: Failure) -> ExitCode {
    let (code, message) = match failure {
        Failure::Check(message) => (1, message),
        Failure::Malformed(message) => (2, message),
    };
    eprintln!("dm3: {}", message.replace('\n', " "));
    ExitCode::from(code)
}
