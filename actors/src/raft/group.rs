//! A stateful shard's Raft group: one openraft node per replica, each with its durable log and
//! its replica's Executor as state machine, on flotilla's Raft runtime.
//!
//! Writes go to the leader's log and answer with the leader's result once committed and
//! applied; every replica applies every committed write in log order. Linearizable reads ask
//! the leader to confirm its leadership (read index) and are served by the leader's replica.
//! Nodes can be stopped, restarted and added or removed at runtime.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use actix::Addr;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, ServerState};
use tokio::sync::oneshot;

use super::log_store::LogStore;
use super::network::{Connector, Faults, Network, Raft};
use super::settings::RaftSettings;
use super::state_machine::StateMachine;
use super::types::{Applied, NodeId, Write};
use crate::dispatch::DispatchError;
use crate::replica::{Apply, ReplicaActor, Snapshot as TakeSnapshot};
use crate::request::Request;

/// What a stateful shard needs besides its replicas.
#[derive(Clone, Debug)]
pub struct RaftSpec {
    /// `<workspace>/raft/<shard>`; node `i` keeps its log and snapshot in `<root>/<i>`.
    pub root: PathBuf,
    pub settings: RaftSettings,
    /// Endpoints whose reads are linearizable (served by the leader after a read-index check).
    pub linearizable: Vec<String>,
    /// Message faults (tests).
    pub faults: Option<Faults>,
}

/// Why a Raft group could not start or change.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("{shard}: raft_configuration: {message}")]
    Config { shard: Arc<str>, message: String },
    #[error("{shard}: node {node}: {message}")]
    Node {
        shard: Arc<str>,
        node: NodeId,
        message: String,
    },
    #[error("{shard}: {message}")]
    Unavailable { shard: Arc<str>, message: String },
}

/// The runtime every Raft node of the process runs on (openraft needs tokio; the replicas run on
/// their own actix Arbiters).
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("flotilla-raft")
            .enable_all()
            .build()
            .expect("the Raft runtime's threads could not be started")
    })
}

/// Runs `fut` on the Raft runtime and waits for it from any thread, inside a runtime or not.
pub(crate) fn block_on<T: Send + 'static>(
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> Option<T> {
    futures::executor::block_on(runtime().spawn(fut)).ok()
}

struct Node {
    raft: Raft,
    replica: Addr<ReplicaActor>,
    /// Caught up and taking reads (false while a restarted or new node catches up).
    serving: bool,
}

/// A stateful shard's Raft group.
pub struct RaftGroup {
    shard: Arc<str>,
    spec: RaftSpec,
    config: Arc<openraft::Config>,
    net: Arc<Network>,
    nodes: Mutex<BTreeMap<NodeId, Node>>,
    writes: HashSet<String>,
    linearizable: HashSet<String>,
    tokens: AtomicU64,
    /// The highest log index of an acknowledged write.
    acked: AtomicU64,
    in_flight: AtomicUsize,
    closing: std::sync::atomic::AtomicBool,
    /// How long a caller waits for a leader before the write fails.
    patience: Duration,
}

