//! Closed-loop load: `c` concurrent clients, each a task that makes one call, waits for the
//! answer, checks it and makes the next, until the run's posts are done. Throughput is posts
//! over the wall time of the whole run; latency is each call's round trip.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::transport::{Channel, Endpoint};

use crate::actors::request::Request;
use crate::grpc::codec;
use crate::grpc::pb::jina::DataRequestProto;
use crate::grpc::pb::jina::jina_single_data_request_rpc_client::JinaSingleDataRequestRpcClient;
use crate::grpc::pb::jina::status_proto::StatusCode;
use crate::{DocList, Running};

use super::stats::Latencies;
use super::target::Mode;
use super::{BenchError, Ctx, Progress, Recorder};

/// Checks the docs of one answer; `Err` says what is wrong.
pub type Check = fn(&DocList) -> Result<(), String>;

/// One client: makes one call and checks its answer.
pub trait Caller: Send + 'static {
    fn call(&mut self) -> impl Future<Output = Result<(), BenchError>> + Send;
}

/// What one run of closed-loop load measured.
#[derive(Debug)]
pub struct LoadRun {
    /// Calls made (and answered right).
    pub posts: usize,
    pub wall: Duration,
    pub latencies: Latencies,
}

impl LoadRun {
    pub fn posts_per_s(&self) -> f64 {
        self.posts as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// The `p`-th percentile latency in µs (0 without calls).
    pub fn percentile_us(&mut self, p: f64) -> f64 {
        self.latencies
            .percentile(p)
            .map_or(0.0, |d| d.as_secs_f64() * 1e6)
    }
}

/// How a scenario measures one target with closed-loop clients, and what it records.
pub struct Measurement<'a> {
    /// The scenario's name, for the progress line.
    pub scenario: &'a str,
    pub posts: usize,
    /// Calls before the measured runs, not recorded.
    pub warmup: usize,
    pub budget: Option<Duration>,
    pub repeats: usize,
    /// The latency percentiles recorded (`latency p50`, …).
    pub percentiles: &'a [f64],
    /// What every answer was checked to hold, as the report's check says it.
    pub checked: &'a str,
}

impl Measurement<'_> {
    /// Warms up, then records `repeats` runs of `posts` calls made by `callers`.
    pub async fn run<C: Caller>(
        &self,
        rec: &mut Recorder,
        variant: &str,
        mode: Mode,
        callers: Vec<C>,
        p: &Progress,
    ) -> Result<(), BenchError> {
        let mut callers = self.warm(callers).await?;
        for i in 0..self.repeats {
            p.step(self.step(variant, mode, i));
            let (back, run) = closed_loop(callers, self.posts, self.budget).await?;
            callers = back;
            self.record(rec, variant, mode, run);
            p.done();
        }
        Ok(())
    }

    /// Makes the warm-up calls and gives the callers back.
    pub async fn warm<C: Caller>(&self, callers: Vec<C>) -> Result<Vec<C>, BenchError> {
        Ok(closed_loop(callers, self.warmup, self.budget).await?.0)
    }

    /// The progress line of repeat `i` of `variant`.
    pub fn step(&self, variant: &str, mode: Mode, i: usize) -> String {
        format!(
            "{}: {variant}, {} ({}/{})",
            self.scenario,
            mode.label(),
            i + 1,
            self.repeats
        )
    }

    /// Records what one measured run gave: throughput, the latency percentiles, the check.
    pub fn record(&self, rec: &mut Recorder, variant: &str, mode: Mode, mut run: LoadRun) {
        let m = mode.label();
        rec.add(variant, m, "throughput", "posts/s", run.posts_per_s());
        for &pct in self.percentiles {
            let name = format!("latency p{pct}");
            rec.add(variant, m, &name, "µs", run.percentile_us(pct));
        }
        let answered = run.posts as u64;
        rec.check(variant, m, self.checked, answered, answered);
    }
}

/// `1 client`, `16 clients`.
pub fn clients_label(clients: usize) -> String {
    if clients == 1 {
        "1 client".into()
    } else {
        format!("{clients} clients")
    }
}

