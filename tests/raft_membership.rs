//! Stateful Executors (Raft): scaling a running Deployment from 3 to 5 replicas and back. New
//! replicas catch up from a snapshot plus the log; removed ones leave the group first.

mod common;

use common::stateful::{count, docs, exact_nn, shard};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_a_stateful_deployment_from_three_to_five_and_back() {
    let ws = tempfile::tempdir().unwrap();
    let dep = exact_nn(ws.path(), 3)
        .raft_configuration(serde_json::json!({"snapshot_threshold": 10, "trailing_logs": 2}))
        .start()
        .unwrap();
    for b in 0..25 {
        dep.post("/index", docs(b * 4, 4, b as u64)).await.unwrap();
    }
    let s = shard(&dep);
    tokio::task::block_in_place(|| s.scale(5)).unwrap();
    let group = s.raft().unwrap();
    assert_eq!(group.members(), vec![0, 1, 2, 3, 4]);
    assert_eq!(s.dispatch().running_replicas(), 5);
    for i in 0..5 {
        assert_eq!(count(&dep, i).await, 100, "replica {i} after scaling up");
    }
    // The new replicas started from a snapshot (the log before it was compacted away).
    assert!(ws.path().join("raft/0/4/snapshot.bin").exists());
    dep.post("/index", docs(1000, 4, 50)).await.unwrap();
    for i in 0..5 {
        assert_eq!(count(&dep, i).await, 104, "replica {i} takes new writes");
    }
    tokio::task::block_in_place(|| s.scale(3)).unwrap();
    assert_eq!(group.members(), vec![0, 1, 2]);
    assert_eq!(s.dispatch().running_replicas(), 3);
    assert!(group.leader().is_some_and(|l| l < 3));
    dep.post("/index", docs(2000, 4, 51)).await.unwrap();
    for i in 0..3 {
        assert_eq!(count(&dep, i).await, 108, "replica {i} after scaling down");
    }
    dep.close();
}
