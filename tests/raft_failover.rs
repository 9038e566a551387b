//! Stateful Executors (Raft) under failure: leader loss with writes in flight, a restart of
//! the whole Deployment on its workspace, and seeded random faults. Afterwards every replica
//! holds exactly the acknowledged writes, each once.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use common::stateful::{count, docs, exact_nn, shard};
use common::within;
use flotilla::actors::raft::Faults;
use flotilla::{DocList, Request, Running};

/// Writes `batches` batches of `size` docs, `concurrency` at a time, with ids from `first`.
/// Returns the ids of the acknowledged docs; `progress` counts them as they are acknowledged.
async fn write_stream(
    dep: Arc<Running>,
    first: usize,
    batches: usize,
    size: usize,
    concurrency: usize,
    progress: Arc<AtomicUsize>,
) -> Vec<String> {
    let mut acked = Vec::new();
    let mut pending = futures::stream::FuturesUnordered::new();
    use futures::StreamExt;
    for b in 0..batches {
        let dep = dep.clone();
        let batch = docs(first + b * size, size, (first + b) as u64);
        pending.push(tokio::spawn(async move {
            let ids: Vec<String> = batch.iter().map(|d| d.id().to_owned()).collect();
            dep.post("/index", batch).await.map(|_| ids)
        }));
        if pending.len() >= concurrency
            && let Some(done) = pending.next().await
            && let Ok(Ok(ids)) = done
        {
            acked.extend(ids);
            progress.store(acked.len(), SeqCst);
        }
    }
    while let Some(done) = pending.next().await {
        if let Ok(Ok(ids)) = done {
            acked.extend(ids);
            progress.store(acked.len(), SeqCst);
        }
    }
    acked
}

/// Every id in `ids` is found on replica `i` as the top match of its own vector.
async fn holds_all(dep: &Running, i: usize, ids: &[String], all: &DocList) {
    let wanted: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    let queries: DocList = all
        .iter()
        .filter(|d| wanted.contains(d.id()))
        .cloned()
        .collect();
    let mut req = Request::new("/search", queries);
    req.parameters = Arc::new(
        serde_json::json!({"limit": 1})
            .as_object()
            .cloned()
            .unwrap(),
    );
    let r = shard(dep).call_replica(i, req).await.expect("search");
    for q in r.docs.iter() {
        let top = q.matches().expect("matches")[0].id();
        assert_eq!(top, q.id(), "replica {i} lost {}", q.id());
    }
}

fn stop(dep: &Arc<Running>, i: usize) -> tokio::task::JoinHandle<()> {
    let dep = dep.clone();
    tokio::task::spawn_blocking(move || shard(&dep).stop_replica(i))
}

fn restart(dep: &Arc<Running>, i: usize) -> tokio::task::JoinHandle<()> {
    let dep = dep.clone();
    tokio::task::spawn_blocking(move || shard(&dep).restart_replica(i).expect("restart"))
}

