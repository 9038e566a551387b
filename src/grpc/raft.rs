//! Raft between the replica processes of a stateful Executor: the `flotilla.Raft` service each
//! replica serves on its own port (beside Jina's services), and the kernel's
//! [`Transport`] over it.
//!
//! Messages are openraft's own, encoded by the kernel; this layer only carries bytes. A node
//! that cannot be reached (down, or not started yet) is UNAVAILABLE, which openraft treats as
//! unreachable and retries on its own schedule.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flotilla_actors::raft::group::RaftGroup;
use flotilla_actors::raft::{Rpc, Transport, transport::Reply};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use super::pb::flotilla::raft_client::RaftClient;
use super::pb::flotilla::raft_server::{self, RaftServer};
use super::pb::flotilla::{RaftMessage, RaftNodeStatus, RaftStatus, RaftStatusRequest};

/// The `flotilla.Raft` service of one replica process.
pub struct RaftService {
    group: Arc<RaftGroup>,
}

impl RaftService {
    /// The service for `group`'s local node, with no message-size limit (snapshots travel in
    /// chunks of openraft's `snapshot_max_chunk_size`, entries in batches of
    /// `max_append_entries`).
    pub fn server(group: Arc<RaftGroup>) -> RaftServer<RaftService> {
        RaftServer::new(RaftService { group })
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX)
    }

    async fn pass(
        &self,
        rpc: Rpc,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let m = req.into_inner();
        match self.group.receive(m.to, rpc, &m.body).await {
            Ok(body) => Ok(Response::new(RaftMessage { to: m.to, body })),
            Err(e) => Err(Status::unavailable(e)),
        }
    }
}

#[tonic::async_trait]
impl raft_server::Raft for RaftService {
    async fn append_entries(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        self.pass(Rpc::AppendEntries, req).await
    }

    async fn vote(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        self.pass(Rpc::Vote, req).await
    }

    async fn install_snapshot(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        self.pass(Rpc::InstallSnapshot, req).await
    }

    async fn write(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        self.pass(Rpc::Write, req).await
    }

    async fn status(&self, _: Request<RaftStatusRequest>) -> Result<Response<RaftStatus>, Status> {
        let nodes = self
            .group
            .status()
            .into_iter()
            .map(|n| RaftNodeStatus {
                id: n.id,
                state: n.state,
                leader: n.leader,
                leader_address: n
                    .leader
                    .and_then(|l| self.group.address_of(l))
                    .unwrap_or_default(),
                term: n.term,
                last_applied: n.last_applied,
                last_log_index: n.last_log_index,
                serving: n.serving,
            })
            .collect();
        Ok(Response::new(RaftStatus { nodes }))
    }
}

/// The kernel's Raft transport over `flotilla.Raft`: one lazily connected channel per peer,
/// re-connected after a failure.
#[derive(Default)]
pub struct GrpcTransport {
    clients: Arc<Mutex<HashMap<String, RaftClient<Channel>>>>,
}

impl GrpcTransport {
    pub fn new() -> Arc<GrpcTransport> {
        Arc::new(GrpcTransport::default())
    }
}

fn client_for(
    clients: &Mutex<HashMap<String, RaftClient<Channel>>>,
    address: &str,
) -> Result<RaftClient<Channel>, String> {
    let mut clients = clients.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = clients.get(address) {
        return Ok(c.clone());
    }
    let channel = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| format!("{address}: {e}"))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(1))
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_while_idle(true)
        .connect_lazy();
    let client = RaftClient::new(channel)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);
    clients.insert(address.to_owned(), client.clone());
    Ok(client)
}

impl Transport for GrpcTransport {
    fn send(&self, address: &str, to: u64, rpc: Rpc, body: Vec<u8>, ttl: Duration) -> Reply {
        let clients = self.clients.clone();
        let address = address.to_owned();
        Box::pin(async move {
            // Channels are made inside the caller's runtime (they spawn their connection there).
            let mut client = client_for(&clients, &address)?;
            let mut req = Request::new(RaftMessage { to, body });
            req.set_timeout(ttl);
            let answer = match rpc {
                Rpc::AppendEntries => client.append_entries(req).await,
                Rpc::Vote => client.vote(req).await,
                Rpc::InstallSnapshot => client.install_snapshot(req).await,
                Rpc::Write => client.write(req).await,
            };
            answer
                .map(|r| r.into_inner().body)
                .map_err(|s| format!("{address}: {:?}: {}", s.code(), s.message()))
        })
    }
}

/// Asks the replica process at `address` (`host:port`) for its Raft status.
pub async fn status(address: &str) -> Result<RaftStatus, String> {
    let channel = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| format!("{address}: {e}"))?
        .connect_timeout(Duration::from_secs(1))
        .connect()
        .await
        .map_err(|e| format!("{address}: {e}"))?;
    RaftClient::new(channel)
        .status(RaftStatusRequest {})
        .await
        .map(Response::into_inner)
        .map_err(|s| format!("{address}: {}", s.message()))
}
