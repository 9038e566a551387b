//! The `flotilla` command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tonic_health::pb::health_check_response::ServingStatus;

use crate::grpc::client::{Client, ClientError};
use crate::grpc::server::{ServeOptions, Server};
use crate::grpc::service::Role;
use crate::grpc::tls::ServerTls;
use crate::{Deployment, Error, Flow, Running};

/// flotilla: Jina-style Flows and Deployments of Executors on an actor runtime.
#[derive(Debug, Parser)]
#[command(name = "flotilla", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size of the largest variant costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the seed's bottleneck demo end to end on an embedded Deployment and prints what
    /// happened (no server needed).
    Demo {
        /// How long /slow blocks its replica, in milliseconds.
        #[arg(long, default_value_t = 300)]
        slow_ms: u64,
    },
    /// Loads a Flow YAML (`jtype: Flow`), validates it and serves it over gRPC until Ctrl-C.
    Flow {
        /// The Flow's YAML file.
        #[arg(long)]
        uses: PathBuf,
        /// The gateway's port (default: the YAML's `with: port`, else 12345).
        #[arg(long)]
        port: Option<u16>,
        /// The address to listen on.
        #[arg(long, default_value = "0.0.0.0")]
        host: String,
        /// Serve over TLS with this certificate chain (PEM), as Jina's `--ssl-certfile` (default: the
        /// YAML's `with: ssl_certfile`).
        #[arg(long, requires = "ssl_keyfile")]
        ssl_certfile: Option<PathBuf>,
        /// The certificate's private key (PEM), as Jina's `--ssl-keyfile` (default: the YAML's
        /// `with: ssl_keyfile`).
        #[arg(long, requires = "ssl_certfile")]
        ssl_keyfile: Option<PathBuf>,
        /// Validate and print the topology without starting anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Loads a Deployment YAML (`jtype: Deployment`), validates it and serves it over gRPC
    /// until Ctrl-C.
    Deployment {
        /// The Deployment's YAML file.
        #[arg(long)]
        uses: PathBuf,
        /// The gateway's port.
        #[arg(long, default_value_t = 12345)]
        port: u16,
        /// The address to listen on.
        #[arg(long, default_value = "0.0.0.0")]
        host: String,
        /// Serve over TLS with this certificate chain (PEM), as Jina's `--ssl-certfile`.
        #[arg(long, requires = "ssl_keyfile")]
        ssl_certfile: Option<PathBuf>,
        /// The certificate's private key (PEM), as Jina's `--ssl-keyfile`.
        #[arg(long, requires = "ssl_certfile")]
        ssl_keyfile: Option<PathBuf>,
        /// Validate and print the topology without starting anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Serves one Executor (its replicas behind it) the way a Jina worker does, so that a Jina
    /// Flow (or a flotilla Flow) can use it as an external Executor.
    Executor {
        /// The Executor's registered name (`flotilla executor --uses Echo`).
        #[arg(long)]
        uses: String,
        /// Its constructor arguments, as JSON.
        #[arg(long)]
        uses_with: Option<String>,
        /// Endpoints served in batches, as JSON (Jina's worker flag):
        /// `{"/search": {"preferred_batch_size": 16}}`.
        #[arg(long)]
        uses_dynamic_batching: Option<String>,
        /// The Deployment's name (used in logs and routes).
        #[arg(long, default_value = "executor")]
        name: String,
        #[arg(long, default_value_t = 1)]
        replicas: i64,
        /// The port to serve on (with `--stateful`: default this replica's peer port).
        #[arg(long)]
        port: Option<u16>,
        #[arg(long, default_value = "0.0.0.0")]
        host: String,
        /// Serve over TLS with this certificate chain (PEM), as Jina's `--ssl-certfile`; a
        /// gateway reaches it at `grpcs://host:port` (or with `tls: true`).
        #[arg(long, requires = "ssl_keyfile")]
        ssl_certfile: Option<PathBuf>,
        /// The certificate's private key (PEM), as Jina's `--ssl-keyfile`.
        #[arg(long, requires = "ssl_certfile")]
        ssl_keyfile: Option<PathBuf>,
        /// The Executor's workspace (with `--stateful`: its Raft log and snapshots live in
        /// `<workspace>/raft/<shard-id>/<replica-id>/`).
        #[arg(long)]
        workspace: Option<PathBuf>,
        /// This process is one replica of a stateful Executor: its writes go through a Raft
        /// log shared with the other replicas' processes over gRPC on their peer ports.
        #[arg(long, requires_all = ["replica_id", "peer_ports"])]
        stateful: bool,
        /// This replica's id: its index in `--peer-ports`.
        #[arg(long)]
        replica_id: Option<u64>,
        /// Every replica's port, in replica-id order (`5001,5002,5003` or space separated).
        #[arg(long, num_args = 1.., value_delimiter = ',')]
        peer_ports: Vec<u16>,
        /// The replicas' hosts: one for all, or one per peer port (default 127.0.0.1).
        #[arg(long, num_args = 1.., value_delimiter = ',')]
        peer_hosts: Vec<String>,
        /// Jina's `raft_configuration` keys, as JSON (`{"election_timeout": 1000}`).
        #[arg(long)]
        raft_configuration: Option<String>,
        /// The shard this process serves, when the Executor's shards run as separate
        /// processes (its replicas see this shard id; `--peer-ports` are this shard's).
        #[arg(long, requires = "shards")]
        shard_id: Option<usize>,
        /// The Executor's number of shards (with `--shard-id`).
        #[arg(long, requires = "shard_id")]
        shards: Option<usize>,
    },
    /// Checks that a server answers, like `jina ping`: a gRPC health check (`jina ping
    /// executor`), or with `--dry-run` a request through the whole Flow (`jina ping flow`).
    /// Prints `SERVING` (health) or `READY` (dry run) and exits 0; exits non-zero with the
    /// reason otherwise.
    Ping {
        /// The server: `grpc://host:port` or `host:port`.
        addr: String,
        /// Ask the gateway for a dry run (`/jina.JinaGatewayDryRunRPC/dry_run`) instead of a
        /// health check: every Executor of the Flow must answer.
        #[arg(long)]
        dry_run: bool,
        /// How long to wait for the connection and the answer, in milliseconds.
        #[arg(long, default_value_t = 3000)]
        timeout_ms: u64,
    },
    /// Measures flotilla beside its baselines (a bare tonic echo, the vector search as a plain
    /// loop) in one run and prints min / median / max over repeats, the ratios to the baselines
    /// and to Jina's figures measured on this machine (quoted, not re-run), and what was checked.
    Bench {
        /// What to measure.
        #[arg(value_enum)]
        scenario: crate::bench::Scenario,
        /// Small sizes (N = 5,000 docs, Q = 100 queries, fewer posts, 1 repeat): all four
        /// scenarios in a few seconds.
        #[arg(long)]
        quick: bool,
        /// Also write every figure, comparison and check to this file as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Measurements per figure (default 3, or 1 with --quick).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100))]
        repeats: Option<u64>,
        /// vector-search: run only the variants whose name contains this text (the baselines
        /// always run), such as `--variant stateful`.
        #[arg(long)]
        variant: Option<String>,
    },
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Demo { slow_ms } => crate::demo::main(slow_ms).await,
        Command::Flow {
            uses,
            port,
            host,
            ssl_certfile,
            ssl_keyfile,
            dry_run,
        } => {
            let flow = Flow::load(&uses)?;
            let settings = flow.settings();
            let port = port.or(settings.port).unwrap_or(12345);
            let certfile = ssl_certfile.or_else(|| settings.ssl_certfile.clone().map(Into::into));
            let keyfile = ssl_keyfile.or_else(|| settings.ssl_keyfile.clone().map(Into::into));
            let mut opts = ServeOptions::new(Role::Gateway);
            opts.tls = tls(certfile, keyfile)?;
            // Jina's `with: prefetch`; 0 is no limit, as in Jina.
            if let Some(p) = settings.prefetch {
                opts.prefetch = if p == 0 { usize::MAX } else { p };
            }
            let graph = flow.graph()?;
            describe(&uses, &graph);
            if dry_run {
                return Ok(());
            }
            serve_with(flow.start()?, &host, port, opts).await
        }
        Command::Deployment {
            uses,
            port,
            host,
            ssl_certfile,
            ssl_keyfile,
            dry_run,
        } => {
            let dep = Deployment::load(&uses)?;
            let mut opts = ServeOptions::new(Role::Gateway);
            opts.tls = tls(ssl_certfile, ssl_keyfile)?;
            let graph = dep.graph()?;
            describe(&uses, &graph);
            if dry_run {
                return Ok(());
            }
            serve_with(dep.start()?, &host, port, opts).await
        }
        Command::Executor {
            uses,
            uses_with,
            uses_dynamic_batching,
            name,
            replicas,
            port,
            host,
            ssl_certfile,
            ssl_keyfile,
            workspace,
            stateful,
            replica_id,
            peer_ports,
            peer_hosts,
            raft_configuration,
            shard_id,
            shards,
        } => {
            let mut dep = Deployment::new().name(name).uses(uses).replicas(replicas);
            if let Some(with) = uses_with {
                let with = serde_json::from_str(&with)
                    .map_err(|e| Error::Serve(format!("--uses-with: {e}")))?;
                dep = dep.uses_with(with);
            }
            if let Some(batching) = uses_dynamic_batching {
                let batching = serde_json::from_str(&batching)
                    .map_err(|e| Error::Serve(format!("--uses-dynamic-batching: {e}")))?;
                dep = dep.uses_dynamic_batching(batching);
            }
            if let Some(ws) = workspace {
                dep = dep.workspace(ws);
            }
            if let Some(config) = raft_configuration {
                let config = serde_json::from_str(&config)
                    .map_err(|e| Error::Serve(format!("--raft-configuration: {e}")))?;
                dep = dep.raft_configuration(config);
            }
            if let (Some(shard), Some(shards)) = (shard_id, shards) {
                dep = dep.shard_of(shard, shards);
            }
            let mut port = port;
            if stateful {
                let cluster = cluster(replica_id.unwrap_or(0), &peer_ports, &peer_hosts)?;
                port = port.or(peer_ports.get(cluster.me as usize).copied());
                dep = dep.stateful(true).raft_cluster(cluster);
            }
            let port = port.ok_or_else(|| Error::Serve("--port is required".into()))?;
            let tls = tls(ssl_certfile, ssl_keyfile)?;
            if stateful && tls.is_some() {
                // Its peers reach its Raft service on the same port, and they speak plain gRPC.
                return Err(Error::Serve(
                    "--ssl-certfile with --stateful: Raft between replica processes does not \
                     speak TLS yet"
                        .into(),
                ));
            }
            let running = dep.start()?;
            let raft = running.kernel().routers()[0].shards()[0].raft().cloned();
            let mut opts = ServeOptions::new(Role::Executor);
            opts.raft = raft;
            opts.tls = tls;
            serve_with(running, &host, port, opts).await
        }
        Command::Ping {
            addr,
            dry_run,
            timeout_ms,
        } => ping(&addr, dry_run, Duration::from_millis(timeout_ms)).await,
        Command::Bench {
            scenario,
            quick,
            json,
            repeats,
            variant,
        } => bench(scenario, quick, json, repeats, variant).await,
    }
}

