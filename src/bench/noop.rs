//! `noop`: how fast flotilla moves a request that does nothing.
//!
//! A Deployment of the built-in `Echo` (1 and 3 replicas) gets posts of one text doc from 1, 16
//! and 64 concurrent closed-loop clients, in process (`Running::call`) and through the gRPC
//! gateway (unary `process_single_data`, one persistent connection per client). Beside it, in
//! the same run, the same unary calls go to a bare tonic echo with no flotilla in the path. Each
//! answer is checked (one doc, the text posted).
//!
//! It also starts a 3-replica Deployment of `ExactNNIndexer` (dim 128, empty) and reads the
//! process's RSS before and after: what the Deployment costs in memory, and how long it takes
//! to start and stop.

use std::time::{Duration, Instant};

use serde_json::json;

use super::baseline::EchoServer;
use super::jina;
use super::load::{InProcess, Measurement, Unary, clients_label, closed_loop};
use super::target::{Mode, Target};
use super::{BenchConfig, BenchError, Ctx, Progress, Recorder, Report, rss_bytes};
use crate::actors::request::Request;
use crate::{Deployment, Doc, DocList, Running};

/// Sizes of the noop scenario.
#[derive(Clone, Debug)]
pub struct NoopConfig {
    /// Posts per measurement in process.
    pub posts_in_process: usize,
    /// Posts per measurement over gRPC (flotilla and the bare echo).
    pub posts_grpc: usize,
    /// Concurrent clients.
    pub clients: Vec<usize>,
    pub replicas: Vec<i64>,
    /// Posts before each measurement, not measured.
    pub warmup: usize,
    /// A measurement stops early (with fewer posts) once this long has passed.
    pub budget: Option<Duration>,
}

impl NoopConfig {
    pub fn full() -> Self {
        NoopConfig {
            posts_in_process: 20_000,
            posts_grpc: 10_000,
            clients: vec![1, 16, 64],
            replicas: vec![1, 3],
            warmup: 500,
            budget: Some(Duration::from_secs(5)),
        }
    }

    pub fn quick() -> Self {
        NoopConfig {
            posts_in_process: 2_000,
            posts_grpc: 1_000,
            warmup: 100,
            budget: Some(Duration::from_millis(500)),
            ..NoopConfig::full()
        }
    }

    pub fn tiny() -> Self {
        NoopConfig {
            posts_in_process: 40,
            posts_grpc: 30,
            clients: vec![1, 4],
            replicas: vec![1, 3],
            warmup: 4,
            budget: None,
        }
    }
}

const SCENARIO: &str = "noop";
const STARTUP: &str = "3 replicas, empty ExactNNIndexer";
/// The metric of one repeat's gRPC throughput over the bare echo's in the same repeat.
pub const PAIRED: &str = "throughput ÷ bare echo of the same repeat";

/// The variant name of a flotilla measurement.
pub fn variant(replicas: i64, clients: usize) -> String {
    let r = if replicas == 1 { "replica" } else { "replicas" };
    format!("{replicas} {r} · {}", clients_label(clients))
}

/// The variant name of a bare-echo measurement.
pub fn echo_variant(clients: usize) -> String {
    format!("bare tonic echo · {}", clients_label(clients))
}

fn hello() -> Request {
    Request::new("/", DocList::from(Doc::text_doc("hello")))
}

fn one_hello(docs: &DocList) -> Result<(), String> {
    match docs.first() {
        Some(d) if docs.len() == 1 && d.text() == Some("hello") => Ok(()),
        _ => Err(format!(
            "expected the one doc posted, got {} docs",
            docs.len()
        )),
    }
}