impl RaftGroup {
    /// Starts a node per replica, forms the group (or recovers it from the workspace), and
    /// returns once there is a leader and every replica has applied everything committed.
    pub(crate) async fn start(
        shard: Arc<str>,
        spec: RaftSpec,
        replicas: Vec<Addr<ReplicaActor>>,
        writes: HashSet<String>,
    ) -> Result<Arc<RaftGroup>, GroupError> {
        let snapshots = probe_snapshots(&shard, &spec, &replicas).await?;
        let config = spec
            .settings
            .openraft(&shard, snapshots)
            .map_err(|message| GroupError::Config {
                shard: shard.clone(),
                message,
            })?;
        let patience = (spec.settings.election_timeout * 20).max(Duration::from_secs(10));
        let group = Arc::new(RaftGroup {
            net: Network::new(),
            config: Arc::new(config),
            linearizable: spec.linearizable.iter().cloned().collect(),
            spec,
            shard,
            nodes: Mutex::new(BTreeMap::new()),
            writes,
            tokens: AtomicU64::new(token_seed()),
            acked: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            closing: std::sync::atomic::AtomicBool::new(false),
            patience,
        });
        group.net.set_faults(group.spec.faults);
        for (i, addr) in replicas.iter().enumerate() {
            group.start_node(i as NodeId, addr.clone()).await?;
        }
        let ids: BTreeSet<NodeId> = (0..replicas.len() as NodeId).collect();
        let mut fresh = true;
        for raft in group.rafts() {
            if raft
                .is_initialized()
                .await
                .map_err(|e| group.unavailable(e))?
            {
                fresh = false;
            }
        }
        if fresh {
            let members: BTreeMap<NodeId, BasicNode> =
                ids.iter().map(|&i| (i, group.basic_node(i))).collect();
            let first = group
                .raft(0)
                .ok_or_else(|| group.unavailable("no replica"))?;
            first
                .initialize(members)
                .await
                .map_err(|e| group.unavailable(e))?;
            tracing::info!(shard = %group.shard, replicas = ids.len(), "raft group formed");
        } else {
            tracing::info!(shard = %group.shard, "raft group recovered from the workspace");
        }
        group.set_voters(ids).await?;
        group.wait_caught_up(None).await?;
        if snapshots {
            group.spawn_snapshot_timer();
        }
        Ok(group)
    }

    fn unavailable(&self, e: impl std::fmt::Display) -> GroupError {
        GroupError::Unavailable {
            shard: self.shard.clone(),
            message: e.to_string(),
        }
    }

    fn basic_node(&self, id: NodeId) -> BasicNode {
        BasicNode::new(format!("{}/rep-{id}", self.shard))
    }

