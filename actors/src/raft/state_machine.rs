//! The state machine of one node: its replica's Executor. Committed writes are sent to the
//! replica actor in log order (a batch at once; the replica's mailbox keeps the order and it
//! decodes each on its own thread), so every replica applies the same writes in the same order,
//! each once; snapshots are the Executor's own `snapshot(dir)` files.
//!
//! Exactly once across leader changes: a write carries a token, and the tokens of recently
//! applied writes are remembered (and kept in snapshots), so a write that a caller retried after
//! its first attempt was committed anyway is logged twice but applied once.

use std::collections::{HashSet, VecDeque};
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use actix::Addr;
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{
    BasicNode, EntryPayload, LogId, OptionalSend, Snapshot, SnapshotMeta, StorageIOError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::awaited::Awaited;
use super::originals::Originals;
use super::snapshot::{self, Meta};
use super::types::{Applied, Entry, NodeId, StorageError, TypeConfig, Write};
use crate::dispatch::{Dispatch, DispatchError};
use crate::replica::{Apply, ApplyEncoded, ReplicaActor, Restore, Snapshot as TakeSnapshot};
use crate::request::Request;

/// How many applied write tokens are remembered for de-duplication.
const REMEMBERED: usize = 1 << 16;

/// What a snapshot holds besides the Executor's files.
#[derive(Serialize, Deserialize)]
struct Packed {
    #[serde(with = "serde_bytes")]
    files: Vec<u8>,
    tokens: Vec<u64>,
}

/// One node's state machine.
pub struct StateMachine {
    node: NodeId,
    replica: Addr<ReplicaActor>,
    /// The replica's shard: nudged before every message to the replica (a write to apply, a
    /// snapshot to take or restore), so that a lingering replica reads it at once.
    dispatch: Arc<Dispatch>,
    /// The requests of writes this process is logging: the first local replica to apply one
    /// runs it as the caller sent it, without decoding its bytes.
    originals: Arc<Originals>,
    /// The writes whose result is awaited from this node (the others' results are dropped by
    /// the replica that made them).
    awaited: Arc<Awaited>,
    /// `<workspace>/raft/<shard>/<replica>`.
    dir: PathBuf,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    tokens: Tokens,
}

#[derive(Default, Clone)]
struct Tokens {
    order: VecDeque<u64>,
    set: HashSet<u64>,
}

impl Tokens {
    /// Remembers `t`; false when it was already there.
    fn insert(&mut self, t: u64) -> bool {
        if !self.set.insert(t) {
            return false;
        }
        self.order.push_back(t);
        if self.order.len() > REMEMBERED
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }

    fn from_list(list: Vec<u64>) -> Tokens {
        let mut t = Tokens::default();
        for x in list {
            t.insert(x);
        }
        t
    }
}

fn sm_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_state_machine(&e).into()
}

