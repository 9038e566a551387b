//! The log file as its sync thread appends to it: through an aligned buffer with `O_DIRECT`
//! where the filesystem takes it, else with buffered `writev`s.
//!
//! Why `O_DIRECT`: every record is written once and read back only after a restart, so copying
//! it into the page cache first only costs. With three in-process replicas each logging every
//! write, the kernel's copies and page-cache upkeep (and their writeback at each `fdatasync`)
//! were a tenth of the CPU time of the seed's stateful index. A direct write is one copy into a
//! buffer of this module's, then DMA.
//!
//! What is promised:
//! - After [`LogFile::sync`] returns, every record given to [`LogFile::append`] before it is on
//!   disk, right after the ones before it; the file's first [`LogFile::len`] bytes are exactly
//!   the records.
//! - In direct mode the file ends in zeroes up to a multiple of [`BLOCK`] bytes (a direct write
//!   is whole blocks). A log reader stops at them: a record is never empty, so a zero length
//!   is the end ([`is_padding`]). The last partial block is written again, with the same bytes
//!   in front, by the next append; a disk that writes sectors whole keeps the records in it.
//! - The mode is chosen when the store opens, by a probe write in its directory
//!   ([`direct_io_works`]); a filesystem that refuses `O_DIRECT` gets buffered writes, with the
//!   same results.
//! - The buffer holds at most [`STAGE_MAX`] bytes: more is written as it comes.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::record::Records;

/// The unit of a direct write: its offset, length and memory address are multiples of it.
/// 4 KiB is what every common device and filesystem asks, or a multiple of it.
pub(super) const BLOCK: usize = 4096;

/// How many bytes are buffered before they are written even if more records are coming (a
/// follower catching up gets many entries at once). A multiple of [`BLOCK`].
const STAGE_MAX: usize = 4 << 20;

/// How much of the buffer is kept between writes (a group commit of the seed's writes is about
/// half of it); a larger batch's is given back.
const STAGE_KEEP: usize = 1 << 20;

/// How the log file is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Io {
    /// `writev`s through the page cache.
    Buffered,
    /// Whole blocks from the aligned buffer, with `O_DIRECT`.
    Direct,
    /// The direct mode's buffer and blocks, without `O_DIRECT`: tests its logic on any
    /// filesystem.
    #[cfg(test)]
    Staged,
}

/// One aligned block of the buffer.
#[repr(C, align(4096))]
#[derive(Clone, Copy)]
struct Block([u8; BLOCK]);

const _: () = assert!(std::mem::size_of::<Block>() == BLOCK && STAGE_MAX.is_multiple_of(BLOCK));

/// The log file, open for appending.
pub(super) struct LogFile {
    path: PathBuf,
    file: File,
    mode: Mode,
    /// Bytes of records written to the file or waiting in the buffer.
    len: u64,
    /// Records appended since the last sync.
    unsynced: bool,
}

enum Mode {
    Buffered,
    Direct(Staging),
}

/// The direct mode's buffer: the file's last partial block, then the records not yet written.
struct Staging {
    blocks: Vec<Block>,
    /// The file offset of `blocks[0]` (a multiple of [`BLOCK`]).
    start: u64,
    /// Bytes filled in `blocks`, from the start of `blocks[0]`.
    filled: usize,
}

impl LogFile {
    /// Opens the log at `path`, whose first `len` bytes are whole records; what follows them
    /// is cut. [`Io::Direct`] only where [`direct_io_works`].
    pub(super) fn open(path: &Path, len: u64, io: Io) -> io::Result<LogFile> {
        let mode = if io != Io::Buffered {
            let start = len - len % BLOCK as u64;
            let mut staging = Staging {
                blocks: vec![Block([0; BLOCK])],
                start,
                filled: (len - start) as usize,
            };
            File::open(path)?.read_exact_at(&mut staging.blocks[0].0[..staging.filled], start)?;
            Mode::Direct(staging)
        } else {
            Mode::Buffered
        };
        let mut options = OpenOptions::new();
        match io {
            Io::Buffered => options.append(true),
            Io::Direct => direct_options(&mut options).write(true),
            #[cfg(test)]
            Io::Staged => options.write(true),
        };
        let file = options.open(path)?;
        if file.metadata()?.len() != len {
            // Whatever follows the records goes: a buffered append would land after it, and a
            // direct one would leave what lies past its last block.
            file.set_len(len)?;
        }
        Ok(LogFile {
            path: path.to_path_buf(),
            file,
            mode,
            len,
            unsynced: false,
        })
    }

