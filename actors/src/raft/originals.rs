//! The callers' own requests of the writes this process is logging, kept until a local replica
//! applies them.
//!
//! Why: a write is logged as bytes ([`super::types::Write`]), and every replica used to decode
//! those bytes before applying them, the leader's included, although the caller's decoded
//! request was still in memory. Now the first local replica to apply a write (normally the
//! leader's, on the acknowledgement's critical path) runs the caller's request itself; the
//! others decode as before.
//!
//! What is promised: a replica is handed a kept request only when its bytes are the very bytes
//! the log entry carries (compared in full, not by token alone: two writes that share a token,
//! such as two requests a client sent with the same id, never swap contents), so every replica
//! applies the same request whether it got it kept or decoded. A request is taken once; what
//! no replica took is taken back by its writer when the write is done.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Mutex;

use bytes::Bytes;

use crate::request::Request;

/// Kept requests by write token.
#[derive(Default)]
pub(crate) struct Originals {
    kept: Mutex<HashMap<u64, (Bytes, Request)>>,
}

impl Originals {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (Bytes, Request)>> {
        // Nothing panics under this lock; a poisoned map is still consistent.
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `req`, logged as `bytes` under `token` (token 0 is no token). Gives it back when
    /// it is not kept: no token, or another write of this process holds the token now.
    pub(crate) fn keep(&self, token: u64, bytes: Bytes, req: Request) -> Option<Request> {
        if token == 0 {
            return Some(req);
        }
        match self.lock().entry(token) {
            Entry::Occupied(_) => Some(req),
            Entry::Vacant(v) => {
                v.insert((bytes, req));
                None
            }
        }
    }

    /// The request kept for the write logged as `bytes` under `token`, taken out; `None` when
    /// none is kept, or the one kept was logged as other bytes.
    pub(crate) fn take(&self, token: u64, bytes: &Bytes) -> Option<Request> {
        if token == 0 {
            return None;
        }
        let mut kept = self.lock();
        match kept.entry(token) {
            Entry::Occupied(o) if same_bytes(&o.get().0, bytes) => Some(o.remove().1),
            _ => None,
        }
    }

    /// How many requests are kept now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Whether two log bytes are the same: the same buffer (in process every node's entry shares
/// the writer's, and comparing 5 MB entries in full showed in profiles), or equal in full.
fn same_bytes(a: &Bytes, b: &Bytes) -> bool {
    (a.as_ptr() == b.as_ptr() && a.len() == b.len()) || a == b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::{Doc, DocList};

    fn req(id: &str) -> Request {
        Request::new("/index", DocList::from(vec![Doc::with_id(id)]))
    }

    #[test]
    fn a_kept_request_is_taken_once_and_only_for_its_own_bytes() {
        let o = Originals::default();
        let bytes = Bytes::from_static(b"logged");
        assert!(o.keep(7, bytes.clone(), req("a")).is_none());
        // Same token, other bytes (another write with the same id): not this one.
        assert!(o.take(7, &Bytes::from_static(b"other")).is_none());
        // Equal bytes in another buffer (as from another process) are the same write.
        let taken = o.take(7, &Bytes::copy_from_slice(b"logged")).expect("kept");
        assert_eq!(taken.docs[0].id(), "a");
        assert!(o.take(7, &bytes).is_none());
        assert_eq!(o.len(), 0);
    }

    #[test]
    fn a_busy_token_or_no_token_is_not_kept() {
        let o = Originals::default();
        assert!(o.keep(0, Bytes::new(), req("a")).is_some());
        assert!(o.keep(3, Bytes::from_static(b"x"), req("b")).is_none());
        let back = o
            .keep(3, Bytes::from_static(b"y"), req("c"))
            .expect("given back");
        assert_eq!(back.docs[0].id(), "c");
        // The first keeper's request is still there, for its own bytes only.
        assert!(o.take(3, &Bytes::from_static(b"y")).is_none());
        assert_eq!(
            o.take(3, &Bytes::from_static(b"x")).expect("kept").docs[0].id(),
            "b"
        );
        assert_eq!(o.len(), 0);
    }
}
