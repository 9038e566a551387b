//! Helpers for the stateful (Raft) tests: an ExactNN Deployment, seeded vectors, per-replica
//! counts.
#![allow(dead_code)]

use std::path::Path;

use flotilla::actors::request::Request;
use flotilla::actors::shard::Shard;
use flotilla::{Deployment, Doc, DocList, NdArray, PostOptions, Running};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub const DIM: usize = 16;

/// `n` docs `d{first}..` with seeded random `DIM`-d embeddings.
pub fn docs(first: usize, n: usize, seed: u64) -> DocList {
    let mut rng = StdRng::seed_from_u64(seed);
    (first..first + n)
        .map(|i| {
            let v: Vec<f32> = (0..DIM).map(|_| rng.random_range(-1.0..1.0)).collect();
            Doc::with_id(format!("d{i}")).with_embedding(NdArray::from_f32(v))
        })
        .collect()
}

/// A stateful ExactNN Deployment of `replicas` replicas on `workspace`.
pub fn exact_nn(workspace: &Path, replicas: i64) -> Deployment {
    Deployment::new()
        .name("indexer")
        .uses("ExactNNIndexer")
        .uses_with(serde_json::json!({"dim": DIM, "metric": "cosine"}))
        .replicas(replicas)
        .stateful(true)
        .workspace(workspace)
}

pub fn shard(dep: &Running) -> &Shard {
    &dep.kernel().routers()[0].shards()[0]
}

/// What replica `i` holds, asked of that replica itself once it has applied every
/// acknowledged write.
pub async fn count(dep: &Running, i: usize) -> u64 {
    if let Some(g) = shard(dep).raft() {
        g.settle().await;
    }
    let r = shard(dep)
        .call_replica(i, Request::new("/count", DocList::new()))
        .await
        .expect("count");
    let v = r.results.values().next().expect("a count result");
    v["count"].as_u64().expect("count is a number")
}

/// Indexes `docs` in requests of 100.
pub async fn index(dep: &Running, docs: DocList) {
    let opts = PostOptions {
        request_size: 100,
        ..PostOptions::default()
    };
    dep.post_with("/index", docs, &opts).await.expect("index");
}
