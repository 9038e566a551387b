//! A stateful shard's Raft group: one openraft node per replica, each with its durable log and
//! its replica's Executor as state machine, on flotilla's Raft runtime.
//!
//! Writes go to the leader's log and answer with the leader's result once committed and
//! applied; every replica applies every committed write in log order. Linearizable reads ask
//! the leader to confirm its leadership (read index) and are served by the leader's replica.
//! Nodes can be stopped, restarted and added or removed at runtime.
//!
//! A group can also span processes ([`Cluster`], `flotilla executor --stateful`): each process
//! runs one node, node 0 forms the group over the fixed list of peers, and a node that does
//! not lead answers writes and linearizable reads with "not the leader" (and the leader's
//! address), which callers retry on another replica, as Jina's do. A write's request id is then
//! its token: a write retried by a caller after a lost answer is applied once.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use actix::Addr;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, ServerState};
use tokio::sync::oneshot;

use super::awaited::Awaited;
use super::log_store::LogStore;
use super::network::{Connector, Faults, Network, Raft};
use super::originals::Originals;
use super::settings::RaftSettings;
use super::state_machine::StateMachine;
use super::transport::{Cluster, Rpc};
use super::types::{Applied, NodeId, Write};
use crate::dispatch::{Admission, Dispatch, DispatchError};
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
    /// Set when the shard's replicas run in separate processes: this process runs one node.
    pub cluster: Option<Cluster>,
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
    /// A write or linearizable read reached a node of another process's leader.
    #[error("{shard}/rep-{node}: node {node} is not the leader{}", leader.as_ref().map(|l| format!(" (the leader is {l})")).unwrap_or_default())]
    NotLeader {
        shard: Arc<str>,
        node: NodeId,
        leader: Option<String>,
    },
}

impl GroupError {
    fn unavailable(self) -> DispatchError {
        match self {
            GroupError::NotLeader {
                ref shard, node, ..
            } => DispatchError::Unavailable {
                replica: format!("{shard}/rep-{node}").into(),
                message: self.to_string(),
            },
            GroupError::Node { ref shard, .. }
            | GroupError::Config { ref shard, .. }
            | GroupError::Unavailable { ref shard, .. } => DispatchError::Unavailable {
                replica: shard.clone(),
                message: self.to_string(),
            },
        }
    }
}

/// One node's view of its group, for operators and tests (`flotilla.Raft/Status`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    pub id: NodeId,
    /// `Leader`, `Follower`, `Candidate` or `Learner`.
    pub state: String,
    pub leader: Option<NodeId>,
    pub term: u64,
    pub last_applied: u64,
    pub last_log_index: u64,
    /// Caught up with the group since it started, and serving reads.
    pub serving: bool,
}

/// The runtime every Raft node of the process runs on (openraft needs tokio; the replicas run on
/// their own actix Arbiters). One thread: the nodes' work between their replicas and their
/// fsyncs (which run on threads of their own) is small, and with two the nodes of a group
/// kept waking each other across threads (3 stateful replicas over gRPC: 20% fewer context
/// switches and 5–8% less time with one).
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("flotilla-raft")
            .enable_all()
            .build()
            .expect("the Raft runtime's threads could not be started")
    })
}

/// The runtime of the calling task when it has worker threads, else the Raft runtime: a
/// write's own task runs beside its caller (a gateway's worker), which it wakes when it is
/// done, instead of on the Raft runtime, which its caller would have to hand it to first. Not
/// on a single-threaded runtime (an actix Arbiter, a current-thread `#[tokio::main]`): a caller
/// that blocks its thread until the write is done would keep the write's task from running.
fn here_or_raft() -> tokio::runtime::Handle {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => h,
        _ => runtime().handle().clone(),
    }
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
    /// The shard's dispatch table: nudged before a replica is sent a message.
    dispatch: Arc<Dispatch>,
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
    /// Every local node has caught up with the group once (reads wait for it).
    ready: std::sync::atomic::AtomicBool,
    /// How long a caller waits for a leader before the write fails.
    patience: Duration,
    /// Writes waiting to share a log entry (group commit).
    committer: Committer,
    /// The callers' requests of the writes being logged, for the first local replica to apply
    /// each.
    originals: Arc<Originals>,
    /// The writes whose result someone waits for, by the node they were proposed through.
    awaited: Arc<Awaited>,
}

