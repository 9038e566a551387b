//! `bottleneck`: the seed's slow/fast demo (`flotilla demo`), measured.
//!
//! A Deployment of `SlowFast` (`/slow` blocks its replica for `slow_ms`, `/fast` returns at once)
//! gets four concurrent posts — slow, fast, slow, fast — with 1 and with 2 replicas, in process
//! and through the gRPC gateway. With one replica the four take two slow calls; with two, the
//! idle replica takes the next request and the four take one slow call. The figure that
//! matters is the 2-replica wall time over one slow call (target: within 5%). Each run checks
//! who served what: with 2 replicas the two slow calls ran on different replicas.

use std::time::{Duration, Instant};

use super::jina;
use super::target::{Mode, Target};
use super::{BenchConfig, BenchError, Ctx, Progress, Recorder, Report};
use crate::{Deployment, Doc, DocList};

/// Sizes of the bottleneck scenario.
#[derive(Clone, Debug)]
pub struct BottleneckConfig {
    /// How long `/slow` blocks its replica.
    pub slow_ms: u64,
}

impl BottleneckConfig {
    pub fn full() -> Self {
        BottleneckConfig { slow_ms: 300 }
    }

    pub fn quick() -> Self {
        BottleneckConfig { slow_ms: 100 }
    }

    pub fn tiny() -> Self {
        BottleneckConfig { slow_ms: 20 }
    }
}

const SCENARIO: &str = "bottleneck";
const ENDPOINTS: [&str; 4] = ["/slow", "/fast", "/slow", "/fast"];

/// The variant name for `replicas`.
pub fn variant(replicas: i64) -> String {
    if replicas == 1 {
        "1 replica".into()
    } else {
        format!("{replicas} replicas")
    }
}

/// What one run of the four posts showed.
struct Run {
    wall: Duration,
    /// The replica that served each post, in the order posted.
    served_by: Vec<String>,
}

async fn four_posts(replicas: i64, mode: Mode, slow_ms: u64) -> Result<Run, BenchError> {
    let dep = Deployment::new()
        .name("slow_fast")
        .uses("SlowFast")
        .uses_with(serde_json::json!({ "slow_ms": slow_ms }))
        .replicas(replicas)
        .start()
        .ctx("starting the SlowFast Deployment")?;
    let target = Target::start(dep, mode).await?;
    let start = Instant::now();
    let posts = ENDPOINTS
        .iter()
        .map(|&ep| target.post(ep, DocList::from(Doc::new()), 100));
    let answers = futures::future::try_join_all(posts).await;
    let wall = start.elapsed();
    target.close().await;
    let served_by = answers?
        .iter()
        .zip(ENDPOINTS)
        .map(|(docs, ep)| {
            docs.first()
                .and_then(|d| d.tag("served_by"))
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                .ok_or_else(|| {
                    BenchError::wrong(
                        format!("{} post to {ep}", mode.label()),
                        "the answer names no replica (no served_by tag)",
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Run { wall, served_by })
}

/// Runs the bottleneck scenario.
pub async fn run(cfg: &BenchConfig, p: &Progress) -> Result<Report, BenchError> {
    let slow_ms = cfg.bottleneck.slow_ms;
    let repeats = cfg.repeats.max(1);
    p.plan((repeats * 2 * 2) as u64);
    let mut rec = Recorder::new(SCENARIO);
    for mode in Mode::BOTH {
        for replicas in [1i64, 2] {
            let v = variant(replicas);
            for i in 0..repeats {
                p.step(format!(
                    "bottleneck: {v}, {} ({}/{repeats})",
                    mode.label(),
                    i + 1
                ));
                let run = four_posts(replicas, mode, slow_ms).await?;
                let ms = run.wall.as_secs_f64() * 1e3;
                rec.add(&v, mode.label(), "wall time of the 4 posts", "ms", ms);
                rec.add(
                    &v,
                    mode.label(),
                    "wall / one slow call",
                    "×",
                    ms / slow_ms as f64,
                );
                let slow: Vec<&String> = run.served_by.iter().step_by(2).collect();
                let (what, ok) = if replicas == 1 {
                    (
                        "every post served by the one replica",
                        run.served_by.iter().all(|w| w.ends_with("rep-0")),
                    )
                } else {
                    (
                        "the two /slow posts served by different replicas",
                        slow.len() == 2 && slow[0] != slow[1],
                    )
                };
                if !ok {
                    return Err(BenchError::wrong(
                        format!("bottleneck, {v}, {}", mode.label()),
                        format!("{what}: served by {:?}", run.served_by),
                    ));
                }
                rec.check(&v, mode.label(), what, 1, 1);
                p.done();
            }
        }
    }
    for mode in Mode::BOTH {
        let two = rec.median(&variant(2), mode.label(), "wall / one slow call");
        rec.compare(
            &format!("{}, 2 replicas: wall / one slow call", mode.label()),
            two,
            Some(jina::SLOW_FAST_R2_S / jina::SLOW_FAST_SLOW_S),
            "×",
            &format!(
                "{}: {} s for a {} s slow call",
                jina::SOURCE_RESULTS,
                jina::SLOW_FAST_R2_S,
                jina::SLOW_FAST_SLOW_S
            ),
            false,
            two.map(|x| ("≤ 1.05×".into(), x <= 1.05)),
        );
        rec.compare(
            &format!("{}, 1 replica: wall / one slow call", mode.label()),
            rec.median(&variant(1), mode.label(), "wall / one slow call"),
            Some(jina::SLOW_FAST_R1_S / jina::SLOW_FAST_SLOW_S),
            "×",
            &format!(
                "{}: {} s for a {} s slow call",
                jina::SOURCE_RESULTS,
                jina::SLOW_FAST_R1_S,
                jina::SLOW_FAST_SLOW_S
            ),
            false,
            None,
        );
    }
    rec.note(format!(
        "bottleneck: /slow blocks its replica for {slow_ms} ms; four concurrent posts \
         (/slow, /fast, /slow, /fast); wall time from the first post to the last answer, \
         Deployment start excluded (Jina's figures: its request phase, with 5 s sleeps)."
    ));
    Ok(rec.finish())
}
