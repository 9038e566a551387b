//! The `flotilla` command line.

use clap::{Parser, Subcommand};

/// flotilla: Jina-style Flows and Deployments of Executors on an actor runtime.
#[derive(Debug, Parser)]
#[command(name = "flotilla", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the seed's bottleneck demo end to end on an embedded Deployment and prints what
    /// happened (no server needed).
    Demo {
        /// How long /slow blocks its replica, in milliseconds.
        #[arg(long, default_value_t = 300)]
        slow_ms: u64,
    },
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> Result<(), crate::Error> {
    match cli.command {
        Command::Demo { slow_ms } => crate::demo::main(slow_ms).await,
    }
}