/// Group commit. openraft 0.9 waits for each append's fsync before it takes the next client
/// write, so writes logged one entry each are fsynced one at a time, in turn: 1,000 concurrent
/// writes cost 1,000 fsyncs back to back. Instead, writes that arrive while others are being
/// logged wait here and are logged together as one entry ([`Write::batch`]), at most
/// [`BATCH_WRITES`] writes or [`BATCH_BYTES`] bytes (between processes [`BATCH_BYTES_NETWORK`]),
/// with up to [`BATCHES_IN_FLIGHT`] entries on their way at once (a second one only once
/// [`SECOND_ENTRY_AFTER`] writes wait). Each write keeps its own
/// token and is applied on its own, in order, so nothing else changes: a lone write is logged
/// alone, at once.
#[derive(Default)]
struct Committer {
    queue: Mutex<Vec<Queued>>,
    /// Entries being logged now.
    active: AtomicUsize,
}

/// The most writes one entry carries.
const BATCH_WRITES: usize = 64;
/// The most request bytes one entry carries (a write larger than this is logged alone) when
/// the nodes are in this process (Raft messages pass through channels).
const BATCH_BYTES: usize = 2 << 20;
/// The same when the nodes are processes: an AppendEntries carries up to `max_append_entries`
/// entries and must arrive within a heartbeat interval, so entries stay small.
const BATCH_BYTES_NETWORK: usize = 256 << 10;
/// Entries logged at once by the committer.
const BATCHES_IN_FLIGHT: usize = 2;
/// Writes waiting before an entry starts beside one already on its way; fewer wait for the
/// entry on its way to end and share the next one. Writes that trickle in (a gateway decoding
/// one request after another) were logged about 5 to an entry with two entries always on
/// their way (190 entries for the seed's 1,000 writes); now they share fewer, larger entries
/// with fewer wake-ups, and 3 stateful replicas over gRPC take 3–6% less time. Writes posted
/// in process pile up faster than that and keep two entries on their way.
const SECOND_ENTRY_AFTER: usize = 32;

struct Queued {
    write: Write,
    reply: oneshot::Sender<Result<(u64, Applied), Failed>>,
}

/// Why a write was not logged.
#[derive(Debug)]
enum Failed {
    /// Leadership changed under it: the caller may retry (its token keeps it applied once).
    Retry(String),
    Other(String),
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failed::Retry(m) | Failed::Other(m) => f.write_str(m),
        }
    }
}

impl Committer {
    fn queue_lock(&self) -> std::sync::MutexGuard<'_, Vec<Queued>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes one of the slots for entries in flight, if one is free and `queued` writes
    /// (waiting now) are enough for it: the first slot takes any, the others
    /// [`SECOND_ENTRY_AFTER`]. Writes left waiting are taken by the entry on its way when it
    /// is done (its pump takes batches until the queue is empty).
    fn take_slot(&self, queued: usize) -> bool {
        self.active
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |a| {
                let enough = a == 0 || queued >= SECOND_ENTRY_AFTER;
                (a < BATCHES_IN_FLIGHT && enough).then_some(a + 1)
            })
            .is_ok()
    }

    /// The oldest waiting writes that fit in one entry.
    fn take_batch(&self, max_bytes: usize) -> Vec<Queued> {
        let mut queue = self.queue_lock();
        let mut bytes = 0;
        let mut n = 0;
        for q in queue.iter() {
            if n == BATCH_WRITES || (n > 0 && bytes + q.write.request.len() > max_bytes) {
                break;
            }
            bytes += q.write.request.len();
            n += 1;
        }
        queue.drain(..n).collect()
    }
}

/// Answers every write of `batch` with the error `why` makes.
fn fail_all(batch: Vec<Queued>, why: impl Fn() -> Failed) {
    for q in batch {
        let _ = q.reply.send(Err(why()));
    }
}

