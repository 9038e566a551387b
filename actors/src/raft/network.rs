//! How the nodes of a stateful shard talk: straight calls on each other's `Raft` handle when
//! they run in this process, through a table that can take a node off the network (stopped,
//! or cut off) and, for tests, delay or drop messages with a seeded random source; encoded
//! messages through a [`Transport`] to nodes in other processes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use openraft::BasicNode;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use super::transport::{Cluster, Rpc};
use super::types::{NodeId, TypeConfig};

/// A running node's handle.
pub type Raft = openraft::Raft<TypeConfig>;

/// Message faults for tests: each message is dropped with probability `drop_per_mille`/1000,
/// or else delayed by up to `max_delay`. Deterministic for a seed (given the same order of
/// messages).
#[derive(Clone, Copy, Debug)]
pub struct Faults {
    pub seed: u64,
    pub drop_per_mille: u32,
    pub max_delay: Duration,
}

/// The nodes of one shard that are reachable now.
#[derive(Default)]
pub struct Network {
    nodes: RwLock<HashMap<NodeId, Raft>>,
    faults: Mutex<Option<(Faults, u64)>>,
    /// The nodes of other processes, when the shard spans processes.
    cluster: Option<Cluster>,
}

/// Why a message did not arrive.
#[derive(Debug, thiserror::Error)]
enum Lost {
    #[error("node {0} is not running")]
    Down(NodeId),
    #[error("message to node {0} dropped (fault injection)")]
    Dropped(NodeId),
}

impl Network {
    pub fn new() -> Arc<Network> {
        Arc::new(Network::default())
    }

    /// A network whose nodes that are not in this process are reached through
    /// `cluster.transport`.
    pub fn spanning(cluster: Cluster) -> Arc<Network> {
        Arc::new(Network {
            cluster: Some(cluster),
            ..Network::default()
        })
    }

    /// Serves a message that arrived from another process for local node `to`.
    pub async fn receive(&self, to: NodeId, rpc: Rpc, body: &[u8]) -> Result<Vec<u8>, String> {
        let raft = self.node(to).map_err(|e| e.to_string())?;
        super::transport::receive(&raft, rpc, body).await
    }

    /// Puts a node on the network (replacing an earlier incarnation).
    pub fn join(&self, id: NodeId, raft: Raft) {
        self.nodes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, raft);
    }

    /// Takes a node off the network: messages to it fail as unreachable.
    pub fn leave(&self, id: NodeId) -> Option<Raft> {
        self.nodes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id)
    }

    /// Turns fault injection on (or off with `None`).
    pub fn set_faults(&self, faults: Option<Faults>) {
        *self.faults.lock().unwrap_or_else(|p| p.into_inner()) = faults.map(|f| (f, f.seed.max(1)));
    }

    /// Whether `id` runs in another process.
    fn is_remote(&self, id: NodeId) -> bool {
        self.cluster.as_ref().is_some_and(|c| c.me != id)
    }

    fn node(&self, id: NodeId) -> Result<Raft, Lost> {
        self.nodes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
            .ok_or(Lost::Down(id))
    }

    /// Applies the configured faults to one message.
    async fn deliver(&self, to: NodeId) -> Result<Raft, Lost> {
        let fault = {
            let mut f = self.faults.lock().unwrap_or_else(|p| p.into_inner());
            f.as_mut().map(|(faults, state)| {
                let r = xorshift(state);
                let dropped = (r % 1000) < u64::from(faults.drop_per_mille);
                let max = faults.max_delay.as_micros() as u64;
                let delay = if max == 0 { 0 } else { (r >> 10) % max };
                (dropped, Duration::from_micros(delay))
            })
        };
        if let Some((dropped, delay)) = fault {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if dropped {
                return Err(Lost::Dropped(to));
            }
        }
        self.node(to)
    }
}

fn xorshift(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

/// Makes connections from one node to the others.
pub struct Connector {
    pub net: Arc<Network>,
}

impl RaftNetworkFactory<TypeConfig> for Connector {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> Connection {
        Connection {
            net: self.net.clone(),
            to: target,
        }
    }
}

/// A connection to one node.
pub struct Connection {
    net: Arc<Network>,
    to: NodeId,
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        if self.net.is_remote(self.to) {
            return self
                .remote(Rpc::AppendEntries, &rpc, option.hard_ttl())
                .await;
        }
        let raft = self.reach().await?;
        raft.append_entries(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.to, e)))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        if self.net.is_remote(self.to) {
            return self
                .remote(Rpc::InstallSnapshot, &rpc, option.hard_ttl())
                .await;
        }
        let raft = self.reach().await?;
        raft.install_snapshot(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.to, e)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        if self.net.is_remote(self.to) {
            return self.remote(Rpc::Vote, &rpc, option.hard_ttl()).await;
        }
        let raft = self.reach().await?;
        raft.vote(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.to, e)))
    }
}

impl Connection {
    /// Sends a message to a node of another process and decodes its answer.
    async fn remote<Req, Resp, E>(
        &self,
        rpc: Rpc,
        req: &Req,
        ttl: Duration,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        Req: serde::Serialize,
        Resp: serde::de::DeserializeOwned,
        E: std::error::Error + serde::de::DeserializeOwned,
    {
        let Some(cluster) = &self.net.cluster else {
            return Err(RPCError::Unreachable(Unreachable::new(&Lost::Down(
                self.to,
            ))));
        };
        let Some(address) = cluster.peers.get(&self.to) else {
            return Err(RPCError::Unreachable(Unreachable::new(&Lost::Down(
                self.to,
            ))));
        };
        let body =
            postcard::to_stdvec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let bytes = cluster
            .transport
            .send(address, self.to, rpc, body, ttl)
            .await
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&std::io::Error::other(e))))?;
        let answer: Result<Resp, RaftError<NodeId, E>> =
            postcard::from_bytes(&bytes).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.to, e)))
    }

    async fn reach<E: std::error::Error>(
        &self,
    ) -> Result<Raft, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>> {
        self.net
            .deliver(self.to)
            .await
            .map_err(|lost| RPCError::Unreachable(Unreachable::new(&lost)))
    }
}
