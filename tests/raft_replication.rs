//! Stateful Executors (Raft): the seed's ExactNN example. Writes go through one log and every
//! replica applies them; reads are served by any replica and see every acknowledged write.

mod common;

use std::collections::BTreeSet;

use common::stateful::{count, docs, exact_nn, index, shard};
use common::within;
use flotilla::Request;

/// Seed: 3 stateful replicas, 10,000 docs indexed in batches of 100; every replica reports
/// 10,000, and searches spread over the replicas all see every doc.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_holds_every_indexed_doc() {
    let ws = tempfile::tempdir().unwrap();
    let dep = exact_nn(ws.path(), 3).start().unwrap();
    let all = docs(0, 10_000, 7);
    within(120, index(&dep, all.clone())).await;
    for i in 0..3 {
        assert_eq!(count(&dep, i).await, 10_000, "replica {i}");
    }
    // 100 searches at once, each for an indexed doc's own vector: its top match is that doc.
    let searches = (0..100).map(|q| {
        let doc = all[q * 97].clone();
        let want = doc.id().to_owned();
        let dep = &dep;
        async move {
            let mut req = Request::new("/search", doc.into());
            req.parameters = std::sync::Arc::new(
                serde_json::json!({"limit": 1})
                    .as_object()
                    .cloned()
                    .unwrap(),
            );
            let r = dep.call(req).await.expect("search");
            let top = r.docs[0].matches().expect("matches")[0].id().to_owned();
            assert_eq!(top, want);
            r.routes.last().expect("a route").to_string()
        }
    });
    let served: BTreeSet<String> = within(60, futures::future::join_all(searches))
        .await
        .into_iter()
        .collect();
    assert!(served.len() >= 2, "searches were served by {served:?} only");
    // Batches posted together share log entries (group commit): at most one entry per batch
    // plus the group's own, at least two (64 writes at most per entry), applied everywhere.
    let applied = shard(&dep).raft().unwrap().applied();
    assert_eq!(applied.len(), 3);
    assert!(
        applied.iter().all(|(_, a)| (2..=105).contains(a)),
        "{applied:?}"
    );
    dep.close();
}

/// A write is answered with the leader's result; an Executor error in a write comes back as
/// an error and every replica stays in step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_answer_with_the_leaders_result_and_errors_stay_consistent() {
    let ws = tempfile::tempdir().unwrap();
    let dep = exact_nn(ws.path(), 3).start().unwrap();
    let out = dep.post("/index", docs(0, 10, 1)).await.unwrap();
    assert_eq!(out.len(), 10);
    // A doc with a 3-d embedding does not fit dim 16: the write fails on every replica alike.
    let bad =
        flotilla::Doc::with_id("bad").with_embedding(flotilla::NdArray::from_f32(vec![1.0; 3]));
    let err = dep.post("/index", bad).await.unwrap_err();
    assert!(err.to_string().contains("indexer/rep-"), "{err}");
    dep.post("/index", docs(10, 5, 2)).await.unwrap();
    for i in 0..3 {
        assert_eq!(count(&dep, i).await, 15, "replica {i}");
    }
    dep.close();
}

/// A failed write answers with its docs as they were sent, also when the leader's replica ran
/// the caller's own request (it does in process: the answer then decodes the logged write).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_answers_with_the_docs_as_sent() {
    let ws = tempfile::tempdir().unwrap();
    let dep = exact_nn(ws.path(), 3).start().unwrap();
    let bad = flotilla::Doc::with_id("bad")
        .with_text("as sent")
        .with_embedding(flotilla::NdArray::from_f32(vec![1.0; 3]));
    match dep.post("/index", bad).await {
        Err(flotilla::Error::Request(e)) => {
            let docs = e.docs().expect("the docs come back with the error");
            assert_eq!(docs.ids(), ["bad"]);
            assert_eq!(docs[0].text(), Some("as sent"));
        }
        other => panic!("expected an Executor error, got {other:?}"),
    }
    dep.close();
}

/// A linearizable read is served by the leader's replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linearizable_reads_are_served_by_the_leader() {
    let ws = tempfile::tempdir().unwrap();
    let dep = exact_nn(ws.path(), 3)
        .linearizable_reads(["/count"])
        .start()
        .unwrap();
    dep.post("/index", docs(0, 50, 3)).await.unwrap();
    let leader = shard(&dep).raft().unwrap().leader().expect("a leader");
    for _ in 0..5 {
        let r = dep
            .call(Request::new("/count", Default::default()))
            .await
            .unwrap();
        assert_eq!(
            r.routes.last().unwrap().as_ref(),
            format!("indexer/rep-{leader}")
        );
        assert_eq!(r.results.values().next().unwrap()["count"], 50);
    }
    dep.close();
}

/// A read right after a write was acknowledged sees it, whichever replica serves the read:
/// followers apply after the leader answers, and reads wait for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_after_an_acknowledged_write_sees_it_on_any_replica() {
    let ws = tempfile::tempdir().unwrap();
    let dep = exact_nn(ws.path(), 3).start().unwrap();
    let mut served = BTreeSet::new();
    for round in 1..=20u64 {
        dep.post("/index", docs(round as usize * 100, 100, round))
            .await
            .unwrap();
        // Reads at once, so that followers serve some of them.
        let reads = (0..6).map(|_| dep.call(Request::new("/count", Default::default())));
        for r in futures::future::join_all(reads).await {
            let r = r.unwrap();
            assert_eq!(r.results.values().next().unwrap()["count"], round * 100);
            served.insert(r.routes.last().unwrap().to_string());
        }
    }
    assert!(served.len() >= 2, "reads were served by {served:?} only");
    dep.close();
}
