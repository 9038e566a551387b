//! The `flotilla` command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::{Deployment, Error, Flow, Running};

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
    /// Loads a Flow YAML (`jtype: Flow`), validates it and starts it.
    Flow {
        /// The Flow's YAML file.
        #[arg(long)]
        uses: PathBuf,
        /// Validate and print the topology without starting anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Loads a Deployment YAML (`jtype: Deployment`), validates it and starts it.
    Deployment {
        /// The Deployment's YAML file.
        #[arg(long)]
        uses: PathBuf,
        /// Validate and print the topology without starting anything.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Demo { slow_ms } => crate::demo::main(slow_ms).await,
        Command::Flow { uses, dry_run } => {
            let flow = Flow::load(&uses)?;
            serve(&uses, flow.graph()?, dry_run, || flow.start()).await
        }
        Command::Deployment { uses, dry_run } => {
            let dep = Deployment::load(&uses)?;
            serve(&uses, dep.graph()?, dry_run, || dep.start()).await
        }
    }
}

/// Prints the validated topology, then (unless a dry run) starts it and waits for Ctrl-C.
async fn serve(
    path: &std::path::Path,
    graph: flotilla_actors::graph::Graph,
    dry_run: bool,
    start: impl FnOnce() -> Result<Running, Error>,
) -> Result<(), Error> {
    println!("{} is valid:", path.display());
    print!("{}", crate::topology::describe(&graph));
    if dry_run {
        return Ok(());
    }
    let running = start()?;
    let replicas: usize = graph
        .nodes
        .iter()
        .map(|n| n.deployment.shards * n.deployment.replicas)
        .sum();
    tracing::info!(
        "started {} Executors, {replicas} replicas; Ctrl-C stops",
        graph.nodes.len()
    );
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("stopping: in-flight requests finish first");
    running.close();
    Ok(())
}
