//! Shards: ANY spreads writes over the shards, ALL searches every shard and reduces, and
//! `uses_after: MatchMerger` returns the global top k.

mod common;

use common::{store, within};
use flotilla::actors::prelude::*;
use flotilla::{Deployment, PostOptions};
use serde_json::json;

fn docs(n: usize) -> DocList {
    (0..n)
        .map(|i| Doc::with_id(format!("d{i}")).with_tag("x", i as i64))
        .collect()
}

fn one_per_request() -> PostOptions {
    PostOptions {
        request_size: 1,
        ..PostOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_spreads_the_index_and_all_sees_every_shard() {
    let dep = Deployment::new()
        .name("store")
        .uses_factory("Store", store())
        .shards(3)
        .polling_map([("/count", "ALL")])
        .start()
        .unwrap();
    within(30, dep.post_with("/index", docs(30), &one_per_request()))
        .await
        .unwrap();

    // /count is ALL: each shard reports under its own name.
    let counted = within(30, dep.call(Request::new("/count", DocList::new())))
        .await
        .unwrap();
    let counts: Vec<u64> = (0..3)
        .map(|s| {
            counted.results[&format!("store/shard-{s}/rep-0")]["count"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(counts.iter().sum::<u64>(), 30);
    assert_eq!(counts, vec![10, 10, 10], "round robin over the shards");

    // /search is ALL by Jina's default: the matches of the three shards are reduced into one
    // query doc (concatenated, unsorted, as Jina's default reduce does).
    let found = within(30, dep.post("/search", Doc::with_id("q").with_tag("x", 7)))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    let mut ids: Vec<&str> = found[0].matches().unwrap().ids();
    ids.sort();
    let mut all: Vec<String> = (0..30).map(|i| format!("d{i}")).collect();
    all.sort();
    assert_eq!(ids, all);
    dep.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn match_merger_returns_the_global_top_k() {
    let dep = Deployment::new()
        .uses_factory("Store", store())
        .shards(3)
        .uses_after("MatchMerger")
        .start()
        .unwrap();
    within(30, dep.post_with("/index", docs(30), &one_per_request()))
        .await
        .unwrap();
    let mut params = Params::new();
    params.insert("top_k".into(), json!(5));
    let opts = PostOptions {
        parameters: params,
        ..PostOptions::default()
    };
    let found = within(
        30,
        dep.post_with("/search", Doc::with_id("q").with_tag("x", 7), &opts),
    )
    .await
    .unwrap();
    assert_eq!(found.len(), 1);
    let m = found[0].matches().unwrap();
    assert_eq!(m.len(), 5);
    // Closest to x=7 first; ties (6 and 8) in either order.
    assert_eq!(m[0].id(), "d7");
    let scores: Vec<f64> = m.iter().map(|d| d.score("closeness").unwrap()).collect();
    assert_eq!(scores, vec![0.0, -1.0, -1.0, -2.0, -2.0]);
    dep.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_times_replicas_workers() {
    let dep = Deployment::new()
        .name("w")
        .uses("Echo")
        .shards(2)
        .replicas(3)
        .start()
        .unwrap();
    let shards = dep.kernel().routers()[0].shards();
    assert_eq!(shards.len(), 2);
    assert!(shards.iter().all(|s| s.dispatch().running_replicas() == 3));
    let out = within(30, dep.post("/index", docs(12))).await.unwrap();
    assert_eq!(out.len(), 12);
    dep.close();
}
