//! `flotilla demo`: the seed's bottleneck demo, end to end, on an embedded Deployment.
//!
//! A `SlowFast` Executor (`/slow` blocks its replica, `/fast` returns at once) gets four
//! concurrent posts — slow, fast, slow, fast — first with one replica, then with two. With one
//! replica everything waits behind the slow calls; with two, the idle replica takes the next
//! request, so the whole run takes about one slow call.

use std::time::{Duration, Instant};

use crate::{Deployment, Doc, Error};

/// What one run of the four posts showed.
pub struct DemoRun {
    pub replicas: usize,
    pub wall: Duration,
    /// (endpoint, round trip, replica that served it), in the order the posts were made.
    pub calls: Vec<(&'static str, Duration, String)>,
}

/// Runs the four posts against a Deployment of `replicas` replicas of `SlowFast`.
pub async fn run(replicas: usize, slow_ms: u64) -> Result<DemoRun, Error> {
    let dep = Deployment::new()
        .name("slow_fast")
        .uses("SlowFast")
        .uses_with(serde_json::json!({ "slow_ms": slow_ms }))
        .replicas(replicas as i64)
        .start()?;
    let start = Instant::now();
    let endpoints = ["/slow", "/fast", "/slow", "/fast"];
    let calls = endpoints.iter().map(|&ep| {
        let dep = &dep;
        async move {
            let t = Instant::now();
            let docs = dep.post(ep, Doc::new()).await?;
            let who = docs
                .first()
                .and_then(|d| d.tag("served_by"))
                .and_then(|v| v.as_str())
                .unwrap_or("?")
                .to_owned();
            Ok::<_, Error>((ep, t.elapsed(), who))
        }
    });
    let calls = futures::future::try_join_all(calls).await?;
    let wall = start.elapsed();
    dep.close();
    Ok(DemoRun {
        replicas,
        wall,
        calls,
    })
}

/// Runs the demo with one and with two replicas and prints what happened.
pub async fn main(slow_ms: u64) -> Result<(), Error> {
    println!("flotilla demo: the bottleneck of a slow Executor, and replicas that remove it");
    println!(
        "Executor SlowFast: /slow blocks its replica for {slow_ms} ms, /fast returns at once."
    );
    println!("Four concurrent posts: /slow, /fast, /slow, /fast.\n");
    let mut walls = Vec::new();
    for replicas in [1, 2] {
        let r = run(replicas, slow_ms).await?;
        println!("replicas={replicas}:");
        for (ep, rt, who) in &r.calls {
            println!(
                "  {ep:<5}  round trip {:>7.1} ms  served by {who}",
                rt.as_secs_f64() * 1e3
            );
        }
        println!("  all four took {:.1} ms\n", r.wall.as_secs_f64() * 1e3);
        walls.push(r.wall);
    }
    println!(
        "2 replicas ran {:.2}x faster than 1: the idle replica got the next request first.",
        walls[0].as_secs_f64() / walls[1].as_secs_f64()
    );
    Ok(())
}
