//! Everything that speaks Jina's gRPC wire protocol.

pub mod codec;
pub mod pb;
