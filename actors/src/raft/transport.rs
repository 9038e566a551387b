//! Raft between processes: the seam between the kernel, which has no networking, and a
//! transport that carries bytes (flotilla's gRPC one, `flotilla.Raft` on each replica's port).
//!
//! A message to a node of another process is encoded with postcard (openraft's own request
//! type), sent by the [`Transport`] to that node's address, handed there to
//! [`receive`], and answered with the node's `Result` encoded the same way, so the caller sees
//! exactly what a local call would have returned.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::network::Raft;
use super::types::NodeId;

/// Which Raft call a message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rpc {
    AppendEntries,
    Vote,
    InstallSnapshot,
    /// A write a follower forwards to the leader's process (a logged `Write`; the answer is
    /// `Result<(log index, Applied), String>`).
    Write,
}

/// The answer of a transport: the encoded reply, or why the node could not be reached.
pub type Reply = Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send>>;

/// Carries an encoded Raft message to node `to` at `address` and brings back the encoded reply.
pub trait Transport: Send + Sync + 'static {
    fn send(&self, address: &str, to: NodeId, rpc: Rpc, body: Vec<u8>, ttl: Duration) -> Reply;
}

/// A stateful shard whose replicas run in separate processes: this process runs node `me`;
/// `peers` is every node's address (this one's included), fixed for the group's life.
#[derive(Clone)]
pub struct Cluster {
    pub me: NodeId,
    pub peers: BTreeMap<NodeId, String>,
    pub transport: Arc<dyn Transport>,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("me", &self.me)
            .field("peers", &self.peers)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// This node's address.
    pub fn address(&self) -> &str {
        self.peers.get(&self.me).map_or("", String::as_str)
    }
}

/// Serves one message that arrived for local node `raft`: decodes it, calls the node, and
/// encodes its answer (success or Raft error alike) for the caller.
pub async fn receive(raft: &Raft, rpc: Rpc, body: &[u8]) -> Result<Vec<u8>, String> {
    fn decode<'a, T: serde::Deserialize<'a>>(body: &'a [u8]) -> Result<T, String> {
        postcard::from_bytes(body).map_err(|e| format!("a malformed Raft message: {e}"))
    }
    fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, String> {
        postcard::to_stdvec(v).map_err(|e| format!("a Raft answer could not be encoded: {e}"))
    }
    match rpc {
        Rpc::AppendEntries => encode(&raft.append_entries(decode(body)?).await),
        Rpc::Vote => encode(&raft.vote(decode(body)?).await),
        Rpc::InstallSnapshot => encode(&raft.install_snapshot(decode(body)?).await),
        Rpc::Write => Err("a forwarded write is served by the group, not the node".into()),
    }
}