/// Runs the noop scenario.
pub async fn run(cfg: &BenchConfig, p: &Progress) -> Result<Report, BenchError> {
    let c = &cfg.noop;
    let repeats = cfg.repeats.max(1);
    let per_target = (c.clients.len() * repeats) as u64;
    p.plan(repeats as u64 + per_target * (1 + 2 * c.replicas.len() as u64));
    let mut rec = Recorder::new(SCENARIO);
    let grpc = Measurement {
        scenario: SCENARIO,
        posts: c.posts_grpc,
        warmup: c.warmup,
        budget: c.budget,
        repeats,
        percentiles: &[50.0, 99.0, 99.9],
        checked: "answers hold the doc posted",
    };
    let in_process = Measurement {
        posts: c.posts_in_process,
        ..grpc
    };

    // First, while the process is fresh: what a 3-replica Deployment costs to start and hold.
    for i in 0..repeats {
        p.step(format!(
            "noop: start and RSS of {STARTUP} ({}/{repeats})",
            i + 1
        ));
        startup(&mut rec, i == 0).await?;
        p.done();
    }

    // Over gRPC: the bare tonic echo and flotilla's gateways (1 and 3 replicas) are all up at
    // once, and every repeat measures them back to back, echo first. A ratio then compares the
    // same minute of a machine whose speed drifts (a shared host's does, by 2× here), and each
    // repeat's own ratio is recorded besides.
    let echo = EchoServer::start().await?;
    let mut gateways = Vec::new();
    for &replicas in &c.replicas {
        let dep = echo_deployment(replicas)?;
        gateways.push((replicas, Target::start(dep, Mode::Grpc).await?));
    }
    for &clients in &c.clients {
        let mut lanes = vec![(
            echo_variant(clients),
            Unary::connect(echo.local_addr(), clients, &hello(), one_hello).await?,
        )];
        for (replicas, target) in &gateways {
            let addr = target
                .addr()
                .ok_or_else(|| BenchError::wrong("the noop gateway", "no address"))?;
            let callers = Unary::connect(addr, clients, &hello(), one_hello).await?;
            lanes.push((variant(*replicas, clients), callers));
        }
        for (_, callers) in &mut lanes {
            *callers = grpc.warm(std::mem::take(callers)).await?;
        }
        for i in 0..repeats {
            let mut echo_rate = None;
            for (v, callers) in &mut lanes {
                p.step(grpc.step(v, Mode::Grpc, i));
                let (back, run) =
                    closed_loop(std::mem::take(callers), c.posts_grpc, c.budget).await?;
                *callers = back;
                let rate = run.posts_per_s();
                grpc.record(&mut rec, v, Mode::Grpc, run);
                match echo_rate {
                    None => echo_rate = Some(rate),
                    Some(e) => rec.add(v, Mode::Grpc.label(), PAIRED, "×", rate / e),
                }
                p.done();
            }
        }
    }
    for (_, target) in gateways {
        target.close().await;
    }
    echo.stop().await;

    // In process.
    for &replicas in &c.replicas {
        let target = Target::start(echo_deployment(replicas)?, Mode::InProcess).await?;
        for &clients in &c.clients {
            let callers = (0..clients)
                .map(|_| InProcess::new(target.running().clone(), hello, one_hello))
                .collect();
            let v = variant(replicas, clients);
            in_process
                .run(&mut rec, &v, Mode::InProcess, callers, p)
                .await?;
        }
        target.close().await;
    }

    compare(&mut rec, c);
    rec.note(format!(
        "noop: closed-loop clients; posts of one text doc to a Deployment of `Echo`; gRPC is \
         unary process_single_data, one persistent connection per client, to flotilla's \
         gateway or to a bare tonic echo in the same process; {} posts per gRPC measurement, \
         {} in process, {}after {} warm-up posts.",
        c.posts_grpc,
        c.posts_in_process,
        c.budget
            .map(|b| format!("or fewer if {:.1} s pass first, ", b.as_secs_f64()))
            .unwrap_or_default(),
        c.warmup
    ));
    Ok(rec.finish())
}

/// The Deployment of `Echo` measured, with `replicas`.
fn echo_deployment(replicas: i64) -> Result<Running, BenchError> {
    Deployment::new()
        .name("noop")
        .uses("Echo")
        .replicas(replicas)
        .start()
        .ctx("starting the Echo Deployment")
}

/// Starts and stops a 3-replica `ExactNNIndexer` Deployment, reading the RSS around the start.
/// Only the `first` start in the process reads the RSS: later ones reuse the memory (thread
/// stacks, allocator arenas) the first one left behind, and would report less than it costs.
async fn startup(rec: &mut Recorder, first: bool) -> Result<(), BenchError> {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let before = rss_bytes();
    let t = Instant::now();
    let dep = Deployment::new()
        .name("indexer")
        .uses("ExactNNIndexer")
        .uses_with(json!({"dim": 128}))
        .replicas(3)
        .start()
        .ctx("starting a 3-replica ExactNNIndexer Deployment")?;
    let started = t.elapsed();
    let after = rss_bytes();
    let count = dep
        .call(Request::new("/count", DocList::new()))
        .await
        .ctx("/count on the 3-replica Deployment")?;
    let counts: Vec<&serde_json::Value> = count.results.values().collect();
    if counts != [&json!({"count": 0})] {
        return Err(BenchError::wrong(
            "/count on the empty 3-replica Deployment",
            format!("expected one {{\"count\": 0}}, got {counts:?}"),
        ));
    }
    let t = Instant::now();
    dep.close();
    let stopped = t.elapsed();
    let m = Mode::InProcess.label();
    rec.add(STARTUP, m, "start", "ms", started.as_secs_f64() * 1e3);
    rec.add(STARTUP, m, "stop", "ms", stopped.as_secs_f64() * 1e3);
    if let (true, Some(b), Some(a)) = (first, before, after) {
        rec.add(STARTUP, m, "process RSS after start", "MiB", mib(a));
        rec.add(
            STARTUP,
            m,
            "RSS added by the Deployment",
            "MiB",
            mib(a.saturating_sub(b)),
        );
    }
    rec.check(STARTUP, m, "/count answers 0", 1, 1);
    Ok(())
}

/// Issue 6: in process, at least this many no-op posts per second.
const IN_PROCESS_TARGET: f64 = 200_000.0;