/// Logs `batch` as one entry (a lone write as itself) and answers each of its writes. An entry
/// not answered within `patience` (a deposed leader that does not know it yet) is given up:
/// its writes are retried by their callers, and applied once whatever happens to it.
async fn log_batch(
    (id, leader): (NodeId, &Raft),
    awaited: &Awaited,
    mut batch: Vec<Queued>,
    patience: Duration,
) {
    let mut writes: Vec<Write> = batch
        .iter_mut()
        .map(|q| std::mem::take(&mut q.write))
        .collect();
    let entry = match writes.len() {
        1 => writes.remove(0),
        _ => Write::batch(writes),
    };
    // Only this node's results are answered with: the others drop theirs where they are made.
    let _marked = awaited.mark(id, &entry);
    let result = match tokio::time::timeout(patience, leader.client_write(entry)).await {
        Ok(r) => r,
        Err(_) => {
            let message = format!("the entry was not committed within {patience:?}");
            return fail_all(batch, || Failed::Retry(message.clone()));
        }
    };
    let n = batch.len();
    match result {
        Ok(resp) => {
            let index = resp.log_id.index;
            let each: Vec<Applied> = match resp.data {
                Applied::Batch(each) if n > 1 && each.len() == n => each,
                Applied::Batch(_) => {
                    return fail_all(batch, || {
                        Failed::Other("internal: a batch applied as another".into())
                    });
                }
                // A lone write; or a batch that failed as a whole (it could not be decoded):
                // every write of it failed so.
                one => vec![one; n],
            };
            for (q, applied) in batch.into_iter().zip(each) {
                let _ = q.reply.send(Ok((index, applied)));
            }
        }
        Err(e) => {
            let retry = matches!(
                e,
                RaftError::APIError(ClientWriteError::ForwardToLeader(_)) | RaftError::Fatal(_)
            );
            let message = e.to_string();
            fail_all(batch, || {
                if retry {
                    Failed::Retry(message.clone())
                } else {
                    Failed::Other(message.clone())
                }
            });
        }
    }
}

impl std::fmt::Debug for RaftGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftGroup")
            .field("shard", &self.shard)
            .field("nodes", &self.members())
            .field("cluster", &self.spec.cluster)
            .finish_non_exhaustive()
    }
}

impl RaftGroup {
    /// Starts a node per replica, forms the group (or recovers it from the workspace), and
    /// returns once there is a leader and every replica has applied everything committed.
    pub(crate) async fn start(
        shard: Arc<str>,
        dispatch: Arc<Dispatch>,
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
        let ids: Vec<NodeId> = match &spec.cluster {
            Some(c) if replicas.len() == 1 => vec![c.me],
            Some(_) => {
                return Err(GroupError::Config {
                    shard,
                    message: format!("a replica process runs one node, not {}", replicas.len()),
                });
            }
            None => (0..replicas.len() as NodeId).collect(),
        };
        let net = match &spec.cluster {
            Some(c) => Network::spanning(c.clone()),
            None => Network::new(),
        };
        let group = Arc::new(RaftGroup {
            net,
            config: Arc::new(config),
            linearizable: spec.linearizable.iter().cloned().collect(),
            spec,
            shard,
            dispatch,
            nodes: Mutex::new(BTreeMap::new()),
            writes,
            tokens: AtomicU64::new(token_seed()),
            acked: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            closing: std::sync::atomic::AtomicBool::new(false),
            ready: std::sync::atomic::AtomicBool::new(false),
            patience,
            committer: Committer::default(),
            originals: Arc::default(),
            awaited: Arc::default(),
        });
        group.net.set_faults(group.spec.faults);
        for (&id, addr) in ids.iter().zip(&replicas) {
            group.start_node(id, addr.clone()).await?;
        }
        let members: BTreeSet<NodeId> = match &group.spec.cluster {
            Some(c) => c.peers.keys().copied().collect(),
            None => ids.iter().copied().collect(),
        };
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
        // The lowest node forms a new group; in a group spanning processes the others wait to
        // hear from it.
        let former = members.first().copied().unwrap_or(0);
        if fresh && ids.contains(&former) {
            let nodes: BTreeMap<NodeId, BasicNode> =
                members.iter().map(|&i| (i, group.basic_node(i))).collect();
            let first = group
                .raft(former)
                .ok_or_else(|| group.unavailable("no replica"))?;
            first
                .initialize(nodes)
                .await
                .map_err(|e| group.unavailable(e))?;
            tracing::info!(shard = %group.shard, replicas = members.len(), "raft group formed");
        } else if fresh {
            tracing::info!(shard = %group.shard, node = ?ids, "waiting for node {former} to form the raft group");
        } else {
            tracing::info!(shard = %group.shard, "raft group recovered from the workspace");
        }
        if group.spec.cluster.is_some() {
            // The peers may not be up yet: catch up in the background; reads wait for it.
            group.spawn_catch_up();
        } else {
            group.set_voters(members).await?;
            group.wait_caught_up(None).await?;
            group.ready.store(true, Ordering::Release);
        }
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
        match self.spec.cluster.as_ref().and_then(|c| c.peers.get(&id)) {
            Some(address) => BasicNode::new(address),
            None => BasicNode::new(format!("{}/rep-{id}", self.shard)),
        }
    }

