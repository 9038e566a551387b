//! `fanout`: a Flow of three parallel branches joined with reduce.
//!
//! gateway → `a`, `b`, `c` in parallel → `join` (needs all three; the default reduce merges
//! their docs by id, matches included). Each post is one doc carrying ten matches; each branch
//! adds a match of its own, so every answer must hold the ten matches once plus one per branch
//! (a check of the reduce, run on every answer). Posts/s and latency from 1 and 16 closed-loop
//! clients, in process and through the gRPC gateway, beside the same posts to a single `Echo`
//! Deployment (the cost of one Executor without fan-out).

use std::sync::Arc;
use std::time::Duration;

use super::baseline::EchoServer;
use super::load::{Check, InProcess, Measurement, Unary, clients_label};
use super::target::{Mode, Target};
use super::{BenchConfig, BenchError, Ctx, Progress, Recorder, Report};
use crate::actors::executor::factory;
use crate::actors::prelude::{Context, Executor, Requests};
use crate::actors::request::Request;
use crate::{Deployment, Doc, DocList, Exec, Flow, Running};

/// Sizes of the fanout scenario.
#[derive(Clone, Debug)]
pub struct FanoutConfig {
    /// Posts per measurement.
    pub posts: usize,
    /// Concurrent clients.
    pub clients: Vec<usize>,
    /// Posts before each measurement, not measured.
    pub warmup: usize,
    /// A measurement stops early (with fewer posts) once this long has passed.
    pub budget: Option<Duration>,
}

impl FanoutConfig {
    pub fn full() -> Self {
        FanoutConfig {
            posts: 5_000,
            clients: vec![1, 16],
            warmup: 200,
            budget: Some(Duration::from_secs(5)),
        }
    }

    pub fn quick() -> Self {
        FanoutConfig {
            posts: 500,
            warmup: 50,
            budget: Some(Duration::from_millis(500)),
            ..FanoutConfig::full()
        }
    }

    pub fn tiny() -> Self {
        FanoutConfig {
            posts: 20,
            clients: vec![1, 3],
            warmup: 2,
            budget: None,
        }
    }
}

const SCENARIO: &str = "fanout";
/// Matches every posted doc carries.
pub const MATCHES: usize = 10;
const BRANCHES: [&str; 3] = ["a", "b", "c"];

/// The variant names.
pub const FANOUT: &str = "3 branches + join";
pub const SINGLE: &str = "1 Echo (no fan-out)";
pub const ECHO: &str = "bare tonic echo";

/// A branch: adds to every doc a match named after itself.
struct Branch;

impl Executor for Branch {
    fn requests(r: &mut Requests<Self>) {
        r.default(Branch::mark);
    }
}

impl Branch {
    fn mark(&mut self, req: &mut Request, ctx: &Context) {
        for d in req.docs.iter_mut() {
            let hit = Doc::with_id(format!("{}:{}", ctx.deployment, d.id()))
                .with_text(format!("found by {}", ctx.deployment))
                .with_score("cosine", 0.5);
            d.matches_mut().push(hit);
        }
    }
}

/// The Flow: gateway → a, b, c → join.
pub fn flow() -> Flow {
    let mut f = Flow::new().register("Branch", factory(|_| Ok(Branch)));
    for b in BRANCHES {
        f = f.add(Exec::new().name(b).uses("Branch").needs("gateway"));
    }
    f.needs(BRANCHES, Exec::new().name("join"))
}

fn query() -> Request {
    let mut d = Doc::with_id("d").with_text("a query");
    for i in 0..MATCHES {
        d.matches_mut().push(
            Doc::with_id(format!("m{i}"))
                .with_text(format!("match {i}"))
                .with_score("cosine", 1.0 - i as f64 / 100.0),
        );
    }
    Request::new("/search", DocList::from(d))
}

fn match_ids(docs: &DocList) -> Result<Vec<String>, String> {
    match docs.first() {
        Some(d) if docs.len() == 1 && d.id() == "d" => Ok(d
            .matches()
            .map(|m| m.ids().into_iter().map(str::to_owned).collect())
            .unwrap_or_default()),
        _ => Err(format!(
            "expected the one doc posted, got {} docs",
            docs.len()
        )),
    }
}