/// `flotilla bench`: runs, prints the tables on stdout, writes the JSON file if asked.
async fn bench(
    scenario: crate::bench::Scenario,
    quick: bool,
    json: Option<PathBuf>,
    repeats: Option<u64>,
    variant: Option<String>,
) -> Result<(), Error> {
    use crate::bench::{BenchConfig, RunInfo};
    let failed = |e: crate::bench::BenchError| Error::Io {
        path: format!("flotilla bench {}", scenario.name()),
        source: std::io::Error::other(e),
    };
    let mut cfg = if quick {
        BenchConfig::quick()
    } else {
        BenchConfig::full()
    };
    if let Some(r) = repeats {
        cfg.repeats = r as usize;
    }
    if let Some(v) = variant {
        let known: Vec<String> = cfg.vector.variants.iter().map(|x| x.name.clone()).collect();
        cfg.vector.variants.retain(|x| x.name.contains(&v));
        if cfg.vector.variants.is_empty() {
            return Err(Error::Io {
                path: "flotilla bench --variant".into(),
                source: std::io::Error::other(format!(
                    "{v:?} matches no vector-search variant (they are: {})",
                    known.join("; ")
                )),
            });
        }
    }
    let report = crate::bench::run(scenario, &cfg).await.map_err(failed)?;
    let title = format!(
        "flotilla bench {} ({}, {} repeat{}, {} cores; min / median / max over repeats)",
        scenario.name(),
        cfg.label,
        cfg.repeats,
        if cfg.repeats == 1 { "" } else { "s" },
        crate::bench::cores()
    );
    print!("{}", report.table(&title));
    if let Some(path) = json {
        report
            .write_json(&path, &RunInfo::new(scenario, &cfg))
            .map_err(failed)?;
        println!("\nwrote {}", path.display());
    }
    Ok(())
}

