//! Seed "Replicate stateful Executors with consensus using RAFT" (seed 000): the `ExactNNSearch`
//! Deployment with `replicas=3, stateful=True, workspace=...`. Index requests are writes: they
//! go through the Raft log and reach every replica; search requests are reads and reach one
//! replica each. Eventually (here: before any read is served) every replica holds every doc.
//!
//! Run with `cargo run --release --example stateful [NUM_DOCS]` (default 10,000; the seed uses
//! 100,000).

use std::time::Instant;

use flotilla::actors::request::Request;
use flotilla::{Deployment, Doc, DocList, NdArray, PostOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn random_docs(n: usize, rng: &mut StdRng, text: &str) -> DocList {
    (0..n)
        .map(|i| {
            let v: Vec<f32> = (0..128).map(|_| rng.random()).collect();
            Doc::new()
                .with_text(format!("{text} {i}"))
                .with_embedding(NdArray::from_f32(v))
        })
        .collect()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let num_docs: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(10_000);
    let num_queries = 100;
    let workspace = tempfile::tempdir()?;
    let d = Deployment::new()
        .name("indexer")
        .uses("ExactNNIndexer")
        .uses_with(serde_json::json!({"dim": 128, "limit": 100}))
        .workspace(workspace.path())
        .replicas(3)
        .stateful(true)
        .peer_ports(serde_json::json!([12345, 12346, 12347]))
        .start()?;
    let mut rng = StdRng::seed_from_u64(42);

    let index_docs = random_docs(num_docs, &mut rng, "I am document");
    let start = Instant::now();
    let opts = PostOptions {
        request_size: 100,
        ..PostOptions::default()
    };
    d.post_with("/index", index_docs, &opts).await?;
    println!(
        "Indexing {num_docs} Documents took {:.3}s",
        start.elapsed().as_secs_f64()
    );

    let search = random_docs(num_queries, &mut rng, "I am query");
    let start = Instant::now();
    let opts = PostOptions {
        request_size: 1,
        ..PostOptions::default()
    };
    let results = d.post_with("/search", search, &opts).await?;
    println!(
        "Searching {num_queries} Queries took {:.3}s",
        start.elapsed().as_secs_f64()
    );
    assert!(
        results
            .iter()
            .all(|q| q.matches().is_some_and(|m| m.len() == 100))
    );

    // What each replica holds, asked of each one (the seed reads it from the replicas' logs).
    let shard = &d.kernel().routers()[0].shards()[0];
    for i in 0..3 {
        let r = shard
            .call_replica(i, Request::new("/count", DocList::new()))
            .await?;
        let n = r.results.values().next().map(|v| v["count"].clone());
        println!("indexer/rep-{i} holds {} documents", n.unwrap_or_default());
        assert_eq!(
            r.results.values().next().and_then(|v| v["count"].as_u64()),
            Some(num_docs as u64)
        );
    }
    d.close();
    Ok(())
}
