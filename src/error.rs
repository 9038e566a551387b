//! The errors of flotilla's public API.

use flotilla_actors::dispatch::DispatchError;
use flotilla_actors::shard::StartError;

use crate::config::ConfigErrors;

/// Anything that can go wrong between a config and an answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config is invalid (every problem, each with its place).
    #[error("invalid config:\n{0}")]
    Config(#[from] ConfigErrors),
    /// An Executor could not be started.
    #[error(transparent)]
    Start(#[from] StartError),
    /// A request failed.
    #[error(transparent)]
    Request(#[from] DispatchError),
    /// A gRPC client call failed.
    #[error(transparent)]
    Client(#[from] crate::grpc::client::ClientError),
    /// A server's TLS certificate or key cannot be used.
    #[error("TLS: {0}")]
    Tls(#[from] crate::grpc::tls::TlsError),
    /// A server could not be set up.
    #[error("cannot serve: {0}")]
    Serve(String),
    /// Reading a config file failed.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}
