//! `dm3-matrix`: parses the arguments and runs [`dm3_matrix_client::cli`], which holds all of
//! the command (and is what the tests drive).

use std::process::ExitCode;

use clap::Parser;
use dm3_matrix_client::cli::{self, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() { 2 } else { 0 };
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    match cli::run(cli, &mut std::io::stdin().lock(), &mut std::io::stdout().lock()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("dm3-matrix: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}