    /// Bytes of records in the file, once synced.
    #[cfg(test)]
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// Bytes waiting in the direct mode's buffer (the file's last partial block included).
    #[cfg(test)]
    fn staged(&self) -> usize {
        match &self.mode {
            Mode::Buffered => 0,
            Mode::Direct(staging) => staging.filled,
        }
    }

    /// Appends `records` (buffered: written now; direct: copied into the buffer, written by
    /// the next [`LogFile::sync`] or once the buffer is full).
    pub(super) fn append(&mut self, records: &Records) -> io::Result<()> {
        self.unsynced = true;
        let written = match &mut self.mode {
            Mode::Buffered => records.write_to(&self.file),
            Mode::Direct(staging) => records
                .parts()
                .try_for_each(|part| staging.push(part, &self.file)),
        };
        written.map_err(|e| self.context("appending to", e))?;
        self.len += records.byte_len();
        Ok(())
    }

    /// Writes what is buffered and makes every appended record durable (`fdatasync`).
    pub(super) fn sync(&mut self) -> io::Result<()> {
        if !self.unsynced {
            return Ok(());
        }
        if let Mode::Direct(staging) = &mut self.mode {
            staging
                .write(&self.file)
                .map_err(|e| context(&self.path, "appending to", e))?;
        }
        self.file
            .sync_data()
            .map_err(|e| self.context("syncing", e))?;
        self.unsynced = false;
        Ok(())
    }

    fn context(&self, what: &str, e: io::Error) -> io::Error {
        context(&self.path, what, e)
    }
}