fn expected(branches: &[&str]) -> Vec<String> {
    let mut want: Vec<String> = (0..MATCHES).map(|i| format!("m{i}")).collect();
    want.extend(branches.iter().map(|b| format!("{b}:d")));
    want.sort();
    want
}

/// Every posted match once, plus one match per branch of `branches`.
fn check_matches(docs: &DocList, branches: &[&str]) -> Result<(), String> {
    let mut got = match_ids(docs)?;
    got.sort();
    let want = expected(branches);
    if got == want {
        Ok(())
    } else {
        Err(format!("matches {got:?}, expected {want:?}"))
    }
}

fn check_fanout(docs: &DocList) -> Result<(), String> {
    check_matches(docs, &BRANCHES)
}

fn check_single(docs: &DocList) -> Result<(), String> {
    check_matches(docs, &[])
}

/// Runs the fanout scenario.
pub async fn run(cfg: &BenchConfig, p: &Progress) -> Result<Report, BenchError> {
    let c = &cfg.fanout;
    let repeats = cfg.repeats.max(1);
    p.plan((5 * c.clients.len() * repeats) as u64);
    let mut rec = Recorder::new(SCENARIO);
    let measure = Measurement {
        scenario: SCENARIO,
        posts: c.posts,
        warmup: c.warmup,
        budget: c.budget,
        repeats,
        percentiles: &[50.0, 99.0],
        checked: "answers hold the posted matches once, plus one per branch",
    };
    for (variant, check) in [(FANOUT, check_fanout as Check), (SINGLE, check_single)] {
        for mode in Mode::BOTH {
            let running: Running = if variant == FANOUT {
                flow().start().ctx("starting the fan-out Flow")?
            } else {
                Deployment::new()
                    .name("echo")
                    .uses("Echo")
                    .start()
                    .ctx("starting the Echo Deployment")?
            };
            let target = Target::start(running, mode).await?;
            for &clients in &c.clients {
                let v = format!("{variant} · {}", clients_label(clients));
                match target.addr() {
                    None => {
                        let callers = (0..clients)
                            .map(|_| InProcess::new(Arc::clone(target.running()), query, check))
                            .collect();
                        measure.run(&mut rec, &v, mode, callers, p).await?;
                    }
                    Some(addr) => {
                        let callers = Unary::connect(addr, clients, &query(), check).await?;
                        measure.run(&mut rec, &v, mode, callers, p).await?;
                    }
                }
            }
            target.close().await;
        }
    }
    // The same unary calls to a bare tonic echo.
    let echo = EchoServer::start().await?;
    for &clients in &c.clients {
        let v = format!("{ECHO} · {}", clients_label(clients));
        let callers = Unary::connect(echo.local_addr(), clients, &query(), check_single).await?;
        measure.run(&mut rec, &v, Mode::Grpc, callers, p).await?;
    }
    echo.stop().await;

    for mode in Mode::BOTH {
        for &clients in &c.clients {
            let l = clients_label(clients);
            let fan = format!("{FANOUT} · {l}");
            let one = format!("{SINGLE} · {l}");
            rec.compare(
                &format!("{}, {fan}: posts/s", mode.label()),
                rec.median(&fan, mode.label(), "throughput"),
                rec.median(&one, mode.label(), "throughput"),
                "posts/s",
                &format!("{one}, {}", mode.label()),
                true,
                None,
            );
        }
    }
    for &clients in &c.clients {
        let l = clients_label(clients);
        let echo = format!("{ECHO} · {l}");
        let g = Mode::Grpc.label();
        for v in [FANOUT, SINGLE] {
            let v = format!("{v} · {l}");
            rec.compare(
                &format!("{g}, {v}: posts/s"),
                rec.median(&v, g, "throughput"),
                rec.median(&echo, g, "throughput"),
                "posts/s",
                &format!("{echo} (same message)"),
                true,
                None,
            );
        }
    }
    rec.note(format!(
        "fanout: each post is one doc with {MATCHES} matches; gRPC is unary \
         process_single_data, one persistent connection per client; {} posts per measurement, \
         {}after {} warm-up posts.",
        c.posts,
        c.budget
            .map(|b| format!("or fewer if {:.1} s pass first, ", b.as_secs_f64()))
            .unwrap_or_default(),
        c.warmup
    ));
    Ok(rec.finish())
}
