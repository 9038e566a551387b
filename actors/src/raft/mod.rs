//! Stateful shards: writes go through a Raft log (openraft) before every replica applies them.
//!
//! - [`types`]: what is logged (`Write`) and what applying returns (`Applied`).
//! - [`settings`]: `raft_configuration` (Jina's keys) onto openraft's `Config`.
//! - [`log_store`]: the durable log (entries, vote, committed) under the workspace.
//! - [`record`]: how the log file's records are laid out, the logged requests not copied.
//! - [`log_file`]: the log file as its sync thread appends to it (`O_DIRECT` where it can).
//! - [`state_machine`]: a node's state machine: its replica's Executor.
//! - [`originals`]: the callers' requests of writes being logged, for the first local replica
//!   to apply them (no decode on the leader's path).
//! - [`awaited`]: which node's result of a write is awaited (the others drop theirs).
//! - [`snapshot`]: Executor snapshots packed, shipped and stored.
//! - [`network`]: how nodes talk: in-process calls (with fault injection for tests), or
//!   through a [`transport`] to nodes in other processes.
//! - [`transport`]: the seam to a network transport (flotilla's gRPC one).
//! - [`group`]: a shard's nodes together: start, recover, write, read, stop, restart, scale.

mod awaited;
pub mod group;
mod log_file;
pub mod log_store;
pub mod network;
mod originals;
mod record;
pub mod settings;
pub mod snapshot;
pub mod state_machine;
pub mod transport;
pub mod types;

pub use group::{GroupError, RaftGroup, RaftSpec};

pub use network::Faults;
pub use settings::RaftSettings;
pub use transport::{Cluster, Rpc, Transport};