    fn nodes(&self) -> std::sync::MutexGuard<'_, BTreeMap<NodeId, Node>> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn rafts(&self) -> Vec<Raft> {
        self.nodes().values().map(|n| n.raft.clone()).collect()
    }

    fn raft(&self, id: NodeId) -> Option<Raft> {
        self.nodes().get(&id).map(|n| n.raft.clone())
    }

    /// Opens node `id`'s log and state machine (restoring its snapshot) and puts it on the
    /// network.
    async fn start_node(&self, id: NodeId, replica: Addr<ReplicaActor>) -> Result<(), GroupError> {
        let node_err = |message: String| GroupError::Node {
            shard: self.shard.clone(),
            node: id,
            message,
        };
        let dir = self.spec.root.join(id.to_string());
        let store = LogStore::open(&dir).map_err(|e| node_err(e.to_string()))?;
        let sm = StateMachine::open(id, replica.clone(), dir)
            .await
            .map_err(|e| node_err(e.to_string()))?;
        let connector = Connector {
            net: self.net.clone(),
        };
        let raft = Raft::new(id, self.config.clone(), connector, store, sm)
            .await
            .map_err(|e| node_err(e.to_string()))?;
        self.net.join(id, raft.clone());
        self.nodes().insert(
            id,
            Node {
                raft,
                replica,
                serving: false,
            },
        );
        Ok(())
    }

    /// The replica whose node currently leads, if one does.
    pub fn leader(&self) -> Option<usize> {
        self.leader_node().map(|(id, _)| id as usize)
    }

    fn leader_node(&self) -> Option<(NodeId, Raft)> {
        self.nodes().iter().find_map(|(&id, n)| {
            let m = n.raft.metrics();
            let m = m.borrow();
            (m.state == ServerState::Leader && m.current_leader == Some(id))
                .then(|| (id, n.raft.clone()))
        })
    }

    async fn wait_leader(&self) -> Result<(NodeId, Raft), GroupError> {
        let deadline = Instant::now() + self.patience;
        loop {
            if let Some(l) = self.leader_node() {
                return Ok(l);
            }
            if Instant::now() > deadline {
                return Err(self.unavailable(format!("no leader within {:?}", self.patience)));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Makes `voters` the group's voters: nodes not yet members join as learners first (they
    /// catch up from a snapshot and the log), then the voter set is replaced.
    async fn set_voters(&self, voters: BTreeSet<NodeId>) -> Result<(), GroupError> {
        let deadline = Instant::now() + self.patience;
        loop {
            let (_, leader) = self.wait_leader().await?;
            let current: BTreeSet<NodeId> = leader
                .metrics()
                .borrow()
                .membership_config
                .membership()
                .voter_ids()
                .collect();
            if current == voters {
                return Ok(());
            }
            let result = async {
                for &id in voters.difference(&current) {
                    leader
                        .add_learner(id, self.basic_node(id), true)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                leader
                    .change_membership(ChangeMembers::ReplaceAllVoters(voters.clone()), false)
                    .await
                    .map_err(|e| e.to_string())
            }
            .await;
            match result {
                Ok(_) => {
                    tracing::info!(shard = %self.shard, ?voters, "raft membership changed");
                    return Ok(());
                }
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(shard = %self.shard, "membership change retried: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(self.unavailable(format!("membership change failed: {e}"))),
            }
        }
    }

    /// Waits until `only` (or every running node) has applied everything the leader had
    /// in its log when this was called.
    async fn wait_caught_up(&self, only: Option<NodeId>) -> Result<(), GroupError> {
        let (_, leader) = self.wait_leader().await?;
        let target = leader.metrics().borrow().last_log_index;
        let nodes: Vec<(NodeId, Raft)> = self
            .nodes()
            .iter()
            .filter(|(id, _)| only.is_none_or(|o| o == **id))
            .map(|(id, n)| (*id, n.raft.clone()))
            .collect();
        for (id, raft) in nodes {
            raft.wait(Some(self.patience))
                .applied_index_at_least(target, "caught up")
                .await
                .map_err(|e| GroupError::Node {
                    shard: self.shard.clone(),
                    node: id,
                    message: format!("did not catch up: {e}"),
                })?;
            if let Some(n) = self.nodes().get_mut(&id) {
                n.serving = true;
            }
        }
        Ok(())
    }

    /// Waits until every running node has applied everything in the leader's log now (after
    /// faults: the replicas are then identical).
    pub async fn converge(self: &Arc<Self>) -> Result<(), GroupError> {
        let me = self.clone();
        runtime()
            .spawn(async move { me.wait_caught_up(None).await })
            .await
            .unwrap_or_else(|e| Err(self.unavailable(e)))
    }

    /// Waits until every serving replica has applied every write acknowledged so far, so that
    /// a read sees them whichever replica serves it. A replica that lags for longer than an
    /// election timeout (cut off, or failing) is not waited for.
    pub async fn settle(self: &Arc<Self>) {
        let target = self.acked.load(Ordering::Acquire);
        if target == 0 || self.lagging(target).is_empty() {
            return;
        }
        let me = self.clone();
        let _ = runtime()
            .spawn(async move {
                let limit = me.spec.settings.election_timeout;
                for raft in me.lagging(target) {
                    let _ = raft
                        .wait(Some(limit))
                        .applied_index_at_least(Some(target), "settled")
                        .await;
                }
            })
            .await;
    }

    fn lagging(&self, target: u64) -> Vec<Raft> {
        self.nodes()
            .values()
            .filter(|n| n.serving)
            .filter(|n| {
                n.raft
                    .metrics()
                    .borrow()
                    .last_applied
                    .map_or(0, |l| l.index)
                    < target
            })
            .map(|n| n.raft.clone())
            .collect()
    }

    /// Whether `endpoint` changes state (goes through the log).
    pub fn is_write(&self, endpoint: &str) -> bool {
        self.writes.contains(endpoint)
    }

    /// Whether reads of `endpoint` are linearizable.
    pub fn is_linearizable(&self, endpoint: &str) -> bool {
        self.linearizable.contains(endpoint)
    }

    fn closed(&self) -> DispatchError {
        DispatchError::Closed {
            shard: self.shard.clone(),
        }
    }

    /// Logs a write and answers with the leader's result once it is committed and applied.
    /// A write is retried on the new leader when leadership changes under it; it is applied
    /// once whatever happens to the first attempt.
    pub async fn write(self: &Arc<Self>, req: Request) -> Result<Request, DispatchError> {
        let me = self.clone();
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        if self.closing.load(Ordering::Acquire) {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(self.closed());
        }
        let joined = runtime()
            .spawn(async move { me.write_on_runtime(req).await })
            .await;
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        joined.unwrap_or_else(|_| Err(self.closed()))
    }

    async fn write_on_runtime(&self, req: Request) -> Result<Request, DispatchError> {
        let bytes = postcard::to_stdvec(&req).map_err(|e| DispatchError::Unavailable {
            replica: self.shard.clone(),
            message: format!("the request could not be logged: {e}"),
        })?;
        let write = Write {
            request: bytes,
            token: self.tokens.fetch_add(1, Ordering::Relaxed),
        };
        let deadline = Instant::now() + self.patience;
        loop {
            let (id, leader) =
                self.wait_leader()
                    .await
                    .map_err(|e| DispatchError::Unavailable {
                        replica: self.shard.clone(),
                        message: e.to_string(),
                    })?;
            match leader.client_write(write.clone()).await {
                Ok(resp) => {
                    self.acked.fetch_max(resp.log_id.index, Ordering::AcqRel);
                    return match resp.data {
                        Applied::Done(done) => Ok(*done),
                        Applied::Failed {
                            replica,
                            name,
                            message,
                        } => Err(DispatchError::Executor {
                            replica: replica.into(),
                            error: crate::executor::ExecutorError { name, message },
                        }),
                        Applied::Duplicate | Applied::Nothing => Ok(req),
                    };
                }
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))
                | Err(RaftError::Fatal(_))
                    if Instant::now() < deadline =>
                {
                    tracing::debug!(shard = %self.shard, node = id, "leader changed under a write; retrying");
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err(e) => {
                    return Err(DispatchError::Unavailable {
                        replica: format!("{}/rep-{id}", self.shard).into(),
                        message: format!("not the leader: {e}"),
                    });
                }
            }
        }
    }

    /// A linearizable read: the leader confirms it still leads (read index), waits until it has
    /// applied up to that point, and its replica serves the request.
    pub async fn read(self: &Arc<Self>, req: Request) -> Result<Request, DispatchError> {
        let me = self.clone();
        let joined = runtime()
            .spawn(async move {
                let deadline = Instant::now() + me.patience;
                loop {
                    let (id, leader) =
                        me.wait_leader()
                            .await
                            .map_err(|e| DispatchError::Unavailable {
                                replica: me.shard.clone(),
                                message: e.to_string(),
                            })?;
                    match leader.ensure_linearizable().await {
                        Ok(_) => {
                            let Some(addr) = me.nodes().get(&id).map(|n| n.replica.clone()) else {
                                continue;
                            };
                            let (tx, rx) = oneshot::channel();
                            addr.do_send(Apply {
                                request: req,
                                reply: tx,
                            });
                            return rx.await.unwrap_or_else(|_| Err(me.closed()));
                        }
                        Err(e) if Instant::now() > deadline => {
                            return Err(DispatchError::Unavailable {
                                replica: me.shard.clone(),
                                message: format!("no linearizable read: {e}"),
                            });
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                    }
                }
            })
            .await;
        joined.unwrap_or_else(|_| Err(self.closed()))
    }

    /// Stops node `id` (as if its process died): it leaves the network and its Raft core stops.
    /// Its log and snapshot stay on disk.
    pub(crate) async fn stop_node(&self, id: NodeId) {
        self.net.leave(id);
        let node = self.nodes().remove(&id);
        if let Some(n) = node {
            let _ = n.raft.shutdown().await;
            tracing::info!(shard = %self.shard, node = id, "raft node stopped");
        }
    }

    /// Starts node `id` again with a fresh Executor in `replica`: it restores its stored
    /// snapshot, replays its log, and catches up with the leader before this returns.
    pub(crate) async fn restart_node(
        &self,
        id: NodeId,
        replica: Addr<ReplicaActor>,
    ) -> Result<(), GroupError> {
        self.stop_node(id).await;
        self.start_node(id, replica).await?;
        self.wait_caught_up(Some(id)).await?;
        tracing::info!(shard = %self.shard, node = id, "raft node restarted and caught up");
        Ok(())
    }

    /// Adds node `id` (a new replica) and makes the voters exactly `voters`.
    pub(crate) async fn add_node(
        &self,
        id: NodeId,
        replica: Addr<ReplicaActor>,
        voters: BTreeSet<NodeId>,
    ) -> Result<(), GroupError> {
        self.start_node(id, replica).await?;
        self.set_voters(voters).await?;
        self.wait_caught_up(Some(id)).await
    }

    /// Makes the voters exactly `voters`, then stops the nodes that are no longer voters.
    pub(crate) async fn remove_nodes(&self, voters: BTreeSet<NodeId>) -> Result<(), GroupError> {
        self.set_voters(voters.clone()).await?;
        let gone: Vec<NodeId> = self
            .nodes()
            .keys()
            .copied()
            .filter(|id| !voters.contains(id))
            .collect();
        for id in gone {
            self.stop_node(id).await;
        }
        Ok(())
    }

    /// Turns message fault injection on or off (tests).
    pub fn set_faults(&self, faults: Option<Faults>) {
        self.net.set_faults(faults);
    }

    /// Each running node's `(id, last applied index)`.
    pub fn applied(&self) -> Vec<(NodeId, u64)> {
        self.nodes()
            .iter()
            .map(|(&id, n)| {
                let m = n.raft.metrics();
                let idx = m.borrow().last_applied.map_or(0, |l| l.index);
                (id, idx)
            })
            .collect()
    }

    /// The running nodes.
    pub fn members(&self) -> Vec<NodeId> {
        self.nodes().keys().copied().collect()
    }

    /// Waits for writes under way, then stops every node.
    pub(crate) async fn shutdown(&self) {
        self.closing.store(true, Ordering::Release);
        while self.in_flight.load(Ordering::Acquire) > 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let ids: Vec<NodeId> = self.nodes().keys().copied().collect();
        for id in ids {
            self.stop_node(id).await;
        }
    }

    fn spawn_snapshot_timer(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let every = self.spec.settings.snapshot_interval;
        runtime().spawn(async move {
            let mut last: BTreeMap<NodeId, u64> = BTreeMap::new();
            loop {
                tokio::time::sleep(every).await;
                let Some(group) = weak.upgrade() else { return };
                let nodes: Vec<(NodeId, Raft)> = group
                    .nodes()
                    .iter()
                    .map(|(id, n)| (*id, n.raft.clone()))
                    .collect();
                for (id, raft) in nodes {
                    let applied = raft.metrics().borrow().last_applied.map_or(0, |l| l.index);
                    if last.get(&id).is_none_or(|&l| l < applied) {
                        last.insert(id, applied);
                        let _ = raft.trigger().snapshot().await;
                    }
                }
            }
        });
    }
}

/// Whether the Executor can snapshot (probed on a fresh replica); without it the log is never
/// compacted and a new replica replays the whole log.
async fn probe_snapshots(
    shard: &Arc<str>,
    spec: &RaftSpec,
    replicas: &[Addr<ReplicaActor>],
) -> Result<bool, GroupError> {
    let Some(first) = replicas.first() else {
        return Ok(false);
    };
    let dir = spec.root.join("snapshot-probe");
    super::snapshot::fresh_dir(&dir).map_err(|e| GroupError::Unavailable {
        shard: shard.clone(),
        message: e.to_string(),
    })?;
    let ok = matches!(first.send(TakeSnapshot(dir.clone())).await, Ok(Ok(())));
    let _ = std::fs::remove_dir_all(&dir);
    if !ok {
        tracing::warn!(shard = %shard, "the Executor does not implement snapshot()/restore(): the Raft log is never compacted");
    }
    Ok(ok)
}

/// A start for write tokens that differs between runs, so tokens of an earlier run that are
/// still in the log never collide with new ones.
fn token_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    (nanos ^ (u64::from(std::process::id()) << 48)) | 1
}
