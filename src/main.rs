//! `dm3-bridge`: the relay node and bridge service.
//!
//! For now the binary only describes itself; the relay, the names and the
//! connectors arrive in later steps (see ARCHITECTURE.md).

use clap::Parser;

/// A DM3 message relay node that bridges DM3 to Matrix and Telegram.
#[derive(Parser, Debug)]
#[command(name = "dm3-bridge", version, about, long_about = None)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    let mut command = <Cli as clap::CommandFactory>::command();
    command.print_help()?;
    println!();
    Ok(())
}