fn context(path: &Path, what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

impl Staging {
    /// Copies `bytes` into the buffer, writing it out whenever it is full.
    fn push(&mut self, mut bytes: &[u8], file: &File) -> io::Result<()> {
        while !bytes.is_empty() {
            if self.filled == STAGE_MAX {
                self.write(file)?;
            }
            let (block, at) = (self.filled / BLOCK, self.filled % BLOCK);
            if block == self.blocks.len() {
                self.blocks.push(Block([0; BLOCK]));
            }
            let n = bytes.len().min(BLOCK - at);
            self.blocks[block].0[at..at + n].copy_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            self.filled += n;
        }
        Ok(())
    }

    /// Writes the buffered blocks, the last one padded with zeroes, and keeps that partial
    /// block (if any) as the start of the next write.
    fn write(&mut self, file: &File) -> io::Result<()> {
        let whole = self.filled / BLOCK;
        let tail = self.filled % BLOCK;
        let used = whole + usize::from(tail > 0);
        if tail > 0 {
            self.blocks[whole].0[tail..].fill(0);
        }
        let (mut bytes, mut at) = (as_bytes(&self.blocks[..used]), self.start);
        while !bytes.is_empty() {
            match file.write_at(bytes, at) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                // The rest could only be written from an unaligned place.
                Ok(n) if n < bytes.len() && n % BLOCK != 0 => {
                    return Err(io::Error::other(format!(
                        "a direct write took {n} of {} bytes, not whole blocks",
                        bytes.len()
                    )));
                }
                Ok(n) => {
                    bytes = &bytes[n..];
                    at += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if tail > 0 {
            self.blocks[0] = self.blocks[whole];
        }
        self.start += (whole * BLOCK) as u64;
        self.filled = tail;
        let keep = STAGE_KEEP / BLOCK;
        if self.blocks.capacity() > keep {
            self.blocks.truncate(keep);
            self.blocks.shrink_to(keep);
        }
        Ok(())
    }
}

fn as_bytes(blocks: &[Block]) -> &[u8] {
    // SAFETY: `Block` is `repr(C)` around a `[u8; BLOCK]` with alignment `BLOCK`, so its size
    // is exactly `BLOCK` with no padding, and a slice of `n` blocks is `n * BLOCK` contiguous,
    // initialized bytes. Any bytes are valid `u8`s, and the returned slice borrows `blocks`
    // immutably for its whole life.
    unsafe {
        std::slice::from_raw_parts(blocks.as_ptr().cast::<u8>(), std::mem::size_of_val(blocks))
    }
}

#[cfg(target_os = "linux")]
fn direct_options(options: &mut OpenOptions) -> &mut OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    options.custom_flags(libc::O_DIRECT)
}

#[cfg(not(target_os = "linux"))]
fn direct_options(options: &mut OpenOptions) -> &mut OpenOptions {
    options
}

/// Whether direct writes of [`BLOCK`]s work in `dir`: one is tried on a scratch file there.
pub(super) fn direct_io_works(dir: &Path) -> bool {
    if !cfg!(target_os = "linux") {
        return false;
    }
    let probe = dir.join("log.direct-probe");
    let tried = direct_options(OpenOptions::new().write(true).create(true).truncate(true))
        .open(&probe)
        .and_then(|f| f.write_all_at(as_bytes(&[Block([0; BLOCK])]), 0));
    let _ = fs::remove_file(&probe);
    if let Err(e) = &tried {
        tracing::debug!(dir = %dir.display(), error = %e, "no O_DIRECT here: the Raft log is written through the page cache");
    }
    tried.is_ok()
}

/// Whether `rest`, what follows the last whole record of a log, is a direct write's padding:
/// fewer than a block of zeroes.
pub(super) fn is_padding(rest: &[u8]) -> bool {
    rest.len() < BLOCK && rest.iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use openraft::{CommittedLeaderId, EntryPayload, LogId};
    use tempfile::TempDir;

    use super::*;
    use crate::raft::types::{Entry, Write};

    /// Every way of writing this filesystem takes: the direct mode's buffer always (without
    /// `O_DIRECT` if need be), and `O_DIRECT` itself where it works.
    fn modes(dir: &Path) -> Vec<Io> {
        let mut modes = vec![Io::Buffered, Io::Staged];
        if direct_io_works(dir) {
            modes.push(Io::Direct);
        }
        modes
    }

    /// Records of writes whose requests are `sizes` bytes long, numbered from `first`, and
    /// their bytes.
    fn records(first: u64, sizes: &[usize]) -> (Records, Vec<u8>) {
        let mut records = Records::default();
        for (i, &size) in sizes.iter().enumerate() {
            let index = first + i as u64;
            let request = Bytes::from(vec![(index % 251) as u8 + 1; size]);
            let entry = Entry {
                log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
                payload: EntryPayload::Normal(Write::new(request, index)),
            };
            records.add(&entry).expect("encode");
        }
        let mut bytes = Vec::new();
        records.write_to(&mut bytes).expect("encode");
        (records, bytes)
    }

    /// An empty log file in a directory of its own (kept while the first is alive).
    fn empty_log() -> (TempDir, PathBuf) {
        let dir = TempDir::new().expect("temp dir");
        let path = dir.path().join("log");
        File::create(&path).expect("create log");
        (dir, path)
    }

    /// The file holds exactly `expected`, then (buffer modes) zeroes to the end of its block.
    fn assert_file(path: &Path, expected: &[u8], io: Io) {
        let on_disk = fs::read(path).expect("read log");
        assert!(on_disk.len() >= expected.len(), "{io:?}: the file is short");
        assert!(
            on_disk[..expected.len()] == *expected,
            "{io:?}: the records differ"
        );
        let rest = &on_disk[expected.len()..];
        if io == Io::Buffered {
            assert!(
                rest.is_empty(),
                "{io:?}: {} bytes after the records",
                rest.len()
            );
        } else {
            assert_eq!(on_disk.len() % BLOCK, 0, "{io:?}: writes are whole blocks");
            assert!(
                is_padding(rest),
                "{io:?}: {} bytes after the records",
                rest.len()
            );
        }
    }

    #[test]
    fn appended_records_land_whole_and_in_order_in_every_mode() {
        let probe = TempDir::new().expect("temp dir");
        for io in modes(probe.path()) {
            let (_dir, path) = empty_log();
            let mut log = LogFile::open(&path, 0, io).expect("open");
            let (first, mut expected) = records(1, &[10, 5000, 0, 4000]);
            let (second, more) = records(5, &[3 * BLOCK + 17]);
            log.append(&first).expect("append");
            log.append(&second).expect("append");
            expected.extend_from_slice(&more);
            log.sync().expect("sync");
            assert_eq!(log.len(), expected.len() as u64);
            assert_file(&path, &expected, io);
            // Nothing new: a sync writes nothing.
            log.sync().expect("sync again");
            assert_file(&path, &expected, io);
            drop(log);

            // Reopened after its last record: the partial block's records are kept.
            let mut log = LogFile::open(&path, expected.len() as u64, io).expect("reopen");
            let (third, more) = records(6, &[1, 2 * BLOCK]);
            log.append(&third).expect("append");
            log.sync().expect("sync");
            expected.extend_from_slice(&more);
            assert_file(&path, &expected, io);
        }
    }

    #[test]
    fn records_ending_on_a_block_boundary_reopen_and_continue() {
        // A request size that makes the record exactly two blocks.
        let size = (2 * BLOCK - 64..2 * BLOCK)
            .find(|&n| records(1, &[n]).1.len() == 2 * BLOCK)
            .expect("a size that fills two blocks");
        let probe = TempDir::new().expect("temp dir");
        for io in modes(probe.path()) {
            let (_dir, path) = empty_log();
            let (first, mut expected) = records(1, &[size]);
            let mut log = LogFile::open(&path, 0, io).expect("open");
            log.append(&first).expect("append");
            log.sync().expect("sync");
            assert_eq!(fs::metadata(&path).expect("stat").len(), 2 * BLOCK as u64);
            drop(log);
            let mut log = LogFile::open(&path, expected.len() as u64, io).expect("reopen");
            assert_eq!(log.staged(), 0, "{io:?}: no partial block to carry");
            let (second, more) = records(2, &[7]);
            log.append(&second).expect("append");
            log.sync().expect("sync");
            expected.extend_from_slice(&more);
            assert_file(&path, &expected, io);
        }
    }

    #[test]
    fn reopening_cuts_what_follows_the_records() {
        let probe = TempDir::new().expect("temp dir");
        for io in modes(probe.path()) {
            let dir = TempDir::new().expect("temp dir");
            let path = dir.path().join("log");
            let (_, mut expected) = records(1, &[100, 9000]);
            let mut garbage = expected.clone();
            garbage.extend_from_slice(&[0xAB; 3 * BLOCK]);
            fs::write(&path, &garbage).expect("write log");
            let mut log = LogFile::open(&path, expected.len() as u64, io).expect("open");
            assert_eq!(
                fs::metadata(&path).expect("stat").len(),
                expected.len() as u64
            );
            let (second, more) = records(3, &[50]);
            log.append(&second).expect("append");
            log.sync().expect("sync");
            expected.extend_from_slice(&more);
            assert_file(&path, &expected, io);
        }
    }

    #[test]
    fn a_batch_larger_than_the_buffer_is_written_as_it_comes() {
        let probe = TempDir::new().expect("temp dir");
        for io in modes(probe.path()) {
            if io == Io::Buffered {
                continue;
            }
            let (_dir, path) = empty_log();
            let mut log = LogFile::open(&path, 0, io).expect("open");
            let (all, expected) = records(1, &[STAGE_MAX / 3 + 5; 7]);
            log.append(&all).expect("append");
            // Before any sync, whole buffers are already in the file and one is left.
            assert!(
                log.staged() <= STAGE_MAX,
                "{io:?}: the buffer outgrew its bound"
            );
            let written = fs::metadata(&path).expect("stat").len();
            assert_eq!(
                written,
                2 * STAGE_MAX as u64,
                "{io:?}: written before the sync"
            );
            log.sync().expect("sync");
            assert_file(&path, &expected, io);
        }
    }

    #[test]
    fn the_probe_leaves_nothing_behind() {
        let dir = TempDir::new().expect("temp dir");
        let _ = direct_io_works(dir.path());
        assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 0);
    }

    #[test]
    fn padding_is_fewer_than_a_block_of_zeroes() {
        assert!(is_padding(&[]));
        assert!(is_padding(&[0; BLOCK - 1]));
        assert!(!is_padding(&[0; BLOCK]));
        let mut almost = vec![0; 100];
        almost[99] = 1;
        assert!(!is_padding(&almost));
    }
}
