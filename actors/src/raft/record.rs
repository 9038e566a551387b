//! The records of the log file, as they are appended: `[u32 len LE][u32 crc32(payload) LE]
//! [payload = postcard(Entry)]`, as pieces: the log file copies them into its direct-write
//! buffer, or hands them to one `writev` (`log_file`).
//!
//! Why not `postcard::to_extend(entry)` into a buffer: a write's request is already encoded
//! (the caller's thread did it, see `types::Write`), and a group commit of 100-embedding writes
//! is megabytes per entry. Serializing the entry copied every request once more on every node.
//! Here the small parts of a record (header, log id, lengths, tokens) are encoded into a
//! buffer of their own and the requests are kept where they are (shared `Bytes`).
//!
//! What is promised: the bytes written are exactly `[len][crc][postcard::to_stdvec(entry)]`
//! (a test holds both encodings equal for every kind of entry), so reading a log back is plain
//! postcard, and logs written before this read the same.

use std::io::{self, IoSlice};
use std::ops::Range;

use bytes::Bytes;
use openraft::EntryPayload;

use super::log_store::LogStoreError;
use super::types::{BATCH_PREFIX, Entry, Write};

/// `EntryPayload::Normal`'s variant index, as postcard writes it.
const NORMAL: u64 = 1;

/// Records to append, laid out as slices: their own small parts, and the requests they log.
#[derive(Default)]
pub(super) struct Records {
    /// Headers, log ids, lengths and tokens.
    own: Vec<u8>,
    pieces: Vec<Piece>,
    records: u64,
}

enum Piece {
    Own(Range<usize>),
    /// A write's request, with its crc32.
    Shared(Bytes, u32),
}

impl Records {
    /// How many records were added.
    pub(super) fn len(&self) -> u64 {
        self.records
    }

    /// Appends the record of `entry`. After an error the records are empty (none is half
    /// there).
    pub(super) fn add(&mut self, entry: &Entry) -> Result<(), LogStoreError> {
        let result = self.try_add(entry);
        if result.is_err() {
            self.own.clear();
            self.pieces.clear();
            self.records = 0;
        }
        result
    }

    fn try_add(&mut self, entry: &Entry) -> Result<(), LogStoreError> {
        let first = self.pieces.len();
        let header = self.own.len();
        self.own.extend_from_slice(&[0; 8]);
        let mut mark = self.own.len();
        match &entry.payload {
            EntryPayload::Normal(w) => {
                self.own = postcard::to_extend(&entry.log_id, std::mem::take(&mut self.own))?;
                push_varint(&mut self.own, NORMAL);
                if w.batch.is_empty() {
                    self.request(&mut mark, w);
                } else {
                    let body: usize = w
                        .batch
                        .iter()
                        .map(|p| {
                            let len = p.request.len();
                            varint_len(len as u64) + len + varint_len(p.token)
                        })
                        .sum();
                    let n = w.batch.len() as u64;
                    let total = BATCH_PREFIX.len() + varint_len(n) + body;
                    push_varint(&mut self.own, total as u64);
                    self.own.extend_from_slice(BATCH_PREFIX);
                    push_varint(&mut self.own, n);
                    for part in &w.batch {
                        self.request(&mut mark, part);
                    }
                    // The batch's own token.
                    push_varint(&mut self.own, 0);
                }
            }
            _ => {
                self.own = postcard::to_extend(entry, std::mem::take(&mut self.own))?;
            }
        }
        self.pieces.push(Piece::Own(mark..self.own.len()));
        // Length and crc32 of the payload: everything after the header.
        let mut crc = crc32fast::Hasher::new();
        let mut len = 0usize;
        for piece in &self.pieces[first..] {
            let bytes = self.bytes(piece);
            match piece {
                Piece::Own(_) => crc.update(bytes),
                // crc(a ‖ b) from crc(a), crc(b) and b's length: a request is summed once
                // however many nodes log it.
                Piece::Shared(b, sum) => crc.combine(&crc32fast::Hasher::new_with_initial_len(
                    *sum,
                    b.len() as u64,
                )),
            }
            len += bytes.len();
        }
        let len = u32::try_from(len).map_err(|_| {
            LogStoreError::Invalid(format!(
                "entry {} encodes to {len} bytes, more than a record holds",
                entry.log_id.index,
            ))
        })?;
        self.own[header..header + 4].copy_from_slice(&len.to_le_bytes());
        self.own[header + 4..header + 8].copy_from_slice(&crc.finalize().to_le_bytes());
        // The record's first piece began after its header (for the crc); it starts at it.
        if let Some(Piece::Own(r)) = self.pieces.get_mut(first) {
            r.start = header;
        }
        self.records += 1;
        Ok(())
    }

    /// A lone write's `request` and `token` fields, the request's bytes where they are.
    fn request(&mut self, mark: &mut usize, w: &Write) {
        push_varint(&mut self.own, w.request.len() as u64);
        self.pieces.push(Piece::Own(*mark..self.own.len()));
        if !w.request.is_empty() {
            self.pieces
                .push(Piece::Shared(w.request.clone(), w.request_crc()));
        }
        *mark = self.own.len();
        push_varint(&mut self.own, w.token);
    }

