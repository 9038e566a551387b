//! Which node's result of a write someone waits for.
//!
//! Why: every node applies every write, but only the node that proposed it (the leader whose
//! `client_write` the write went through) hands its result to anyone; openraft drops the
//! others'. A result is the handler's whole response (for an index, every doc it was sent),
//! built on the replica's thread and, unasked for, freed on the Raft thread: two followers'
//! worth of docs per write crossed threads to be freed. Now a replica whose result nobody
//! awaits drops it where it was made and answers only that it applied.
//!
//! What is promised: a write is marked awaited on the node it is proposed through before it
//! is proposed, and unmarked after that node answered, so the node's state machine sees the
//! mark while it applies the write. A write whose token is 0 (no identity) is always awaited.
//! Errors travel whether or not a result is awaited: a failed apply is the same on every node.

use std::collections::HashMap;
use std::sync::Mutex;

use super::types::{NodeId, Write};

/// Writes whose result is awaited, by node and token (with how many proposals of that token on
/// that node are under way: a retried write may be proposed again before the first returns).
#[derive(Default)]
pub(crate) struct Awaited {
    marks: Mutex<HashMap<(NodeId, u64), usize>>,
}

impl Awaited {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(NodeId, u64), usize>> {
        // Nothing panics under this lock; a poisoned map is still consistent.
        self.marks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The tokens of `write` (its own, or its batch's writes').
    fn tokens(write: &Write) -> impl Iterator<Item = u64> + '_ {
        let lone = write.batch.is_empty().then_some(write.token);
        lone.into_iter()
            .chain(write.batch.iter().map(|w| w.token))
            .filter(|&t| t != 0)
    }

    /// Marks `write` as awaited on `node` until the returned guard is dropped.
    pub(crate) fn mark<'a>(&'a self, node: NodeId, write: &Write) -> Marked<'a> {
        let tokens: Vec<u64> = Self::tokens(write).collect();
        let mut marks = self.lock();
        for &t in &tokens {
            *marks.entry((node, t)).or_default() += 1;
        }
        Marked {
            awaited: self,
            node,
            tokens,
        }
    }

    /// Whether the result of the write with `token` is awaited from `node`.
    pub(crate) fn is_awaited(&self, node: NodeId, token: u64) -> bool {
        token == 0 || self.lock().contains_key(&(node, token))
    }
}

/// A write's marks, removed when dropped.
pub(crate) struct Marked<'a> {
    awaited: &'a Awaited,
    node: NodeId,
    tokens: Vec<u64>,
}

impl Drop for Marked<'_> {
    fn drop(&mut self) {
        let mut marks = self.awaited.lock();
        for &t in &self.tokens {
            if let Some(n) = marks.get_mut(&(self.node, t)) {
                *n -= 1;
                if *n == 0 {
                    marks.remove(&(self.node, t));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn a_write_is_awaited_on_its_node_while_it_is_marked() {
        let a = Awaited::default();
        let batch = Write::batch(vec![
            Write::new(Bytes::from_static(b"a"), 5),
            Write::new(Bytes::from_static(b"b"), 6),
        ]);
        assert!(!a.is_awaited(1, 5));
        {
            let _m = a.mark(1, &batch);
            assert!(a.is_awaited(1, 5) && a.is_awaited(1, 6));
            assert!(!a.is_awaited(0, 5), "another node's result is not awaited");
            // The same write proposed again (a retry) while the first is under way.
            let again = a.mark(1, &Write::new(Bytes::from_static(b"a"), 5));
            drop(again);
            assert!(a.is_awaited(1, 5), "the first proposal still waits");
        }
        assert!(!a.is_awaited(1, 5) && !a.is_awaited(1, 6));
        assert!(
            a.is_awaited(2, 0),
            "a write without a token is always awaited"
        );
        assert!(a.lock().is_empty());
    }
}
