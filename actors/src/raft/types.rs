//! The Raft type configuration of a stateful shard: what is logged and what applying returns.

use std::fmt;
use std::io::Cursor;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::request::Request;

/// A write as it is logged: the request (endpoint, parameters, docs), encoded with postcard,
/// and a token unique to this write, so that a write retried after a leader change is applied
/// once even if its first attempt was committed too.
///
/// The request's bytes are shared, not copied, when openraft clones the entry (to replicate
/// it, to apply it, to hand it to each in-process replica): an entry of a group commit can be
/// megabytes.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Write {
    pub request: Bytes,
    #[serde(default)]
    pub token: u64,
}

/// A [`Write`] read in place from a batch entry's bytes (the same encoding).
#[derive(Deserialize)]
struct WriteIn<'a> {
    #[serde(borrow, with = "serde_bytes")]
    request: &'a [u8],
    #[serde(default)]
    token: u64,
}

impl fmt::Debug for Write {
    // openraft logs entries at debug level: never format a whole payload.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Write({} bytes)", self.request.len())
    }
}

/// How a group commit is logged: one [`Write`] whose `request` is this prefix followed by the
/// postcard of the batch's writes (`Vec<Write>`), token 0. The prefix is ten bytes with the
/// continuation bit set: no postcard varint is that long, so it cannot begin an encoded
/// [`Request`] (whose first field is a length), and logs written before batches existed read
/// the same.
const BATCH_PREFIX: &[u8] = &[0xFF; 10];

impl Write {
    /// One log entry carrying `writes`, applied in order, each under its own token.
    pub fn batch(writes: &[Write]) -> Result<Write, postcard::Error> {
        let bytes: usize = writes.iter().map(|w| w.request.len() + 20).sum();
        let mut request = Vec::with_capacity(BATCH_PREFIX.len() + 10 + bytes);
        request.extend_from_slice(BATCH_PREFIX);
        let request = postcard::to_extend(writes, request)?;
        Ok(Write {
            request: request.into(),
            token: 0,
        })
    }

    /// The writes of a batch entry, their bytes shared with the entry's; `None` for a plain
    /// write.
    pub fn unbatch(&self) -> Option<Result<Vec<Write>, postcard::Error>> {
        let rest = self.request.strip_prefix(BATCH_PREFIX)?;
        Some(postcard::from_bytes::<Vec<WriteIn>>(rest).map(|writes| {
            writes
                .into_iter()
                .map(|w| Write {
                    request: self.request.slice_ref(w.request),
                    token: w.token,
                })
                .collect()
        }))
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
    /// A batch entry: what each of its writes applied as, in order.
    Batch(Vec<Applied>),
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
            Applied::Batch(b) => write!(f, "Batch({} writes)", b.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_round_trips_and_a_plain_write_is_not_one() {
        let req = Request::new("/index", crate::doc::DocList::new());
        let plain = Write {
            request: postcard::to_stdvec(&req).unwrap().into(),
            token: 7,
        };
        assert!(plain.unbatch().is_none());
        // The prefix is not the start of any encoded request.
        assert!(postcard::from_bytes::<Request>(BATCH_PREFIX).is_err());
        let two = [
            plain.clone(),
            Write {
                request: vec![1, 2, 3].into(),
                token: 9,
            },
        ];
        let batch = Write::batch(&two).unwrap();
        assert_eq!(batch.token, 0);
        assert!(postcard::from_bytes::<Request>(&batch.request).is_err());
        assert_eq!(batch.unbatch().unwrap().unwrap(), two.to_vec());
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
