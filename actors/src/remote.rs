//! Replicas in other processes (external Executors): the one way the network enters the
//! kernel. The `flotilla` crate implements [`RemoteReplica`] over gRPC; the kernel only
//! dispatches to it, counts what is in flight and retries elsewhere what Jina would retry.

use std::sync::Arc;

use crate::dispatch::DispatchError;
use crate::request::Request;

/// Why a remote call failed, and whether another replica may be tried.
#[derive(Debug)]
pub struct RemoteError {
    pub error: DispatchError,
    /// Jina retries UNAVAILABLE, DEADLINE_EXCEEDED and "not the leader" on the next replica.
    pub retry: bool,
    /// The request, handed back so that it can be retried without a copy.
    pub request: Option<Box<Request>>,
}

/// Called once with the outcome of a remote call.
pub type Done = Box<dyn FnOnce(Result<Request, RemoteError>) + Send>;

/// A replica reached over the network.
pub trait RemoteReplica: Send + Sync + 'static {
    /// Where it is (`host:port`), as errors and logs name it.
    fn address(&self) -> &Arc<str>;

    /// Sends `request` (several parts when `docs_matrix` is set: a join without reduce) and
    /// calls `done` exactly once, from any thread, when it has been answered or has failed.
    fn send(&self, request: Request, done: Done);
}