/// `flotilla ping`: prints the answer on stdout when the server is up; otherwise an error saying
/// what failed (nothing listening, not serving, which Executor failed the dry run).
async fn ping(addr: &str, dry_run: bool, timeout: Duration) -> Result<(), Error> {
    let failed = |e: String| Error::Io {
        path: format!("ping {addr}"),
        source: std::io::Error::other(e),
    };
    let client = tokio::time::timeout(
        timeout,
        Client::builder(addr)
            .connect_timeout(timeout)
            .timeout(timeout)
            .connect(),
    )
    .await
    .unwrap_or(Err(ClientError::Timeout(timeout)))
    .map_err(|e| match e {
        ClientError::Address { reason, .. } => failed(reason),
        e => failed(e.to_string()),
    })?;
    if dry_run {
        client.dry_run().await.map_err(|e| match e {
            ClientError::BadServer(e) => failed(format!("the dry run failed: {e}")),
            e => failed(e.to_string()),
        })?;
        println!("READY");
        return Ok(());
    }
    match client.health_check("").await {
        Ok(ServingStatus::Serving) => {
            println!("SERVING");
            Ok(())
        }
        Ok(other) => Err(failed(format!(
            "the health check answered {}",
            other.as_str_name()
        ))),
        Err(e) => Err(failed(e.to_string())),
    }
}

