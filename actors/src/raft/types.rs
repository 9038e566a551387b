//! The Raft type configuration of a stateful shard: what is logged and what applying returns.

use std::fmt;
use std::io::Cursor;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::request::Request;

/// A write as it is logged: the request (endpoint, parameters, docs), encoded with postcard,
/// and a token unique to this write, so that a write retried after a leader change is applied
/// once even if its first attempt was committed too; or, for a group commit, the writes that
/// arrived together, logged as one entry and applied in order, each under its own token.
///
/// The request's bytes are shared, not copied, when openraft clones the entry (to replicate
/// it, to apply it, to hand it to each in-process replica), and a batch holds its writes' own
/// bytes: the log store writes them to disk from where they are (see `record`). A write of
/// 100 embeddings is encoded once, on its caller's thread, into bytes of its exact size that
/// nothing in the process copies again (nodes in other processes get them serialized).
#[derive(Clone, Default)]
pub struct Write {
    /// The encoded request of a lone write; empty for a batch. Replacing it on a write whose
    /// crc was already taken is allowed (the new bytes are summed afresh) but keeps the old
    /// bytes alive as long as the write's clones live: build a new `Write` instead.
    pub request: Bytes,
    /// The lone write's token (0: none); 0 for a batch.
    pub token: u64,
    /// A batch's writes, in order, each a lone write; empty for a lone write.
    pub batch: Vec<Write>,
    /// The crc32 of `request`, summed by the first log store that records this write and
    /// shared by its clones: openraft clones an entry for every node of this process that logs
    /// it, and summing a 100-embedding request once instead of once per node was a sixth of
    /// the Raft thread's time. Kept with the bytes it is of (see [`Write::request_crc`]).
    request_crc: Arc<OnceLock<(Bytes, u32)>>,
}

/// Equal writes log the same bytes (the crc is a cache of them).
impl PartialEq for Write {
    fn eq(&self, o: &Self) -> bool {
        self.request == o.request && self.token == o.token && self.batch == o.batch
    }
}

impl Eq for Write {}

/// How a [`Write`] is serialized (the log's and the network's format): the request's bytes
/// and the token. A batch is one such write whose bytes are [`BATCH_PREFIX`] followed by the
/// postcard of its writes (a sequence of this same form), token 0.
#[derive(Serialize)]
struct WireOut<'a> {
    #[serde(with = "serde_bytes")]
    request: &'a [u8],
    token: u64,
}

#[derive(Deserialize)]
struct WireIn {
    request: Bytes,
    #[serde(default)]
    token: u64,
}

/// A batch's write read in place from the batch's bytes.
#[derive(Deserialize)]
struct PartIn<'a> {
    #[serde(borrow, with = "serde_bytes")]
    request: &'a [u8],
    #[serde(default)]
    token: u64,
}

impl fmt::Debug for Write {
    // openraft logs entries at debug level: never format a whole payload.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.batch.is_empty() {
            write!(f, "Write({} bytes)", self.request.len())
        } else {
            let bytes: usize = self.batch.iter().map(|w| w.request.len()).sum();
            write!(f, "Batch({} writes, {bytes} bytes)", self.batch.len())
        }
    }
}

/// The ten bytes a batch's serialized bytes begin with. Each has the continuation bit set: no
/// postcard varint is that long, so they cannot begin an encoded [`Request`] (whose first
/// field is a length), and logs written before batches existed read the same.
pub(crate) const BATCH_PREFIX: &[u8] = &[0xFF; 10];

impl Write {
    /// A lone write.
    pub fn new(request: Bytes, token: u64) -> Write {
        Write {
            request,
            token,
            batch: Vec::new(),
            request_crc: Arc::default(),
        }
    }

    /// Whether the crc of `request` was taken and is kept for these very bytes.
    #[cfg(test)]
    pub(crate) fn request_crc_kept(&self) -> bool {
        self.kept_crc().is_some()
    }

    /// The crc32 of `request`, summed once for this write and its clones. The cache holds the
    /// bytes it summed and answers only for those very bytes (`request` is a public field): a
    /// write whose `request` was replaced is summed afresh.
    pub(crate) fn request_crc(&self) -> u32 {
        self.request_crc
            .get_or_init(|| (self.request.clone(), crc32fast::hash(&self.request)));
        self.kept_crc()
            .unwrap_or_else(|| crc32fast::hash(&self.request))
    }

    /// The cached crc, if it is of `request` as it is now.
    fn kept_crc(&self) -> Option<u32> {
        let (bytes, crc) = self.request_crc.get()?;
        (bytes.as_ptr() == self.request.as_ptr() && bytes.len() == self.request.len())
            .then_some(*crc)
    }