/// Issues 4 and 6: over gRPC, at least 20× Jina's posts/s measured on the same machine.
fn at_least_20x(ours: Option<f64>, jina: f64) -> Option<(String, bool)> {
    ours.map(|o| ("≥ 20× Jina".into(), o >= 20.0 * jina))
}

fn compare(rec: &mut Recorder, c: &NoopConfig) {
    let grpc = Mode::Grpc.label();
    let inproc = Mode::InProcess.label();
    for &r in &c.replicas {
        for &clients in &c.clients {
            let v = variant(r, clients);
            let ours = rec.median(&v, grpc, "throughput");
            let echo = rec.median(&echo_variant(clients), grpc, "throughput");
            // Judged on the median of the repeats' own ratios (each against the echo measured
            // just before it), which a drifting machine moves least.
            let paired = rec.median(&v, grpc, PAIRED);
            rec.compare(
                &format!("gRPC, {v}: posts/s"),
                ours,
                echo,
                "posts/s",
                &echo_variant(clients),
                true,
                paired.map(|r| (format!("≥ 0.70× bare echo (paired: {r:.2}×)"), r >= 0.7)),
            );
        }
    }
    let seq = variant(1, 1);
    let p50 = rec.median(&seq, grpc, "latency p50");
    rec.compare(
        &format!("gRPC, {seq}: latency p50"),
        p50,
        rec.median(&echo_variant(1), grpc, "latency p50"),
        "µs",
        &echo_variant(1),
        false,
        p50.map(|x| ("< 150 µs".into(), x < 150.0)),
    );
    rec.compare(
        &format!("in-process, {seq}: latency p50"),
        rec.median(&seq, inproc, "latency p50"),
        rec.median(&echo_variant(1), grpc, "latency p50"),
        "µs",
        &format!("{} (gRPC)", echo_variant(1)),
        false,
        None,
    );

    // Jina on the same machine (quoted).
    let src = jina::SOURCE;
    rec.compare(
        &format!("gRPC, {seq}: posts/s"),
        rec.median(&seq, grpc, "throughput"),
        Some(jina::NOOP_RAW_SEQ_RPS),
        "posts/s",
        &format!("{src}: raw_seq, 1 replica, sequential unary on a persistent channel"),
        true,
        at_least_20x(rec.median(&seq, grpc, "throughput"), jina::NOOP_RAW_SEQ_RPS),
    );
    rec.compare(
        &format!("gRPC, {seq}: latency p50"),
        p50,
        Some(jina::NOOP_RAW_SEQ_P50_US),
        "µs",
        &format!("{src}: raw_seq p50"),
        false,
        None,
    );
    rec.compare(
        &format!("gRPC, {seq}: posts/s"),
        rec.median(&seq, grpc, "throughput"),
        Some(jina::NOOP_CLIENT_SEQ_RPS),
        "posts/s",
        &format!("{src}: seq, 1 replica, sequential Client.post"),
        true,
        None,
    );
    let many = variant(1, 16);
    for (fig, what, judged) in [
        (
            jina::NOOP_RAW8_RPS,
            "raw8, 1 replica, 8 concurrent unary calls (Jina's best concurrent figure)",
            true,
        ),
        (
            jina::NOOP_ASYNC8_RPS,
            "async8, 1 replica, 8 asyncio clients",
            false,
        ),
    ] {
        let ours = rec.median(&many, grpc, "throughput");
        rec.compare(
            &format!("gRPC, {many}: posts/s"),
            ours,
            Some(fig),
            "posts/s",
            &format!("{src}: {what}"),
            true,
            if judged {
                at_least_20x(ours, fig)
            } else {
                None
            },
        );
    }

    // Issue 6's in-process target: throughput, so with the most clients measured.
    let busiest = variant(1, c.clients.iter().copied().max().unwrap_or(1));
    let inproc_many = rec.median(&busiest, inproc, "throughput");
    rec.compare(
        &format!("in-process, {busiest}: posts/s"),
        inproc_many,
        Some(IN_PROCESS_TARGET),
        "posts/s",
        "issue 6's target for in-process posts",
        true,
        inproc_many.map(|x| ("≥ 200,000 posts/s".into(), x >= IN_PROCESS_TARGET)),
    );

    let rss = rec.median(STARTUP, inproc, "process RSS after start");
    rec.compare(
        &format!("{STARTUP}: RSS of the whole process"),
        rss,
        Some(jina::RSS_R3_IDLE_MIB),
        "MiB",
        &format!(
            "{}: idle RSS of a 3-replica no-op Deployment, 5 processes summed",
            jina::SOURCE_RESULTS
        ),
        false,
        rss.map(|x| ("< 30 MiB".into(), x < 30.0)),
    );
    rec.compare(
        &format!("{STARTUP}: start"),
        rec.median(STARTUP, inproc, "start"),
        Some(jina::START_R3_WARM_MS),
        "ms",
        &format!(
            "{}: warm start of a 3-replica Deployment, fastest of 6",
            jina::SOURCE_RESULTS
        ),
        false,
        None,
    );
}
