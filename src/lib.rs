//! flotilla: Jina-style Flows and Deployments of Executors on an actix actor kernel.
//!
//! Layout:
//! - [`Deployment`], [`Flow`]: builders; [`Running`]: a started one (`post`, `close`).
//! - [`config`]: YAML and builder entries compiled into one validated graph.
//! - [`executors`]: the built-in Executors and their registry.
//! - [`grpc`]: Jina's gRPC wire protocol.
//! - [`bench`]: `flotilla bench`, flotilla measured beside its baselines.
//! - [`actors`]: the kernel (documents, Executors, replicas, shards, routers).

pub mod bench;
pub mod cli;
pub mod config;
pub mod demo;
pub mod deployment;
pub mod error;
pub mod executors;
pub mod flow;
pub mod grpc;
pub mod logging;
pub mod running;
pub mod topology;

pub use flotilla_actors as actors;
pub use flotilla_actors::doc::{Dict, Doc, DocList, NdArray, Value};
pub use flotilla_actors::executor::{
    Context, DynamicBatching, Executor, ExecutorError, HandlerResult, Output, Requests, factory,
    factory_with, serde_factory,
};
pub use flotilla_actors::flow::PostOptions;
pub use flotilla_actors::registry::Registry;
pub use flotilla_actors::request::{Params, Request};

pub use config::Exec;
pub use deployment::Deployment;
pub use error::Error;
pub use flow::Flow;
pub use running::Running;

/// The README's Rust examples, compiled and run as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