/// The replica whose node leads, once one does.
async fn leader_elected(dep: &Running) -> usize {
    loop {
        if let Some(l) = shard(dep).raft().unwrap().leader() {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Stop the leader while writes are in flight: a new leader takes over, every acknowledged
/// write is on every live replica exactly once, and the old leader, restarted, catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_loss_loses_no_acknowledged_write() {
    const BATCHES: usize = 400;
    const TOTAL: usize = BATCHES * 5;
    let ws = tempfile::tempdir().unwrap();
    let dep = Arc::new(exact_nn(ws.path(), 3).start().unwrap());
    let old = shard(&dep).raft().unwrap().leader().expect("a leader");
    let progress = Arc::new(AtomicUsize::new(0));
    let writes = tokio::spawn(write_stream(
        dep.clone(),
        0,
        BATCHES,
        5,
        8,
        progress.clone(),
    ));
    // The leader stops once the stream is under way, not after a fixed time: a fast build
    // acknowledged all of a shorter stream before a timed stop.
    tokio::time::timeout(Duration::from_secs(60), async {
        while progress.load(SeqCst) < 100 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the write stream acknowledged 100 docs before the leader was stopped");
    within(60, stop(&dep, old)).await.unwrap();
    let acked_at_stop = progress.load(SeqCst);
    let acked = within(120, writes).await.unwrap();
    assert_eq!(
        acked.len(),
        TOTAL,
        "every write was acknowledged after the failover"
    );
    assert!(
        acked_at_stop < TOTAL,
        "writes were acknowledged after the leader stopped ({acked_at_stop} of {TOTAL} docs before)"
    );
    let new = within(30, leader_elected(&dep)).await;
    assert_ne!(new, old);
    // The vectors were made per batch (seed = batch): rebuild them the same way.
    let all: DocList = (0..BATCHES)
        .flat_map(|b| docs(b * 5, 5, b as u64).into_iter())
        .collect::<Vec<_>>()
        .into();
    for i in (0..3).filter(|&i| i != old) {
        assert_eq!(
            count(&dep, i).await,
            TOTAL as u64,
            "replica {i}: each write once"
        );
        holds_all(&dep, i, &acked, &all).await;
    }
    within(60, restart(&dep, old)).await.unwrap();
    assert_eq!(
        count(&dep, old).await,
        TOTAL as u64,
        "the old leader caught up"
    );
    holds_all(&dep, old, &acked, &all).await;
    // It serves again, and the group takes new writes.
    dep.post("/index", docs(10_000, 5, 99)).await.unwrap();
    for i in 0..3 {
        assert_eq!(count(&dep, i).await, TOTAL as u64 + 5);
    }
    Arc::try_unwrap(dep).ok().unwrap().close();
}

/// Stop the whole Deployment and start it on the same workspace: the state is back before the
/// first request is answered (from snapshots and the log), and new writes go on from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_deployment_recovers_its_state_before_serving() {
    let ws = tempfile::tempdir().unwrap();
    let config = serde_json::json!({"snapshot_threshold": 10, "trailing_logs": 3});
    {
        let dep = exact_nn(ws.path(), 3)
            .raft_configuration(config.clone())
            .start()
            .unwrap();
        for b in 0..30 {
            dep.post("/index", docs(b * 10, 10, b as u64))
                .await
                .unwrap();
        }
        dep.close();
    }
    for i in 0..3 {
        let node = ws.path().join(format!("raft/0/{i}"));
        assert!(
            node.join("snapshot.bin").exists(),
            "node {i} took a snapshot"
        );
    }
    let dep = exact_nn(ws.path(), 3)
        .raft_configuration(config)
        .start()
        .unwrap();
    // The very first request: each replica already holds the 300 docs.
    for i in 0..3 {
        let r = shard(&dep)
            .call_replica(i, Request::new("/count", DocList::new()))
            .await
            .unwrap();
        assert_eq!(
            r.results.values().next().unwrap()["count"],
            300,
            "replica {i}"
        );
    }
    dep.post("/index", docs(1000, 10, 77)).await.unwrap();
    for i in 0..3 {
        assert_eq!(count(&dep, i).await, 310);
    }
    dep.close();
}

/// Two Deployments on one workspace would write the same Raft logs: the second is refused
/// before it starts, naming the log's directory, and the first goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_deployment_on_a_workspace_in_use_is_refused() {
    let ws = tempfile::tempdir().unwrap();
    let dep = exact_nn(ws.path(), 3).start().unwrap();
    dep.post("/index", docs(0, 10, 1)).await.unwrap();
    let err = exact_nn(ws.path(), 3)
        .start()
        .err()
        .expect("a second Deployment on the workspace is refused");
    let message = err.to_string();
    assert!(message.contains("in use by another log store"), "{message}");
    let dir = ws.path().join("raft/0/0").display().to_string();
    assert!(message.contains(&dir), "{message} does not name {dir}");
    dep.post("/index", docs(10, 10, 2)).await.unwrap();
    for i in 0..3 {
        assert_eq!(count(&dep, i).await, 20, "replica {i}");
    }
    dep.close();
}

/// Seeded random faults: delayed and dropped messages, leader kills and restarts during a
/// stream of writes. Afterwards the replicas are identical and hold every acknowledged write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_faults_leave_replicas_identical_with_every_acknowledged_write() {
    for seed in [1u64, 2, 3] {
        let ws = tempfile::tempdir().unwrap();
        let dep = Arc::new(
            exact_nn(ws.path(), 3)
                .raft_configuration(serde_json::json!({
                    "snapshot_threshold": 20, "trailing_logs": 5,
                    "heartbeat_timeout": 200, "election_timeout": 200
                }))
                .raft_faults(Faults {
                    seed,
                    drop_per_mille: 30,
                    max_delay: Duration::from_millis(3),
                })
                .start()
                .unwrap(),
        );
        let batches = 90;
        let writes = tokio::spawn(write_stream(dep.clone(), 0, batches, 4, 6, Arc::default()));
        let mut rng = seed;
        for _ in 0..3 {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            tokio::time::sleep(Duration::from_millis(20 + (rng >> 58))).await;
            let Some(leader) = shard(&dep).raft().unwrap().leader() else {
                continue;
            };
            within(60, stop(&dep, leader)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            within(60, restart(&dep, leader)).await.unwrap();
        }
        let acked = within(180, writes).await.unwrap();
        let group = shard(&dep).raft().unwrap().clone();
        group.set_faults(None);
        within(60, group.converge())
            .await
            .expect("the replicas converge");
        let all: DocList = (0..batches)
            .flat_map(|b| docs(b * 4, 4, b as u64).into_iter())
            .collect::<Vec<_>>()
            .into();
        let counts: Vec<u64> = futures::future::join_all((0..3).map(|i| count(&dep, i))).await;
        assert!(
            counts.iter().all(|&c| c == counts[0]),
            "seed {seed}: replicas differ: {counts:?}"
        );
        assert!(
            counts[0] as usize >= acked.len() && counts[0] as usize <= batches * 4,
            "seed {seed}: {} acknowledged, replicas hold {counts:?}",
            acked.len()
        );
        for i in 0..3 {
            holds_all(&dep, i, &acked, &all).await;
        }
        Arc::try_unwrap(dep).ok().unwrap().close();
    }
}
