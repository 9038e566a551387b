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
//! - The mode is chosen when the file is opened, by a probe write in its directory; a
//!   filesystem that refuses `O_DIRECT` (tmpfs) gets buffered writes, with the same results.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::record::Records;

/// The unit of a direct write: its offset, length and memory address are multiples of it.
/// 4 KiB is what every common device and filesystem asks, or a multiple of it.
pub(super) const BLOCK: usize = 4096;

/// How many bytes are buffered before they are written even if more records are coming (a
/// follower catching up gets many entries at once).
const STAGE_MAX: usize = 4 << 20;

/// One aligned block of the buffer.
#[repr(C, align(4096))]
#[derive(Clone, Copy)]
struct Block([u8; BLOCK]);

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
    /// Opens the log at `path`, whose first `len` bytes are whole records and the rest, if
    /// any, is to be overwritten. `direct` asks for `O_DIRECT` (see [`direct_io_works`]).
    pub(super) fn open(path: &Path, len: u64, direct: bool) -> io::Result<LogFile> {
        let mode = if direct {
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
        match mode {
            Mode::Buffered => options.append(true),
            Mode::Direct(_) => direct_options(&mut options).write(true),
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

    /// Whether writes bypass the page cache.
    pub(super) fn is_direct(&self) -> bool {
        matches!(self.mode, Mode::Direct(_))
    }

    /// Appends `records` (buffered: written now; direct: copied into the buffer, written by
    /// the next [`LogFile::sync`] or once the buffer is full).
    pub(super) fn append(&mut self, records: &Records) -> io::Result<()> {
        self.unsynced = true;
        let written = match &mut self.mode {
            Mode::Buffered => records.write_to(&self.file),
            Mode::Direct(staging) => records.parts().try_for_each(|part| {
                staging.push(part);
                if staging.filled >= STAGE_MAX {
                    staging.write(&self.file)?;
                }
                Ok(())
            }),
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
    fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let (block, at) = (self.filled / BLOCK, self.filled % BLOCK);
            if block == self.blocks.len() {
                self.blocks.push(Block([0; BLOCK]));
            }
            let n = bytes.len().min(BLOCK - at);
            self.blocks[block].0[at..at + n].copy_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            self.filled += n;
        }
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
        file.write_all_at(as_bytes(&self.blocks[..used]), self.start)?;
        if tail > 0 {
            self.blocks[0] = self.blocks[whole];
        }
        self.start += (whole * BLOCK) as u64;
        self.filled = tail;
        // A rare huge batch does not keep its buffer.
        self.blocks.truncate((2 * STAGE_MAX / BLOCK).max(1));
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

    /// Records of writes whose requests are `sizes` bytes long (a few cross block ends, one is
    /// several blocks, one is empty), numbered from `first`.
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

    /// The file holds exactly `expected`, then (direct mode) zeroes to the end of its block.
    fn assert_file(path: &Path, expected: &[u8], direct: bool) {
        let on_disk = fs::read(path).expect("read log");
        assert_eq!(&on_disk[..expected.len().min(on_disk.len())], expected);
        let rest = &on_disk[expected.len()..];
        if direct {
            assert_eq!(on_disk.len() % BLOCK, 0, "direct writes are whole blocks");
            assert!(is_padding(rest), "{} bytes after the records", rest.len());
        } else {
            assert!(rest.is_empty(), "{} bytes after the records", rest.len());
        }
    }

    #[test]
    fn appended_records_land_whole_and_in_order_in_both_modes() {
        for want_direct in [false, true] {
            let dir = TempDir::new().expect("temp dir");
            let path = dir.path().join("log");
            File::create(&path).expect("create log");
            let direct = want_direct && direct_io_works(dir.path());
            assert_eq!(
                fs::read_dir(dir.path()).expect("list").count(),
                1,
                "the probe leaves nothing behind"
            );

            let mut log = LogFile::open(&path, 0, direct).expect("open");
            assert_eq!(log.is_direct(), direct);
            let (first, mut expected) = records(1, &[10, 5000, 0, 4000]);
            let (second, more) = records(5, &[3 * BLOCK + 17]);
            log.append(&first).expect("append");
            log.append(&second).expect("append");
            expected.extend_from_slice(&more);
            log.sync().expect("sync");
            assert_eq!(log.len(), expected.len() as u64);
            assert_file(&path, &expected, direct);
            // Nothing new: a sync writes nothing.
            log.sync().expect("sync again");
            assert_file(&path, &expected, direct);
            drop(log);

            // Reopened after its last record: the partial block's records are kept.
            let mut log = LogFile::open(&path, expected.len() as u64, direct).expect("reopen");
            let (third, more) = records(6, &[1, 2 * BLOCK]);
            log.append(&third).expect("append");
            log.sync().expect("sync");
            expected.extend_from_slice(&more);
            assert_file(&path, &expected, direct);
        }
    }

    #[test]
    fn reopening_cuts_what_follows_the_records() {
        for want_direct in [false, true] {
            let dir = TempDir::new().expect("temp dir");
            let path = dir.path().join("log");
            let direct = want_direct && direct_io_works(dir.path());
            let (_, mut expected) = records(1, &[100, 9000]);
            let mut garbage = expected.clone();
            garbage.extend_from_slice(&[0xAB; 3 * BLOCK]);
            fs::write(&path, &garbage).expect("write log");
            let mut log = LogFile::open(&path, expected.len() as u64, direct).expect("open");
            assert_eq!(
                fs::metadata(&path).expect("stat").len(),
                expected.len() as u64
            );
            let (second, more) = records(3, &[50]);
            log.append(&second).expect("append");
            log.sync().expect("sync");
            expected.extend_from_slice(&more);
            assert_file(&path, &expected, direct);
        }
    }

    #[test]
    fn a_batch_larger_than_the_buffer_is_written_in_pieces() {
        let dir = TempDir::new().expect("temp dir");
        let path = dir.path().join("log");
        File::create(&path).expect("create log");
        let direct = direct_io_works(dir.path());
        let mut log = LogFile::open(&path, 0, direct).expect("open");
        let sizes = vec![STAGE_MAX / 3 + 5; 7];
        let (all, expected) = records(1, &sizes);
        log.append(&all).expect("append");
        log.sync().expect("sync");
        assert_file(&path, &expected, direct);
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
