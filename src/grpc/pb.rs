//! The code generated from `proto/` by `build.rs` (prost messages, tonic servers and clients).
//!
//! - [`docarray`]: docarray v2's document messages (`DocProto`, `NodeProto`, `DocListProto` …).
//! - [`jina`]: Jina's request envelope and services (`DataRequestProto`, `JinaRpc` …).
//! - [`flotilla`]: flotilla's Raft service between replica processes.
//!
//! Map fields are `BTreeMap`s (see `build.rs`). `google.protobuf.Struct` is
//! [`prost_types::Struct`] and `google.protobuf.Empty` is `()`.

/// docarray v2 messages (package `docarray`).
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod docarray {
    tonic::include_proto!("docarray");
}

/// Jina messages and services (package `jina`).
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod jina {
    #![allow(non_camel_case_types)]
    tonic::include_proto!("jina");
}

/// flotilla's own services (package `flotilla`): Raft between replica processes.
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod flotilla {
    tonic::include_proto!("flotilla");
}

/// The encoded `FileDescriptorSet` of `jina.proto`, `docarray.proto` and their imports, for
/// `tonic_reflection` (Jina's gateway checks Executors through server reflection).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/flotilla_descriptor.bin"));
