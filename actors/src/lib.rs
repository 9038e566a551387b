//! flotilla's kernel: documents, Executors, replicas, shards, routers, reduce and Raft, in
//! process and without networking.
//!
//! Layout:
//! - [`doc`]: `Doc`, `DocList`, `Value`, `NdArray`, the data that flows.
//! - [`request`]: the request a handler sees.
//! - [`executor`]: the `Executor` trait, endpoints, `write` tagging, factories.
//! - [`registry`]: `uses` names to Executor factories.
//! - [`query`]: the `when` query language, parsed once and evaluated per doc.
//! - [`raft`]: stateful shards whose writes go through a Raft log.
//! - [`reduce`]: merging the results of parallel branches and shards by doc id.
//! - [`replica`]: `ReplicaActor`, one Executor on an Arbiter of its own.
//! - [`dispatch`]: the idle-first dispatch table of a shard, with its bounded queue.
//! - [`linger`], [`inline`]: fewer thread hand-overs: replicas that stay awake a moment, and
//!   callers that run a quick Executor themselves.
//! - [`shard`]: the shard supervisor (start, restart on panic, stop).
//! - [`remote`]: `RemoteReplica`, the way external Executors enter the kernel.
//! - [`router`]: one per Flow node: needs join, `when`, polling, reduce.
//! - [`flow`]: a running Flow (a Deployment is a Flow of one node); `post`.
//! - [`graph`]: the validated graph the kernel runs.
//! - [`gpu`]: `CUDA_VISIBLE_DEVICES=RR…` round-robin device assignment.

pub mod dispatch;
pub mod doc;
pub mod executor;
pub mod flow;
pub mod gpu;
pub mod graph;
pub mod inline;
pub mod linger;
pub mod query;
pub mod raft;
pub mod reduce;
pub mod registry;
pub mod remote;
pub mod replica;
pub mod request;
pub mod router;
pub mod shard;
mod system;
pub mod target;

/// What Executor code needs, in one import.
pub mod prelude {
    pub use crate::doc::{Dict, Doc, DocList, NdArray, Value};
    pub use crate::executor::{
        Context, DynamicBatching, Executor, ExecutorError, HandlerResult, Output, Requests,
    };
    pub use crate::executor::{factory, factory_with, serde_factory};
    pub use crate::request::{Params, Request};
}