    /// The bytes a piece stands for.
    fn bytes<'a>(&'a self, piece: &'a Piece) -> &'a [u8] {
        match piece {
            Piece::Own(r) => &self.own[r.clone()],
            Piece::Shared(b, _) => b,
        }
    }

    /// The records' bytes, in order, as the pieces they are kept in.
    pub(super) fn parts(&self) -> impl Iterator<Item = &[u8]> {
        self.pieces
            .iter()
            .map(|p| self.bytes(p))
            .filter(|b| !b.is_empty())
    }

    /// How many bytes the records take.
    pub(super) fn byte_len(&self) -> u64 {
        self.parts().map(|b| b.len() as u64).sum()
    }

    fn slices(&self) -> Vec<IoSlice<'_>> {
        self.parts().map(IoSlice::new).collect()
    }

    /// Writes every record, in order (`writev`, as often as the kernel takes part of them).
    pub(super) fn write_to(&self, mut out: impl io::Write) -> io::Result<()> {
        let mut slices = self.slices();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            match out.write_vectored(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => IoSlice::advance_slices(&mut rest, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        out.flush()
    }
}

/// postcard's varint (LEB128) of `v`.
fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use openraft::{CommittedLeaderId, LogId, Membership};

    use super::*;

    fn log_id(index: u64) -> LogId<u64> {
        LogId::new(CommittedLeaderId::new(3, 1), index)
    }

    fn written(entries: &[Entry]) -> Vec<u8> {
        let mut r = Records::default();
        for e in entries {
            r.add(e).unwrap();
        }
        assert_eq!(r.len(), entries.len() as u64);
        let mut out = Vec::new();
        r.write_to(&mut out).unwrap();
        out
    }

    fn serialized(entries: &[Entry]) -> Vec<u8> {
        let mut out = Vec::new();
        for e in entries {
            let payload = postcard::to_stdvec(e).unwrap();
            out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
            out.extend_from_slice(&payload);
        }
        out
    }

    #[test]
    fn records_are_the_serialized_entries_for_every_kind_of_entry() {
        let big = Bytes::from(vec![7u8; 300]);
        let entries = vec![
            Entry {
                log_id: log_id(1),
                payload: EntryPayload::Blank,
            },
            Entry {
                log_id: log_id(2),
                payload: EntryPayload::Membership(Membership::new(
                    vec![BTreeSet::from([0, 1, 2])],
                    None,
                )),
            },
            Entry {
                log_id: log_id(300),
                payload: EntryPayload::Normal(Write::new(big.clone(), u64::MAX)),
            },
            Entry {
                log_id: log_id(301),
                payload: EntryPayload::Normal(Write::batch(vec![
                    Write::new(big.slice(0..200), 1 << 40),
                    Write::new(Bytes::new(), 0),
                    Write::new(big.clone(), 127),
                ])),
            },
            Entry {
                log_id: log_id(302),
                payload: EntryPayload::Normal(Write::new(Bytes::new(), 128)),
            },
        ];
        assert_eq!(written(&entries), serialized(&entries));
        for e in &entries {
            let payload = postcard::to_stdvec(e).unwrap();
            assert_eq!(postcard::from_bytes::<Entry>(&payload).unwrap(), *e);
        }
    }

    #[test]
    fn a_request_is_summed_once_for_every_clone_and_afresh_when_replaced() {
        let entry = |w: Write| Entry {
            log_id: log_id(9),
            payload: EntryPayload::Normal(w),
        };
        let write = Write::new(Bytes::from(vec![3u8; 5000]), 42);
        // As openraft hands one entry to each node of the process: clones sharing the crc.
        let first = entry(write.clone());
        assert!(!write.request_crc_kept());
        assert_eq!(written(std::slice::from_ref(&first)), serialized(&[first]));
        assert!(
            write.request_crc_kept(),
            "the first record summed it for every clone"
        );
        let again = entry(write.clone());
        assert_eq!(written(std::slice::from_ref(&again)), serialized(&[again]));
        // The same write with other bytes of the same length: its crc is not the cached one.
        let mut replaced = write;
        replaced.request = Bytes::from(vec![4u8; 5000]);
        assert!(!replaced.request_crc_kept());
        let replaced = entry(replaced);
        assert_eq!(
            written(std::slice::from_ref(&replaced)),
            serialized(&[replaced])
        );
    }

    #[test]
    fn varints_are_postcards() {
        for v in [0u64, 1, 127, 128, 16_383, 16_384, u32::MAX as u64, u64::MAX] {
            let mut mine = Vec::new();
            push_varint(&mut mine, v);
            assert_eq!(mine, postcard::to_stdvec(&v).unwrap(), "{v}");
            assert_eq!(varint_len(v), mine.len(), "{v}");
        }
    }
}