    /// One log entry carrying `writes` (lone writes), applied in order, each under its own
    /// token. Their bytes are shared, not copied.
    pub fn batch(writes: Vec<Write>) -> Write {
        debug_assert!(writes.iter().all(|w| w.batch.is_empty()));
        Write {
            request: Bytes::new(),
            token: 0,
            batch: writes,
            request_crc: Arc::default(),
        }
    }

    /// Whether this is a lone write whose bytes are a batch's that did not decode: it is
    /// applied as a failure (the same on every node).
    pub fn is_undecodable_batch(&self) -> bool {
        self.batch.is_empty() && self.request.starts_with(BATCH_PREFIX)
    }

    /// The serialized bytes of a batch's `request` field: [`BATCH_PREFIX`], then its writes.
    fn batch_bytes(&self) -> Result<Vec<u8>, postcard::Error> {
        let bytes: usize = self.batch.iter().map(|w| w.request.len() + 20).sum();
        let mut out = Vec::with_capacity(BATCH_PREFIX.len() + 10 + bytes);
        out.extend_from_slice(BATCH_PREFIX);
        let parts: Vec<WireOut> = self
            .batch
            .iter()
            .map(|w| WireOut {
                request: &w.request,
                token: w.token,
            })
            .collect();
        postcard::to_extend(&parts, out)
    }

    /// A write as read back: a batch when `request` holds one (its writes' bytes shared with
    /// `request`'s), else a lone write.
    fn from_logged(request: Bytes, token: u64) -> Write {
        if let Some(rest) = request.strip_prefix(BATCH_PREFIX)
            && let Ok(parts) = postcard::from_bytes::<Vec<PartIn>>(rest)
            // No batch is logged empty: one that reads so stays as it was logged.
            && !parts.is_empty()
        {
            return Write::batch(
                parts
                    .into_iter()
                    .map(|p| Write::new(request.slice_ref(p.request), p.token))
                    .collect(),
            );
        }
        Write::new(request, token)
    }
}

impl Serialize for Write {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.batch.is_empty() {
            return WireOut {
                request: &self.request,
                token: self.token,
            }
            .serialize(s);
        }
        let bytes = self.batch_bytes().map_err(serde::ser::Error::custom)?;
        WireOut {
            request: &bytes,
            token: 0,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Write {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = WireIn::deserialize(d)?;
        Ok(Write::from_logged(w.request, w.token))
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
        let plain = Write::new(postcard::to_stdvec(&req).unwrap().into(), 7);
        let bytes = postcard::to_stdvec(&plain).unwrap();
        assert_eq!(postcard::from_bytes::<Write>(&bytes).unwrap(), plain);
        // The prefix is not the start of any encoded request.
        assert!(postcard::from_bytes::<Request>(BATCH_PREFIX).is_err());
        let two = vec![plain.clone(), Write::new(vec![1, 2, 3].into(), 9)];
        let batch = Write::batch(two.clone());
        let bytes = postcard::to_stdvec(&batch).unwrap();
        let back: Write = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, batch);
        assert_eq!(back.batch, two);
        assert_eq!((back.token, back.request.len()), (0, 0));
    }

    #[test]
    fn a_batch_is_logged_as_before_batches_were_structs() {
        // The format of logs written since group commit: a lone write whose bytes are the
        // prefix and the postcard of the writes. It reads back as the batch.
        let parts = vec![
            Write::new(vec![5; 3].into(), 1),
            Write::new(vec![6].into(), 2),
        ];
        let mut old = BATCH_PREFIX.to_vec();
        let wire: Vec<WireOut> = parts
            .iter()
            .map(|w| WireOut {
                request: &w.request,
                token: w.token,
            })
            .collect();
        old = postcard::to_extend(&wire, old).unwrap();
        let logged = postcard::to_stdvec(&WireOut {
            request: &old,
            token: 0,
        })
        .unwrap();
        assert_eq!(
            postcard::to_stdvec(&Write::batch(parts.clone())).unwrap(),
            logged
        );
        assert_eq!(
            postcard::from_bytes::<Write>(&logged).unwrap(),
            Write::batch(parts)
        );
        // The same, byte by byte: the record of [([5, 5, 5], 1), ([6], 2)].
        let mut fixed = vec![10 + 1 + 5 + 3, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        fixed.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 2]);
        fixed.extend_from_slice(&[3, 5, 5, 5, 1, 1, 6, 2, 0]);
        assert_eq!(logged, fixed);
        // A batch's bytes that do not decode, or that hold no write, read as a lone write,
        // applied as a failure.
        for tail in [0x05, 0x00] {
            let mut bad = BATCH_PREFIX.to_vec();
            bad.push(tail);
            let w = Write::from_logged(bad.clone().into(), 0);
            assert!(w.batch.is_empty() && w.is_undecodable_batch());
            let as_logged = WireOut {
                request: &bad,
                token: 0,
            };
            assert_eq!(
                postcard::to_stdvec(&w).unwrap(),
                postcard::to_stdvec(&as_logged).unwrap()
            );
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
