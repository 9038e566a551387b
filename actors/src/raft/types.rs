//! The Raft type configuration of a stateful shard: what is logged and what applying returns.

use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::request::Request;

/// A write as it is logged: the request (endpoint, parameters, docs), encoded with postcard,
/// and a token unique to this write, so that a write retried after a leader change is applied
/// once even if its first attempt was committed too.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Write {
    #[serde(with = "serde_bytes")]
    pub request: Vec<u8>,
    #[serde(default)]
    pub token: u64,
}

impl fmt::Debug for Write {
    // openraft logs entries at debug level: never format a whole payload.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Write({} bytes)", self.request.len())
    }
}

impl fmt::Display for Write {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What applying an entry produced on the replica that applied it.
#[derive(Clone, Serialize, Deserialize)]
pub enum Applied {
    /// The handler's resulting request.
    Done(Box<Request>),
    /// The handler failed (the entry still counts as applied: every replica fails the same way).
    Failed {
        replica: String,
        name: String,
        message: String,
    },
    /// A membership change or a blank entry: nothing to run.
    Nothing,
    /// A retried write whose first attempt was already applied: not applied again.
    Duplicate,
}

impl fmt::Debug for Applied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Applied::Done(r) => write!(f, "Done({} docs)", r.docs.len()),
            Applied::Duplicate => f.write_str("Duplicate"),
            Applied::Failed {
                replica,
                name,
                message,
            } => write!(f, "Failed({replica}: {name}: {message})"),
            Applied::Nothing => f.write_str("Nothing"),
        }
    }
}

openraft::declare_raft_types!(
    /// The Raft types of a stateful shard: replicas are nodes `0..replicas`.
    pub TypeConfig:
        D = Write,
        R = Applied,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A node id (the replica's index in its shard).
pub type NodeId = u64;
/// A log entry of a stateful shard.
pub type Entry = openraft::Entry<TypeConfig>;
/// Storage errors of a stateful shard.
pub type StorageError = openraft::StorageError<NodeId>;
