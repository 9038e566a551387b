//! Everything that speaks Jina's gRPC wire protocol.
//!
//! - [`pb`]: the code generated from `proto/`.
//! - [`codec`]: kernel documents and requests to and from their protos, losslessly.
//! - [`service`]: Jina's services over a running Flow (gateway or Executor role).
//! - [`server`]: the tonic server with health, reflection, compression and size limits.
//! - [`remote`]: external Executors, the kernel's `RemoteReplica` over gRPC.
//! - [`error_trailer`]: Jina's `is-error` trailer on unary replies that carry an error.
//! - [`status`]: how failures travel (Jina error status in the response, or a gRPC status).
//! - [`client`]: a client of a gateway, like Jina's Python `Client(protocol='grpc')`.
//! - [`raft`]: Raft between the replica processes of a stateful Executor.
//! - [`schema`]: endpoint schemas in the shape Jina's gateway rebuilds classes from.
//! - [`tls`]: certificates for a server over TLS, trusted roots for a client of one.

pub mod client;
pub mod codec;
pub mod error_trailer;
pub mod pb;
pub mod raft;
pub mod remote;
pub mod schema;
pub mod server;
pub mod service;
pub mod status;
pub mod tls;