/// Runs `posts` calls spread over `callers` (one task each, all started together) and returns
/// them with what was measured. With a `budget`, clients stop starting calls once it has passed,
/// so a slow target ends early with fewer posts. Fails on the first failed call or wrong answer.
pub async fn closed_loop<C: Caller>(
    callers: Vec<C>,
    posts: usize,
    budget: Option<Duration>,
) -> Result<(Vec<C>, LoadRun), BenchError> {
    let n = callers.len().max(1);
    let start = Instant::now();
    let deadline = budget.map(|b| start + b);
    let tasks: Vec<_> = callers
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            // The first `posts % n` clients make one call more.
            let share = posts / n + usize::from(i < posts % n);
            tokio::spawn(async move {
                let mut lat = Latencies::with_capacity(share);
                for _ in 0..share {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        break;
                    }
                    let t = Instant::now();
                    c.call().await?;
                    lat.push(t.elapsed());
                }
                Ok::<_, BenchError>((c, lat))
            })
        })
        .collect();
    let mut callers = Vec::with_capacity(n);
    let mut latencies = Latencies::with_capacity(posts);
    let mut first_error = None;
    for t in tasks {
        match t.await.ctx("a client task") {
            Ok(Ok((c, lat))) => {
                callers.push(c);
                latencies.extend(lat);
            }
            Ok(Err(e)) | Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let wall = start.elapsed();
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok((
        callers,
        LoadRun {
            posts: latencies.len(),
            wall,
            latencies,
        },
    ))
}

/// An in-process client: `Running::call` with a fresh request each time.
pub struct InProcess {
    running: Arc<Running>,
    make: fn() -> Request,
    check: Check,
}

impl InProcess {
    pub fn new(running: Arc<Running>, make: fn() -> Request, check: Check) -> Self {
        InProcess {
            running,
            make,
            check,
        }
    }
}

impl Caller for InProcess {
    async fn call(&mut self) -> Result<(), BenchError> {
        let req = (self.make)();
        let out = self.running.call(req).await.ctx("an in-process call")?;
        (self.check)(&out.docs).map_err(|e| BenchError::wrong("an in-process call", e))
    }
}

/// A gRPC client of its own connection: unary `process_single_data` with one prepared request
/// (a persistent channel, as Jina's `raw_seq` measurement does).
pub struct Unary {
    stub: JinaSingleDataRequestRpcClient<Channel>,
    request: DataRequestProto,
    check: Check,
}

impl Unary {
    /// `clients` clients of `addr`, each on a connection of its own, all sending `request`.
    pub async fn connect(
        addr: std::net::SocketAddr,
        clients: usize,
        request: &Request,
        check: Check,
    ) -> Result<Vec<Unary>, BenchError> {
        let proto = codec::request_to_proto(request);
        let mut out = Vec::with_capacity(clients);
        for _ in 0..clients {
            let channel = Endpoint::from_shared(format!("http://{addr}"))
                .ctx(format!("the address {addr}"))?
                .tcp_nodelay(true)
                .connect()
                .await
                .ctx(format!("connecting to {addr}"))?;
            out.push(Unary {
                stub: JinaSingleDataRequestRpcClient::new(channel)
                    .max_decoding_message_size(usize::MAX)
                    .max_encoding_message_size(usize::MAX),
                request: proto.clone(),
                check,
            });
        }
        Ok(out)
    }
}

impl Caller for Unary {
    async fn call(&mut self) -> Result<(), BenchError> {
        let context = "a unary gRPC call";
        let resp = self
            .stub
            .process_single_data(self.request.clone())
            .await
            .ctx(context)?
            .into_inner();
        if let Some(s) = resp.header.as_ref().and_then(|h| h.status.as_ref())
            && s.code != StatusCode::Success as i32
        {
            let why = s.exception.as_ref().map_or_else(
                || s.description.clone(),
                |e| format!("{}: {}", e.name, e.args.join(", ")),
            );
            return Err(BenchError::wrong(context, format!("error status: {why}")));
        }
        let req = codec::request_from_proto(resp)
            .map_err(|e| BenchError::wrong(context, e.to_string()))?;
        (self.check)(&req.docs).map_err(|e| BenchError::wrong(context, e))
    }
}
