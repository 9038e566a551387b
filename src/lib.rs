//! flotilla: Jina-style Flows and Deployments of Executors on an actix actor kernel.

pub mod grpc;

pub use flotilla_actors as actors;
