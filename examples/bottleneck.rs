//! Seed 003 "Avoiding Bottlenecks on Executors with replicas": an Executor whose `/slow` blocks
//! and whose `/fast` returns at once gets four parallel requests — slow, fast, slow, fast — once
//! with one replica ("normal flow") and once with two ("scaled flow").
//!
//! With one replica the two slow calls run one after the other; with two, the idle replica takes
//! the next request, so the whole run takes about one slow call. The seed's `time.sleep(5)` is
//! 500 ms here, and the Executor is the built-in `SlowFast` served by `flotilla::demo::run`
//! (a Deployment: the Flow of one Executor the seed builds).
//!
//! Run with `cargo run --example bottleneck`.

use std::time::Duration;

use flotilla::demo::{DemoRun, run};

const SLOW_MS: u64 = 500;

fn report(name: &str, r: &DemoRun) {
    for (endpoint, round_trip, who) in &r.calls {
        println!(
            "  calling {endpoint} roundtrip takes {:.2}s (served by {who})",
            round_trip.as_secs_f64()
        );
    }
    println!("calling {name} takes {:.2}s", r.wall.as_secs_f64());
}

#[tokio::main]
async fn main() -> Result<(), flotilla::Error> {
    // scaled_f = Flow().add(uses=MyExecutor, replicas=2)
    let scaled = run(2, SLOW_MS).await?;
    report("scaled flow", &scaled);
    // f = Flow().add(uses=MyExecutor)
    let normal = run(1, SLOW_MS).await?;
    report("normal flow", &normal);

    // One replica runs both slow calls back to back: they cannot overlap.
    assert!(
        normal.wall >= Duration::from_millis(2 * SLOW_MS),
        "{:?}",
        normal.wall
    );
    assert!(
        scaled.wall < normal.wall,
        "replicas remove the bottleneck: scaled {:?}, normal {:?}",
        scaled.wall,
        normal.wall
    );
    println!(
        "the scaled flow is {:.1}x faster: the idle replica gets the request first",
        normal.wall.as_secs_f64() / scaled.wall.as_secs_f64()
    );
    Ok(())
}
