//! flotilla's kernel: documents, Executors, replicas, shards, routers, reduce and Raft, in
//! process and without networking.
//!
//! Layout:
//! - [`doc`]: `Doc`, `DocList`, `Value`, `NdArray`, the data that flows.
//! - [`request`]: the request a handler sees.
//! - [`executor`]: the `Executor` trait, endpoints, `write` tagging, factories.
//! - [`query`]: the `when` query language, parsed once and evaluated per doc.
//! - [`reduce`]: merging the results of parallel branches and shards by doc id.
//! - [`gpu`]: `CUDA_VISIBLE_DEVICES=RR…` round-robin device assignment.

pub mod doc;
pub mod executor;
pub mod gpu;
pub mod query;
pub mod reduce;
pub mod request;

/// What Executor code needs, in one import.
pub mod prelude {
    pub use crate::doc::{Dict, Doc, DocList, NdArray, Value};
    pub use crate::executor::{Context, Executor, ExecutorError, HandlerResult, Output, Requests};
    pub use crate::request::{Params, Request};
}