fn snap_err(meta: Option<&Meta>, e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_snapshot(meta.map(|m| m.signature()), &e).into()
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Failure(String);

static SNAPSHOT_SEQ: AtomicU64 = AtomicU64::new(0);

impl StateMachine {
    /// The state machine of `node`, whose Executor runs in `replica`. If the node has a stored
    /// snapshot, the Executor is restored from it first (the log replays what came after).
    pub(crate) async fn open(
        node: NodeId,
        replica: Addr<ReplicaActor>,
        dispatch: Arc<Dispatch>,
        originals: Arc<Originals>,
        awaited: Arc<Awaited>,
        dir: PathBuf,
    ) -> Result<StateMachine, StorageError> {
        let mut sm = StateMachine {
            node,
            replica,
            dispatch,
            originals,
            awaited,
            dir,
            last_applied: None,
            membership: StoredMembership::default(),
            tokens: Tokens::default(),
        };
        if let Some((meta, data)) = snapshot::load(&sm.dir).map_err(|e| snap_err(None, e))? {
            sm.restore(&meta, &data).await?;
            tracing::info!(node, last = ?meta.last_log_id, "restored the stored snapshot");
        }
        Ok(sm)
    }

    /// Hands a snapshot's files to the Executor and takes over its position in the log.
    async fn restore(&mut self, meta: &Meta, data: &[u8]) -> Result<(), StorageError> {
        let packed: Packed = postcard::from_bytes(data).map_err(|e| snap_err(Some(meta), e))?;
        let work = self.dir.join("snapshot-restore");
        snapshot::unpack(&packed.files, &work).map_err(|e| snap_err(Some(meta), e))?;
        self.dispatch.nudge();
        let restored = self
            .replica
            .send(Restore(work.clone()))
            .await
            .map_err(|e| snap_err(Some(meta), Failure(format!("replica gone: {e}"))))?;
        restored.map_err(|e| snap_err(Some(meta), Failure(e.to_string())))?;
        let _ = std::fs::remove_dir_all(&work);
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.tokens = Tokens::from_list(packed.tokens);
        Ok(())
    }

    /// Hands one logged write to the replica (in log order), unless its token says it was
    /// applied already: the caller's own request when this process keeps it, else the bytes.
    fn send(&mut self, w: Write) -> Item {
        if w.token != 0 && !self.tokens.insert(w.token) {
            return Item::Ready(Applied::Duplicate);
        }
        let (tx, rx) = oneshot::channel();
        self.dispatch.nudge();
        let answer = self.awaited.is_awaited(self.node, w.token);
        match self.originals.take(w.token, &w.request) {
            Some(request) => self.replica.do_send(Apply {
                request,
                reply: tx,
                answer,
            }),
            None => self.replica.do_send(ApplyEncoded {
                request: w.request,
                reply: tx,
                answer,
            }),
        }
        Item::Sent(rx)
    }

    /// What a write handed over applied as.
    async fn settle(&self, item: Item) -> Result<Applied, StorageError> {
        match item {
            Item::Ready(a) => Ok(a),
            Item::Sent(rx) => self.outcome(rx.await),
            Item::Answered(answer) => self.outcome(answer),
        }
    }

    /// What applying a write sent to the replica came to.
    // `StorageError` is openraft's, the error type `apply` must return.
    #[allow(clippy::result_large_err)]
    fn outcome(&self, answer: Answer) -> Result<Applied, StorageError> {
        match answer {
            Ok(Ok(done)) => Ok(Applied::Done(Box::new(done))),
            Ok(Err(DispatchError::Executor { replica, error, .. })) => Ok(Applied::Failed {
                replica: replica.to_string(),
                name: error.name,
                message: error.message,
            }),
            // The replica panicked or is gone: its Executor's state is no longer what the log
            // says. The node stops here and is rebuilt from its snapshot and log.
            Ok(Err(other)) => Err(sm_err(Failure(other.to_string()))),
            Err(_) => Err(sm_err(Failure(format!(
                "node {}: the replica stopped while applying",
                self.node
            )))),
        }
    }
}

/// An entry on its way through the replica.
enum Pending {
    One(Item),
    /// The writes of a batch entry, in order.
    Batch(Vec<Item>),
}

/// One write on its way through the replica, or what it already came to.
enum Item {
    Ready(Applied),
    Sent(oneshot::Receiver<Result<Request, DispatchError>>),
    Answered(Answer),
}

/// What the replica answered to a write sent to it.
type Answer = Result<Result<Request, DispatchError>, oneshot::error::RecvError>;

impl Item {
    /// Waits for this write's answer, if it was sent, and keeps it.
    async fn wait(&mut self) {
        if let Item::Sent(rx) = self {
            let answer = rx.await;
            *self = Item::Answered(answer);
        }
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Builder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // Every write of the batch goes to the replica's mailbox at once (it decodes and
        // applies them in order, one at a time), then the answers are collected in order.
        let mut pending = Vec::new();
        for entry in entries {
            let p = match entry.payload {
                EntryPayload::Blank => Pending::One(Item::Ready(Applied::Nothing)),
                EntryPayload::Normal(w) if !w.batch.is_empty() => {
                    Pending::Batch(w.batch.into_iter().map(|w| self.send(w)).collect())
                }
                // The same bytes fail the same way on every node: applied, as a failure.
                EntryPayload::Normal(w) if w.is_undecodable_batch() => {
                    Pending::One(Item::Ready(Applied::Failed {
                        replica: format!("raft node {}", self.node),
                        name: "RaftError".into(),
                        message: "a logged batch of writes could not be decoded".into(),
                    }))
                }
                EntryPayload::Normal(w) => Pending::One(self.send(w)),
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                    Pending::One(Item::Ready(Applied::Nothing))
                }
            };
            pending.push((entry.log_id, p));
        }
        // The replica takes the writes in mailbox order, so once the last one is answered the
        // others (sync handlers) are too: waiting for it first wakes this task once, not once
        // per write. Any still under way (async handlers) are waited for below, in order.
        let last = pending.iter_mut().rev().find_map(|(_, p)| match p {
            Pending::One(item @ Item::Sent(_)) => Some(item),
            Pending::One(_) => None,
            Pending::Batch(items) => items.iter_mut().rev().find(|i| matches!(i, Item::Sent(_))),
        });
        if let Some(item) = last {
            item.wait().await;
        }
        let mut out = Vec::with_capacity(pending.len());
        for (log_id, p) in pending {
            let applied = match p {
                Pending::One(item) => self.settle(item).await?,
                Pending::Batch(items) => {
                    let mut each = Vec::with_capacity(items.len());
                    for item in items {
                        each.push(self.settle(item).await?);
                    }
                    Applied::Batch(each)
                }
            };
            self.last_applied = Some(log_id);
            out.push(applied);
        }
        Ok(out)
    }

    /// Takes the Executor's snapshot here, between two applies, so that it matches
    /// `last_applied`; packing and storing it runs beside further applies.
    async fn get_snapshot_builder(&mut self) -> Builder {
        let seq = SNAPSHOT_SEQ.fetch_add(1, Ordering::Relaxed);
        let work = self.dir.join(format!("snapshot-build-{seq}"));
        self.dispatch.nudge();
        let taken = match snapshot::fresh_dir(&work) {
            Err(e) => Err(e.to_string()),
            Ok(()) => match self.replica.send(TakeSnapshot(work.clone())).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(format!("replica gone: {e}")),
            },
        };
        Builder {
            dir: self.dir.clone(),
            work,
            taken,
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            tokens: self.tokens.order.iter().copied().collect(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        self.restore(meta, &data).await?;
        snapshot::store(&self.dir, meta, &data).map_err(|e| snap_err(Some(meta), e))?;
        tracing::info!(node = self.node, last = ?meta.last_log_id, "installed a snapshot from the leader");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let stored = snapshot::load(&self.dir).map_err(|e| snap_err(None, e))?;
        Ok(stored.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

/// Packs and stores a snapshot the Executor already wrote.
pub struct Builder {
    dir: PathBuf,
    work: PathBuf,
    taken: Result<(), String>,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    tokens: Vec<u64>,
}

impl RaftSnapshotBuilder<TypeConfig> for Builder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let result = self.build();
        let _ = std::fs::remove_dir_all(&self.work);
        result
    }
}

impl Builder {
    // openraft's own error type is large; this is its one producer here.
    #[allow(clippy::result_large_err)]
    fn build(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id: format!(
                "{}-{}",
                self.last_applied.map_or(0, |l| l.index),
                SNAPSHOT_SEQ.fetch_add(1, Ordering::Relaxed)
            ),
        };
        if let Err(e) = &self.taken {
            return Err(snap_err(Some(&meta), Failure(e.clone())));
        }
        let files = snapshot::pack(&self.work).map_err(|e| snap_err(Some(&meta), e))?;
        let data = postcard::to_stdvec(&Packed {
            files,
            tokens: std::mem::take(&mut self.tokens),
        })
        .map_err(|e| snap_err(Some(&meta), e))?;
        snapshot::store(&self.dir, &meta, &data).map_err(|e| snap_err(Some(&meta), e))?;
        tracing::info!(last = ?meta.last_log_id, bytes = data.len(), "snapshot stored");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_forget_the_oldest_past_the_window() {
        let mut t = Tokens::default();
        assert!(t.insert(1));
        assert!(!t.insert(1));
        for i in 2..(REMEMBERED as u64 + 2) {
            assert!(t.insert(i));
        }
        assert_eq!(t.order.len(), REMEMBERED);
        assert!(t.insert(1), "1 was the oldest and is forgotten");
    }
}