fn describe(path: &std::path::Path, graph: &flotilla_actors::graph::Graph) {
    println!("{} is valid:", path.display());
    print!("{}", crate::topology::describe(graph));
}

/// The certificate and key to serve with, read (and checked) before anything starts.
fn tls(certfile: Option<PathBuf>, keyfile: Option<PathBuf>) -> Result<Option<ServerTls>, Error> {
    match (certfile, keyfile) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => Ok(Some(ServerTls::from_files(&cert, &key)?)),
        (Some(_), None) => Err(Error::Serve(
            "ssl_certfile is given without ssl_keyfile: TLS needs both".into(),
        )),
        (None, Some(_)) => Err(Error::Serve(
            "ssl_keyfile is given without ssl_certfile: TLS needs both".into(),
        )),
    }
}

/// Serves `running` on `host:port` until Ctrl-C or SIGTERM, then stops: the server first (open
/// calls finish), then the Flow (in-flight requests finish).
async fn serve_with(
    running: Running,
    host: &str,
    port: u16,
    opts: ServeOptions,
) -> Result<(), Error> {
    let addr: SocketAddr = format!("{host}:{port}")
        .parse()
        .map_err(|e| Error::Serve(format!("{host}:{port}: {e}")))?;
    let running = Arc::new(running);
    let scheme = if opts.tls.is_some() { "grpcs" } else { "grpc" };
    let server = Server::start(running.clone(), addr, opts).await?;
    println!("serving on {scheme}://{}", server.local_addr());
    stop_signal().await;
    tracing::info!("stopping: in-flight requests finish first");
    server.stop().await;
    if let Ok(running) = Arc::try_unwrap(running) {
        running.close();
    }
    Ok(())
}

/// The Raft group of replica `me` of a stateful Executor whose replicas are processes at
/// `hosts` (one, or one per port; default 127.0.0.1) and `ports`.
fn cluster(
    me: u64,
    ports: &[u16],
    hosts: &[String],
) -> Result<flotilla_actors::raft::Cluster, Error> {
    let bad = |m: String| Error::Serve(m);
    if ports.is_empty() {
        return Err(bad("--stateful needs --peer-ports, one per replica".into()));
    }
    if me as usize >= ports.len() {
        return Err(bad(format!(
            "--replica-id {me} is not an index of the {} --peer-ports",
            ports.len()
        )));
    }
    if hosts.len() > 1 && hosts.len() != ports.len() {
        return Err(bad(format!(
            "--peer-hosts: {} hosts for {} --peer-ports (give one host, or one per port)",
            hosts.len(),
            ports.len()
        )));
    }
    let peers = ports
        .iter()
        .enumerate()
        .map(|(i, port)| {
            let host = match hosts {
                [] => "127.0.0.1",
                [one] => one.as_str(),
                many => many[i].as_str(),
            };
            (i as u64, format!("{host}:{port}"))
        })
        .collect();
    Ok(flotilla_actors::raft::Cluster {
        me,
        peers,
        transport: crate::grpc::raft::GrpcTransport::new(),
    })
}

/// Ctrl-C, or SIGTERM where there is one.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