    /// The leader a local node knows of, if it is in another process.
    fn remote_leader(&self) -> Option<GroupError> {
        let (_, address) = self.leader_elsewhere()?;
        Some(GroupError::NotLeader {
            shard: self.shard.clone(),
            node: self.spec.cluster.as_ref()?.me,
            leader: Some(address),
        })
    }

    /// The address of node `id` in a group spanning processes.
    pub fn address_of(&self, id: NodeId) -> Option<String> {
        self.spec.cluster.as_ref()?.peers.get(&id).cloned()
    }

    /// Serves a Raft message that arrived from another process for local node `to`.
    pub async fn receive(&self, to: NodeId, rpc: Rpc, body: &[u8]) -> Result<Vec<u8>, String> {
        if rpc == Rpc::Write {
            let answer = self.serve_forwarded(to, body).await;
            return postcard::to_stdvec(&answer).map_err(|e| e.to_string());
        }
        self.net.receive(to, rpc, body).await
    }

    /// Each local node's view of the group.
    pub fn status(&self) -> Vec<NodeStatus> {
        self.nodes()
            .iter()
            .map(|(&id, n)| {
                let m = n.raft.metrics();
                let m = m.borrow();
                NodeStatus {
                    id,
                    state: format!("{:?}", m.state),
                    leader: m.current_leader,
                    term: m.current_term,
                    last_applied: m.last_applied.map_or(0, |l| l.index),
                    last_log_index: m.last_log_index.unwrap_or(0),
                    serving: n.serving,
                }
            })
            .collect()
    }

    /// In a group spanning processes: waits (in the background) until a leader is known and
    /// the local node has applied what its log holds, then serves reads.
    fn spawn_catch_up(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        runtime().spawn(async move {
            let target = loop {
                let Some(group) = weak.upgrade() else { return };
                if group.closing.load(Ordering::Acquire) {
                    return;
                }
                let known = group.nodes().values().find_map(|n| {
                    let m = n.raft.metrics();
                    let m = m.borrow();
                    m.current_leader.map(|_| m.last_log_index)
                });
                if let Some(target) = known {
                    break target;
                }
                drop(group);
                tokio::time::sleep(Duration::from_millis(10)).await;
            };
            let Some(group) = weak.upgrade() else { return };
            for (id, raft) in group.node_rafts() {
                let caught_up = raft
                    .wait(Some(group.patience))
                    .applied_index_at_least(target, "caught up")
                    .await;
                if let Err(e) = caught_up {
                    tracing::warn!(shard = %group.shard, node = id, "serving before catching up: {e}");
                }
                if let Some(n) = group.nodes().get_mut(&id) {
                    n.serving = true;
                }
            }
            group.ready.store(true, Ordering::Release);
            tracing::info!(shard = %group.shard, "raft node caught up; serving");
        });
    }

