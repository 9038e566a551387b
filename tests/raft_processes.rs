//! A stateful Executor whose replicas are separate processes (`flotilla executor --stateful
//! --replica-id I --peer-ports …`), exchanging Raft messages over gRPC, behind a gateway that
//! uses them as external replicas: the leader is killed with SIGKILL while writes are in
//! flight, and restarted on its workspace. Snapshots every 25 entries keeping 5 trailing
//! entries, so the restarted replica catches up from a snapshot streamed over gRPC.

mod common;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::stateful::{DIM, docs};
use flotilla::grpc::raft::status;
use flotilla::{Deployment, DocList, Params, PostOptions, Running};
use futures::StreamExt;

/// One replica process; killed when dropped.
struct Replica {
    child: Child,
    address: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("an address").port())
        .collect()
}

fn spawn(id: usize, ports: &[u16], workspace: &Path) -> Replica {
    spawn_with(id, ports, workspace, &[])
}

/// [`spawn`] with `extra` flags.
fn spawn_with(id: usize, ports: &[u16], workspace: &Path, extra: &[&str]) -> Replica {
    let list = ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(workspace.join(format!("rep-{id}.log")))
        .expect("a log file");
    let child = Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args(["executor", "--name", "indexer", "--uses", "ExactNNIndexer"])
        .args([
            "--uses-with",
            &format!(r#"{{"dim": {DIM}, "metric": "cosine"}}"#),
        ])
        .args(["--host", "127.0.0.1", "--stateful"])
        .args(["--replica-id", &id.to_string(), "--peer-ports", &list])
        .arg("--workspace")
        .arg(workspace)
        .args([
            "--raft-configuration",
            r#"{"heartbeat_timeout": 500, "election_timeout": 500, "snapshot_threshold": 25, "trailing_logs": 5}"#,
        ])
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("the flotilla binary starts");
    Replica {
        child,
        address: format!("127.0.0.1:{}", ports[id]),
    }
}

/// The Raft status of the node at `address`: (is leader, leader id, last applied, serving).
async fn node(address: &str) -> Option<(bool, Option<u64>, u64, bool)> {
    let s = status(address).await.ok()?;
    let n = s.nodes.first()?;
    Some((n.state == "Leader", n.leader, n.last_applied, n.serving))
}

/// Waits until every node at `addresses` is serving and they agree on a leader; returns the
/// leader's index in `addresses`.
async fn wait_for_leader(addresses: &[&str], ids: &[usize]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut leaders = BTreeSet::new();
        let mut serving = 0;
        let mut leader_at = None;
        for (k, a) in addresses.iter().enumerate() {
            if let Some((is_leader, leader, _, ok)) = node(a).await {
                leaders.insert(leader);
                serving += usize::from(ok);
                if is_leader {
                    leader_at = Some(k);
                }
            }
        }
        if let (Some(k), 1, true) = (leader_at, leaders.len(), serving == addresses.len()) {
            assert_eq!(leaders.first(), Some(&Some(ids[k] as u64)));
            return ids[k];
        }
        assert!(
            Instant::now() < deadline,
            "no agreed leader among {addresses:?}: leaders {leaders:?}, {serving} serving"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until every node at `addresses` has applied the same index.
async fn wait_converged(addresses: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut applied = BTreeSet::new();
        for a in addresses {
            applied.insert(node(a).await.map(|n| n.2));
        }
        if applied.len() == 1 && !applied.contains(&None) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "replicas did not converge: {applied:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A gateway Deployment over the replica processes at `addresses`.
fn gateway(addresses: &[&str]) -> Running {
    Deployment::new()
        .name("indexer")
        .external_at(addresses.iter().map(|a| a.to_string()).collect())
        .start()
        .expect("the gateway starts")
}

/// What the replica at `address` holds: its count, and for each of `probe` whether it is
/// there once (its nearest neighbour is itself) and never twice (its second nearest is not).
async fn holdings(address: &str, probe: &DocList) -> (u64, BTreeSet<String>) {
    let one = gateway(&[address]);
    // `/count` answers in the request's results, which `post` does not return.
    let req = flotilla::actors::request::Request::new("/count", DocList::new());
    let answer = one.call(req).await.expect("count");
    // Numbers cross the wire as a protobuf Struct's doubles.
    let count = answer.results.values().next().expect("a count")["count"]
        .as_f64()
        .expect("a number") as u64;
    let mut params = Params::new();
    params.insert("limit".into(), serde_json::json!(2));
    let opts = PostOptions {
        parameters: params,
        request_size: 100,
        ..PostOptions::default()
    };
    let found = one
        .post_with("/search", probe.clone(), &opts)
        .await
        .expect("search");
    let mut present = BTreeSet::new();
    for d in found.iter() {
        let ids: Vec<&str> = d
            .matches()
            .map(|m| m.iter().map(|m| m.id()).collect())
            .unwrap_or_default();
        if ids.first() == Some(&d.id()) {
            assert_ne!(
                ids.get(1),
                Some(&d.id()),
                "{address} holds {} twice",
                d.id()
            );
            present.insert(d.id().to_owned());
        }
    }
    one.close();
    (count, present)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_survive_a_killed_leader_process_and_it_catches_up_on_restart() {
    let ws = tempfile::tempdir().expect("a workspace");
    let ports = free_ports(3);
    let mut replicas: Vec<Option<Replica>> =
        (0..3).map(|i| Some(spawn(i, &ports, ws.path()))).collect();
    let addresses: Vec<String> = replicas
        .iter()
        .map(|r| r.as_ref().map(|r| r.address.clone()).unwrap_or_default())
        .collect();
    let all: Vec<&str> = addresses.iter().map(String::as_str).collect();
    let leader = wait_for_leader(&all, &[0, 1, 2]).await;

    // Writes of 10 docs each, 4 at a time, through a gateway over all three replicas; the
    // leader is killed (SIGKILL) once 20 are acknowledged, with others in flight.
    let gw = std::sync::Arc::new(gateway(&all));
    let batches = 60;
    let all_docs = docs(0, batches * 10, 7);
    let acked_batches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writer = {
        let (gw, all_docs, acked_batches) = (gw.clone(), all_docs.clone(), acked_batches.clone());
        tokio::spawn(async move {
            let posts = (0..batches).map(|b| {
                let batch: DocList = all_docs.iter().skip(b * 10).take(10).cloned().collect();
                let (gw, acked_batches) = (gw.clone(), acked_batches.clone());
                async move {
                    let result = gw.post("/index", batch.clone()).await;
                    if result.is_ok() {
                        acked_batches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    (batch, result)
                }
            });
            futures::stream::iter(posts)
                .buffer_unordered(4)
                .collect::<Vec<_>>()
                .await
        })
    };
    while acked_batches.load(std::sync::atomic::Ordering::SeqCst) < 20 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut gone = replicas[leader].take().expect("the leader runs");
    gone.child.kill().expect("SIGKILL");
    let _ = gone.child.wait();
    let results = writer.await.expect("the writer");
    let mut acked: Vec<String> = Vec::new();
    let mut failed = 0;
    for (batch, result) in results {
        match result {
            Ok(_) => acked.extend(batch.iter().map(|d| d.id().to_owned())),
            Err(e) => {
                eprintln!("a batch failed (not acknowledged): {e}");
                failed += 1;
            }
        }
    }
    // A write that met the dead leader is retried on a live replica, which forwards it to the
    // new leader once one is elected: none fails.
    assert_eq!(failed, 0, "every write is acknowledged across the failover");
    assert_eq!(acked.len(), batches * 10);

    // A new leader took over; the two live replicas hold every acknowledged write, once.
    let live: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let live_addrs: Vec<&str> = live.iter().map(|&i| all[i]).collect();
    let new_leader = wait_for_leader(&live_addrs, &live).await;
    assert_ne!(new_leader, leader);
    wait_converged(&live_addrs).await;
    let mut counts = BTreeSet::new();
    for a in &live_addrs {
        let (count, present) = holdings(a, &all_docs).await;
        for id in &acked {
            assert!(present.contains(id), "{a} lost acknowledged write {id}");
        }
        assert_eq!(
            count as usize,
            present.len(),
            "{a}: every doc it holds once"
        );
        counts.insert(count);
    }
    assert_eq!(counts.len(), 1, "the live replicas agree: {counts:?}");

    // The old leader, restarted on its workspace, catches up and holds the same.
    replicas[leader] = Some(spawn(leader, &ports, ws.path()));
    wait_for_leader(&all, &[0, 1, 2]).await;
    wait_converged(&all).await;
    let (count, present) = holdings(all[leader], &all_docs).await;
    assert_eq!(
        Some(&count),
        counts.first(),
        "the restarted replica caught up"
    );
    for id in &acked {
        assert!(present.contains(id), "the restarted replica lacks {id}");
    }
    if let Ok(gw) = std::sync::Arc::try_unwrap(gw) {
        gw.close();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_sent_to_a_follower_is_forwarded_to_the_leader() {
    let ws = tempfile::tempdir().expect("a workspace");
    let ports = free_ports(3);
    let replicas: Vec<Replica> = (0..3).map(|i| spawn(i, &ports, ws.path())).collect();
    let all: Vec<&str> = replicas.iter().map(|r| r.address.as_str()).collect();
    let leader = wait_for_leader(&all, &[0, 1, 2]).await;
    let follower = (leader + 1) % 3;

    // A gateway that only knows a follower: the write is logged by the leader and applied by
    // every replica, and the follower answers with the leader's result.
    let alone = gateway(&[all[follower]]);
    let answer = alone
        .post("/index", docs(0, 10, 1))
        .await
        .expect("a follower forwards writes");
    assert_eq!(answer.len(), 10);
    // A read through the same follower sees the write it acknowledged.
    let counted = alone
        .call(flotilla::actors::request::Request::new(
            "/count",
            DocList::new(),
        ))
        .await
        .expect("a follower serves reads");
    assert_eq!(
        counted.results.values().next().expect("a count")["count"].as_f64(),
        Some(10.0)
    );
    // The follower's Executor knows itself as replica `follower` of the group's 3.
    let served = counted.results.keys().next().expect("a replica");
    assert!(served.ends_with(&format!("/rep-{follower}")), "{served}");
    alone.close();
    wait_converged(&all).await;
    for a in &all {
        let (count, present) = holdings(a, &docs(0, 10, 1)).await;
        assert_eq!((count, present.len()), (10, 10), "{a}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_process_keeps_its_raft_log_under_its_shard_id() {
    // Shard 1 of 2, as a group of one replica process: its log is `<workspace>/raft/1/0`.
    let ws = tempfile::tempdir().expect("a workspace");
    let ports = free_ports(1);
    let replica = spawn_with(0, &ports, ws.path(), &["--shard-id", "1", "--shards", "2"]);
    let all = [replica.address.as_str()];
    wait_for_leader(&all, &[0]).await;
    let gw = gateway(&all);
    let answer = gw.post("/index", docs(0, 10, 1)).await.expect("indexed");
    assert_eq!(answer.len(), 10);
    gw.close();
    let (count, present) = holdings(all[0], &docs(0, 10, 1)).await;
    assert_eq!((count, present.len()), (10, 10));
    let raft = ws.path().join("raft");
    assert!(
        raft.join("1").join("0").is_dir(),
        "the shard's own directory"
    );
    assert!(!raft.join("0").exists(), "nothing under shard 0's");
}

#[test]
fn a_deployment_serving_one_shard_of_several_gives_its_replicas_that_shard_id() {
    let graph = Deployment::new()
        .name("indexer")
        .uses("Echo")
        .replicas(2)
        .shard_of(1, 3)
        .graph()
        .expect("a valid Deployment");
    let d = &graph.nodes[0].deployment;
    assert_eq!(d.shard_name(0).as_ref(), "indexer/shard-1");
    let contexts = d.contexts(0);
    assert_eq!(contexts.len(), 2);
    for (r, c) in contexts.iter().enumerate() {
        assert_eq!((c.shard, c.shards, c.replica), (1, 3, r));
    }
    let err = Deployment::new()
        .uses("Echo")
        .shard_of(3, 3)
        .graph()
        .expect_err("shard 3 of 3");
    assert!(err.to_string().contains("shard id 3 is not below"), "{err}");
    let err = Deployment::new()
        .uses("Echo")
        .shards(2)
        .shard_of(0, 2)
        .graph()
        .expect_err("two shards in a process serving one");
    assert!(err.to_string().contains("runs that one shard"), "{err}");
}

#[test]
fn bad_replica_process_flags_are_refused_before_anything_starts() {
    let ws = tempfile::tempdir().expect("a workspace");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_flotilla"))
            .args(["executor", "--uses", "ExactNNIndexer", "--stateful"])
            .args(args)
            .output()
            .expect("the flotilla binary runs");
        assert!(!out.status.success(), "{args:?} must be refused");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let ws = ws.path().to_str().expect("a UTF-8 path");
    let err = run(&[
        "--replica-id",
        "3",
        "--peer-ports",
        "5001,5002,5003",
        "--workspace",
        ws,
    ]);
    assert!(err.contains("--replica-id 3"), "{err}");
    let err = run(&[
        "--replica-id",
        "0",
        "--peer-ports",
        "5001,5002,5003",
        "--peer-hosts",
        "a,b",
        "--workspace",
        ws,
    ]);
    assert!(err.contains("--peer-hosts"), "{err}");
    let err = run(&["--replica-id", "0", "--peer-ports", "5001,5002,5003"]);
    assert!(
        err.contains("workspace"),
        "a stateful replica needs a workspace: {err}"
    );
    let err = run(&[
        "--replica-id",
        "0",
        "--peer-ports",
        "5001,5002,5003",
        "--workspace",
        ws,
        "--raft-configuration",
        r#"{"election_timout": 100}"#,
    ]);
    assert!(err.contains("election_timout"), "{err}");
    let err = run(&[
        "--replica-id",
        "0",
        "--peer-ports",
        "5001",
        "--workspace",
        ws,
        "--shard-id",
        "2",
        "--shards",
        "2",
    ]);
    assert!(err.contains("shard id 2"), "{err}");
    let err = run(&["--workspace", ws]);
    assert!(
        err.contains("--replica-id"),
        "clap asks for the missing flags: {err}"
    );
}