    fn nodes(&self) -> std::sync::MutexGuard<'_, BTreeMap<NodeId, Node>> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn rafts(&self) -> Vec<Raft> {
        self.nodes().values().map(|n| n.raft.clone()).collect()
    }

    /// Each running node's id and handle.
    fn node_rafts(&self) -> Vec<(NodeId, Raft)> {
        self.nodes()
            .iter()
            .map(|(id, n)| (*id, n.raft.clone()))
            .collect()
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
        let sm = StateMachine::open(
            id,
            replica.clone(),
            self.dispatch.clone(),
            self.originals.clone(),
            self.awaited.clone(),
            dir,
        )
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

    /// The local leader, waiting for one to be elected; in a group spanning processes, "not
    /// the leader" as soon as the leader is known to be another process's node.
    async fn wait_leader(&self) -> Result<(NodeId, Raft), GroupError> {
        let deadline = Instant::now() + self.patience;
        loop {
            if let Some(l) = self.leader_node() {
                return Ok(l);
            }
            if let Some(elsewhere) = self.remote_leader() {
                return Err(elsewhere);
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
        let deadline = Instant::now() + self.patience;
        while !self.ready.load(Ordering::Acquire) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let target = self.acked.load(Ordering::Acquire);
        if target == 0 || self.lagging(target).is_empty() {
            return;
        }
        let me = self.clone();
        let _ = runtime()
            .spawn(async move {
                // A follower in another process may wait out a replication backoff too.
                let limit = match me.spec.cluster {
                    Some(_) => me.spec.settings.election_timeout * 4,
                    None => me.spec.settings.election_timeout,
                };
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
    pub async fn write(
        self: &Arc<Self>,
        mut req: Request,
        room: Admission,
    ) -> Result<Request, DispatchError> {
        let counted = InFlight::enter(self.clone());
        if self.closing.load(Ordering::Acquire) {
            return Err(self.closed());
        }
        // Encoded here, on the caller's thread: the Raft runtime only logs bytes. Encoding
        // there, then dropping the caller's docs there, was a third of the time of its busiest
        // thread on the seed's index.
        let bytes = log_bytes(&req).map_err(|e| DispatchError::Unavailable {
            replica: self.shard.clone(),
            message: format!("the request could not be logged: {e}"),
        })?;
        let token = match &self.spec.cluster {
            // Callers in other processes retry a write whose answer they lost with the same
            // request id: it is the write's identity.
            Some(_) if !req.id.is_empty() => request_token(&req.id),
            _ => self.tokens.fetch_add(1, Ordering::Relaxed),
        };
        // Not logged: a replica decoding the bytes would not see it either.
        req.target_executor = None;
        // The request itself goes to the first local replica that applies the write (see
        // `originals`); what none took comes back when the write is done.
        let unkept = self.originals.keep(token, bytes.clone(), req);
        let write = Write::new(bytes, token);
        let me = self.clone();
        let joined = here_or_raft()
            .spawn(async move {
                // The write counts as under way, and holds its room in the shard, until it is
                // done here, whether or not its caller still waits for it.
                let _counted = counted;
                let _room = room;
                let applied = me.write_on_runtime(write.clone()).await;
                let sent = unkept.or_else(|| me.originals.take(write.token, &write.request));
                (applied, sent, write.request)
            })
            .await;
        let (applied, sent, bytes) = joined.map_err(|_| self.closed())?;
        self.answer(sent, &bytes, applied?)
    }

    /// Commits `write` through the leader, wherever it is: what it applied as on the leader.
    /// The write counts as acknowledged here, whether or not its caller still waits.
    async fn write_on_runtime(self: &Arc<Self>, write: Write) -> Result<Applied, DispatchError> {
        let deadline = Instant::now() + self.patience;
        let (index, applied) = loop {
            let late = Instant::now() > deadline;
            if let Some((id, _)) = self.leader_node() {
                match self.commit(write.clone()).await {
                    Ok(done) => break done,
                    Err(Failed::Retry(_)) if !late => {
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
            } else if let Some((leader, address)) = self.leader_elsewhere() {
                // Forwarded to the leader's process; if it is gone, wait for the next leader.
                match self.forward(leader, &address, &write).await {
                    Ok(done) => break done,
                    Err(e) if !late => {
                        tracing::debug!(shard = %self.shard, "forwarding a write to {address}: {e}; retrying");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(e) => {
                        return Err(DispatchError::Unavailable {
                            replica: self.shard.clone(),
                            message: format!("the leader at {address} did not take a write: {e}"),
                        });
                    }
                }
            } else if late {
                return Err(DispatchError::Unavailable {
                    replica: self.shard.clone(),
                    message: format!("no leader within {:?}", self.patience),
                });
            } else {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        self.acked.fetch_max(index, Ordering::AcqRel);
        Ok(applied)
    }

    /// The caller's answer to its write, which applied as `applied` on the leader. `sent` is the
    /// request as sent, unless a replica of this process took it to apply it: then the logged
    /// `bytes` give it back, when the answer needs it (a failure, a duplicate).
    fn answer(
        &self,
        sent: Option<Request>,
        bytes: &[u8],
        applied: Applied,
    ) -> Result<Request, DispatchError> {
        let as_sent = || match sent {
            Some(req) => Ok(req),
            None => {
                postcard::from_bytes::<Request>(bytes).map_err(|e| DispatchError::Unavailable {
                    replica: self.shard.clone(),
                    message: format!("internal: a logged write does not decode: {e}"),
                })
            }
        };
        match applied {
            Applied::Done(done) => Ok(*done),
            Applied::Failed {
                replica,
                name,
                message,
            } => {
                let error = DispatchError::executor(
                    replica,
                    crate::executor::ExecutorError { name, message },
                );
                // The docs as sent: the failing handler's own stayed on the leader's replica.
                Err(match as_sent() {
                    Ok(req) => error.with_docs(req.docs),
                    Err(_) => error,
                })
            }
            Applied::Duplicate | Applied::Nothing => as_sent(),
            Applied::Batch(_) => Err(DispatchError::Unavailable {
                replica: self.shard.clone(),
                message: "internal: a lone write applied as a batch".into(),
            }),
        }
    }

    /// Logs `write` through `leader`, sharing an entry with the writes waiting beside it (see
    /// [`Committer`]); answers with the entry's log index and what the write applied as.
    async fn commit(self: &Arc<Self>, write: Write) -> Result<(u64, Applied), Failed> {
        let (tx, rx) = oneshot::channel();
        let queued = {
            let mut queue = self.committer.queue_lock();
            queue.push(Queued { write, reply: tx });
            queue.len()
        };
        if self.committer.take_slot(queued) {
            let me = self.clone();
            runtime().spawn(async move { me.pump().await });
        }
        // Bounded, so that nothing can leave a caller waiting for good; a write retried after
        // this is still applied once (its token).
        match tokio::time::timeout(self.patience, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(Failed::Retry("the write's entry was dropped".into())),
            Err(_) => Err(Failed::Retry(format!(
                "not logged within {:?}",
                self.patience
            ))),
        }
    }

    /// Logs what the committer's queue holds, entry by entry, through whichever local node
    /// leads at the time, until the queue is empty; holds one of the committer's slots, and
    /// gives it back. Every write taken is answered.
    async fn pump(self: Arc<Self>) {
        // Gives the slot back however this task ends (a panic in openraft included), then
        // makes sure a write queued meanwhile has a pump.
        struct Slot(Arc<RaftGroup>);
        impl Drop for Slot {
            fn drop(&mut self) {
                let c = &self.0.committer;
                c.active.fetch_sub(1, Ordering::SeqCst);
                let queued = c.queue_lock().len();
                if queued > 0 && c.take_slot(queued) {
                    let me = self.0.clone();
                    runtime().spawn(async move { me.pump().await });
                }
            }
        }
        let _slot = Slot(self.clone());
        let max_bytes = if self.spec.cluster.is_some() {
            BATCH_BYTES_NETWORK
        } else {
            BATCH_BYTES
        };
        loop {
            // A write queued after the last batch was taken, while this pump still holds its
            // slot, is seen here or by the pump `Slot` starts when this one ends.
            let batch = self.committer.take_batch(max_bytes);
            if batch.is_empty() {
                return;
            }
            match self.leader_node() {
                Some((id, leader)) => {
                    log_batch((id, &leader), &self.awaited, batch, self.patience).await
                }
                None => fail_all(batch, || Failed::Retry("no local leader".into())),
            }
        }
    }

    /// The leader, when it is a node of another process: its id and address.
    fn leader_elsewhere(&self) -> Option<(NodeId, String)> {
        let cluster = self.spec.cluster.as_ref()?;
        let leader = self
            .raft(cluster.me)?
            .metrics()
            .borrow()
            .current_leader
            .filter(|&l| l != cluster.me)?;
        Some((leader, cluster.peers.get(&leader)?.clone()))
    }

    /// Sends a write to the leader's process; answers with its log index and what it applied
    /// as.
    async fn forward(
        &self,
        leader: NodeId,
        address: &str,
        write: &Write,
    ) -> Result<(u64, Applied), String> {
        let cluster = self.spec.cluster.as_ref().ok_or("not a cluster")?;
        let body = postcard::to_stdvec(write).map_err(|e| e.to_string())?;
        let reply = cluster
            .transport
            .send(address, leader, Rpc::Write, body, self.patience)
            .await?;
        let answer: Result<(u64, Applied), String> =
            postcard::from_bytes(&reply).map_err(|e| format!("a malformed answer: {e}"))?;
        answer
    }

    /// Serves a write forwarded by a follower of another process: logged if this node leads.
    async fn serve_forwarded(&self, to: NodeId, body: &[u8]) -> Result<(u64, Applied), String> {
        let write: Write =
            postcard::from_bytes(body).map_err(|e| format!("a malformed write: {e}"))?;
        let raft = self
            .raft(to)
            .ok_or_else(|| format!("node {to} is not running"))?;
        let _marked = self.awaited.mark(to, &write);
        let resp = raft.client_write(write).await.map_err(|e| match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => {
                format!("node {to} is not the leader")
            }
            e => e.to_string(),
        })?;
        self.acked.fetch_max(resp.log_id.index, Ordering::AcqRel);
        Ok((resp.log_id.index, resp.data))
    }

    /// A linearizable read: the leader confirms it still leads (read index), waits until it has
    /// applied up to that point, and its replica serves the request.
    pub async fn read(
        self: &Arc<Self>,
        req: Request,
        room: Admission,
    ) -> Result<Request, DispatchError> {
        let me = self.clone();
        let joined = runtime()
            .spawn(async move {
                let _room = room;
                let deadline = Instant::now() + me.patience;
                loop {
                    let (id, leader) = me.wait_leader().await.map_err(GroupError::unavailable)?;
                    match leader.ensure_linearizable().await {
                        Ok(_) => {
                            let Some(addr) = me.nodes().get(&id).map(|n| n.replica.clone()) else {
                                continue;
                            };
                            let (tx, rx) = oneshot::channel();
                            me.dispatch.nudge();
                            addr.do_send(Apply {
                                request: req,
                                reply: tx,
                                answer: true,
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
                for (id, raft) in group.node_rafts() {
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
    // Replica processes may share a workspace: each probes in a directory of its own.
    let dir = spec
        .root
        .join(format!("snapshot-probe-{}", std::process::id()));
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

/// The token of a write with request id `id` (FNV-1a; never 0, which means "no token").
fn request_token(id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h.max(1)
}

/// A start for write tokens that differs between runs, so tokens of an earlier run that are
/// still in the log never collide with new ones.
fn token_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    (nanos ^ (u64::from(std::process::id()) << 48)) | 1
}

/// A write under way, counted in its group's `in_flight` (which [`RaftGroup::shutdown`] waits
/// for) until dropped, wherever that happens.
struct InFlight(Arc<RaftGroup>);

impl InFlight {
    fn enter(group: Arc<RaftGroup>) -> Self {
        group.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(group)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A write's log bytes, encoded once into a buffer of their exact size: sized first (a walk
/// that copies nothing, tensors being borrowed as bytes), then written. Encoding into a
/// growing `Vec` doubled it to tens of kB per write of 100 embeddings, and copying from a kept
/// buffer instead cost a second pass over every byte.
fn log_bytes(req: &Request) -> Result<bytes::Bytes, postcard::Error> {
    let size = postcard::serialize_with_flavor::<_, postcard::ser_flavors::Size, usize>(
        req,
        postcard::ser_flavors::Size::default(),
    )?;
    let buf = postcard::to_extend(req, Vec::with_capacity(size))?;
    Ok(bytes::Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_entry_starts_only_once_enough_writes_wait() {
        let c = Committer::default();
        assert!(c.take_slot(1), "the first entry takes a lone write");
        assert!(
            !c.take_slot(SECOND_ENTRY_AFTER - 1),
            "too few wait for a second"
        );
        assert!(c.take_slot(SECOND_ENTRY_AFTER));
        assert!(
            !c.take_slot(usize::MAX),
            "at most {BATCHES_IN_FLIGHT} on their way"
        );
        assert_eq!(c.active.load(Ordering::SeqCst), BATCHES_IN_FLIGHT);
    }
}
