//! The durable Raft log of a stateful shard: entries, vote, committed and purged ids, all under
//! one directory. Implements openraft's `RaftLogStorage` (storage-v2) and `RaftLogReader`.
//!
//! What is promised:
//! - An append is acknowledged (`LogFlushed::log_io_completed(Ok(()))`) only after its bytes are
//!   on disk (`fdatasync`). The writes and syncs run on a thread of its own (`log_file`: direct
//!   writes where the filesystem takes them): appends that arrive while a sync is running share
//!   the next write and sync (group commit). Acknowledgements keep the order of the appends.
//! - `save_vote`, `truncate` and `purge` are durable when they return. `save_committed` is
//!   kept in memory at once and written (not synced) at most every 100 ms and when the store is
//!   dropped: the file may name an older commit than the last, which is safe (a committed index
//!   only lets a restarted node apply its log early; a prefix of the committed log is committed).
//! - Entries acknowledged by a majority survive a crash of this node: openraft 0.9 waits for an
//!   append's acknowledgement before it takes the next write, so the shard logs writes that
//!   arrive together as one entry (the Raft group's group commit).
//! - A torn or corrupt tail of `log` (a short record, a bad crc32, an undecodable entry) can only
//!   be a write that was never acknowledged: `open` cuts it away with a warning. Fewer than a
//!   block of zeroes after the records is a direct write's padding: cut without one.
//! - After any failed write or sync the store refuses further writes until it is reopened (a
//!   failed fsync can lose data silently, so nothing written afterwards is trusted either).
//! - One store at a time writes a directory: it holds `lock` (`flock`) until its sync thread
//!   has written and acknowledged everything it was given, which dropping the store waits for.
//!   `open` waits a little for a store on its way out, then fails with [`LogStoreError::InUse`].
//!
//! Files under the directory:
//! - `log`: appended records `[u32 len LE][u32 crc32(payload) LE][payload = postcard(Entry)]`,
//!   then, after direct writes, zeroes up to a multiple of 4 KiB.
//!   Entries at or below `purged` are ignored, on open and on append (a snapshot covers them).
//!   Replaying the records rebuilds exactly the in-memory log: a record whose index is not above
//!   the last one replaces it and what follows; one that would leave a hole is `Corrupt`.
//! - `vote`, `committed`, `purged`: `[u32 crc32 LE][postcard(value)]`, replaced atomically
//!   (write `NAME.tmp`, fsync, rename, fsync the directory).
//! - `lock`: empty; locked while a store has the directory open.
//!
//! `truncate` rewrites `log` the same atomic way; `purge` records `purged` and rewrites `log` only
//! once the purged records outnumber the live ones.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogReader, StorageIOError, Vote};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::log_file::{self, Io, LogFile};
use super::record::Records;
use super::types::{Entry, NodeId, StorageError, TypeConfig};

const LOG: &str = "log";
const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const PURGED: &str = "purged";
const LOCK: &str = "lock";
/// How long `open` waits for another store of the same directory to let go of it (a node
/// being stopped finishes its last appends first).
const LOCK_PATIENCE: std::time::Duration = if cfg!(test) {
    std::time::Duration::from_millis(300)
} else {
    std::time::Duration::from_secs(5)
};
/// The most appends one write and sync of the sync thread takes: under a steady stream the
/// ones it took are acknowledged without waiting for the stream to pause.
const APPENDS_PER_SYNC: usize = 256;
/// Bytes before each record's payload: length and crc32.
const HEADER: u64 = 8;

/// Why the log store could not open, read or write.
#[derive(Debug, thiserror::Error)]
pub enum LogStoreError {
    #[error("{what} {}: {source}", .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Acknowledged data does not read back (not a torn tail: those are cut away on open).
    #[error("{} is corrupt: {reason}", .path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("encoding for the log store: {0}")]
    Encode(#[from] postcard::Error),
    /// Entries that would leave a hole in the log.
    #[error("refused to append: {0}")]
    Invalid(String),
    #[error("an earlier write or sync failed: the log store refuses writes until it is reopened")]
    Failed,
    #[error("a thread panicked while holding the log store's lock")]
    Poisoned,
    #[error("the log store's blocking task failed: {0}")]
    Task(String),
    /// Another store holds the directory: another process on the same workspace, or a node of
    /// this one that has not stopped yet.
    #[error("the Raft log under {} is in use by another log store (another Deployment or process on this workspace?)", .path.display())]
    InUse { path: PathBuf },
}

impl LogStoreError {
    fn storage(&self, subject: ErrorSubject<NodeId>, verb: ErrorVerb) -> StorageError {
        StorageIOError::new(subject, verb, self).into()
    }
}

/// For failures of [`LogStore::open`] (reported as a read of the store).
impl From<LogStoreError> for StorageError {
    fn from(e: LogStoreError) -> Self {
        StorageIOError::read(&e).into()
    }
}

fn io_error(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> LogStoreError {
    let path = path.to_path_buf();
    move |source| LogStoreError::Io { what, path, source }
}

/// The durable Raft log of one replica. Cheap to clone: clones share the same store (the log
/// reader openraft asks for is such a clone).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    /// What readers see. Equal to replaying the files (writes update it after the disk), except
    /// that `committed` may be ahead of its file (see the module docs).
    mem: RwLock<Mem>,
    /// Serializes every write (appends only queue theirs for the sync thread; truncate, purge
    /// and votes write under it); readers never wait on it.
    writer: Mutex<Writer>,
    /// Appends (and log files replacing the one being appended to) for the sync thread.
    syncer: SyncThread,
    /// Set after any failed write or sync; shared with the sync thread.
    failed: Arc<AtomicBool>,
    /// When `committed` was last written to disk.
    committed_saved: Mutex<Option<std::time::Instant>>,
    /// `committed` changed since it was last written.
    committed_dirty: AtomicBool,
}

impl Drop for Inner {
    /// Writes the last commit index if it was not yet (best effort: a store that failed writes
    /// nothing more).
    fn drop(&mut self) {
        if !self.committed_dirty.load(Ordering::Acquire) || self.failed.load(Ordering::Acquire) {
            return;
        }
        if let Ok(mem) = self.mem.read() {
            let _ = write_small(&self.dir, COMMITTED, &mem.committed, Sync::No);
        }
    }
}

/// How often at most the `committed` file is rewritten. openraft saves the commit index after
/// every commit, in its main loop; the file only lets a restarted node apply its log before it
/// hears from a leader, and an older value is as safe (it is a prefix of the committed log), so
/// rewriting it for every entry would only slow every write down.
const COMMITTED_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

struct Mem {
    entries: BTreeMap<u64, Entry>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
    purged: Option<LogId<NodeId>>,
}

struct Writer {
    /// Records in `log`, live or not (purged, replaced): decides when to compact.
    records: u64,
    /// How `log` is written (decided when the store opens).
    io: Io,
}

/// The sync thread and the way to it. Dropped (after the rest of the store), it waits for the
/// thread to write, sync and acknowledge everything it was given and to let go of the lock, so
/// a store opened on the directory next never meets its writes.
struct SyncThread {
    tx: Option<mpsc::Sender<ToSync>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SyncThread {
    fn send(&self, message: ToSync) -> Result<(), mpsc::SendError<ToSync>> {
        match &self.tx {
            Some(tx) => tx.send(message),
            None => Err(mpsc::SendError(message)),
        }
    }
}

impl Drop for SyncThread {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the sync thread is given, in the order of the writes.
enum ToSync {
    /// Records to append to the current log file, and who to tell once they are durable.
    Append {
        records: Records,
        callback: LogFlushed<TypeConfig>,
    },
    /// `log` was rewritten: later appends go to this file. The records already sent go to the
    /// replaced one (harmless: the rewrite holds their entries, synced).
    Switch(LogFile),
}

/// Where an entry goes, given the last purged index and the last index in the log.
enum Place {
    /// At or below the purged index: ignored (on open and on append).
    Stale,
    /// Beyond the next index: the log would have a hole.
    Hole,
    /// The next index (or the first entry).
    Next,
    /// At or below the last index: replaces that entry and everything after it.
    Replace,
}

fn place(purged: Option<u64>, last: Option<u64>, index: u64) -> Place {
    if purged.is_some_and(|p| index <= p) {
        Place::Stale
    } else {
        match last {
            Some(l) if index <= l => Place::Replace,
            Some(l) if index > l.saturating_add(1) => Place::Hole,
            _ => Place::Next,
        }
    }
}

impl Mem {
    fn last_index(&self) -> Option<u64> {
        self.entries.last_key_value().map(|(i, _)| *i)
    }

    /// Adds an entry already classified as `Next` or `Replace`.
    fn put(&mut self, entry: Entry) {
        let index = entry.log_id.index;
        drop(self.entries.split_off(&index));
        self.entries.insert(index, entry);
    }
}

impl LogStore {
    /// Opens (creating it if missing) the log store under `dir`, cutting away a torn tail of the
    /// log, and starts its sync thread (dropping the last clone stops it, see [`SyncThread`]).
    pub fn open(dir: &Path) -> Result<LogStore, LogStoreError> {
        Self::open_with(dir, true)
    }

    /// [`LogStore::open`], with direct writes only if `try_direct` (tests take both ways).
    fn open_with(dir: &Path, try_direct: bool) -> Result<LogStore, LogStoreError> {
        fs::create_dir_all(dir).map_err(io_error("creating", dir))?;
        let lock = lock_dir(dir)?;
        for name in [LOG, VOTE, COMMITTED, PURGED] {
            let tmp = tmp_path(dir, name);
            match fs::remove_file(&tmp) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(io_error("removing", &tmp)(e));
                }
                _ => {}
            }
        }
        let vote: Option<Vote<NodeId>> = read_small(dir, VOTE)?;
        let committed: Option<Option<LogId<NodeId>>> = read_small(dir, COMMITTED)?;
        let purged: Option<LogId<NodeId>> = read_small(dir, PURGED)?;

        let path = dir.join(LOG);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error("opening", &path))?;
        let loaded = load_log(&file, &path, purged.map(|p| p.index))?;
        if let Some(reason) = &loaded.torn {
            tracing::warn!(
                path = %path.display(),
                kept_bytes = loaded.valid_len,
                cut_bytes = loaded.file_len - loaded.valid_len,
                %reason,
                "cutting the torn tail of the Raft log (it was never acknowledged)"
            );
            file.set_len(loaded.valid_len)
                .map_err(io_error("truncating", &path))?;
            file.sync_all().map_err(io_error("syncing", &path))?;
        }
        drop(file);
        sync_dir(dir)?;
        // Padding past the records (not torn: nothing to warn of) is cut here too.
        let io = if try_direct && log_file::direct_io_works(dir) {
            Io::Direct
        } else {
            Io::Buffered
        };
        let log = LogFile::open(&path, loaded.valid_len, io)
            .map_err(io_error("opening for appending", &path))?;
        tracing::debug!(path = %path.display(), ?io, "Raft log open");

        let failed = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let thread_failed = Arc::clone(&failed);
        let thread = std::thread::Builder::new()
            .name("raft-log-sync".into())
            .spawn(move || {
                sync_loop(log, rx, thread_failed);
                // Let go of the directory once everything given is written and acknowledged.
                drop(lock);
            })
            .map_err(io_error("starting the sync thread for", dir))?;
        let syncer = SyncThread {
            tx: Some(tx),
            thread: Some(thread),
        };

        Ok(LogStore {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                mem: RwLock::new(Mem {
                    entries: loaded.entries,
                    vote,
                    committed: committed.flatten(),
                    purged,
                }),
                writer: Mutex::new(Writer {
                    records: loaded.records,
                    io,
                }),
                syncer,
                committed_saved: Mutex::new(None),
                committed_dirty: AtomicBool::new(false),
                failed,
            }),
        })
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Runs a write that may fsync off the async runtime's threads (the caller still awaits it,
    /// so writes stay serialized).
    async fn blocking<T, F>(&self, f: F) -> Result<T, LogStoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, LogStoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| LogStoreError::Task(e.to_string()))?
    }
}

impl Inner {
    fn mem(&self) -> Result<RwLockReadGuard<'_, Mem>, LogStoreError> {
        self.mem.read().map_err(|_| LogStoreError::Poisoned)
    }

    fn mem_mut(&self) -> Result<RwLockWriteGuard<'_, Mem>, LogStoreError> {
        self.mem.write().map_err(|_| LogStoreError::Poisoned)
    }

    /// Takes the writer lock, unless an earlier write failed.
    fn writer(&self) -> Result<MutexGuard<'_, Writer>, LogStoreError> {
        if self.failed.load(Ordering::SeqCst) {
            return Err(LogStoreError::Failed);
        }
        self.writer.lock().map_err(|_| LogStoreError::Poisoned)
    }

    /// Runs a write under the writer lock; a failure marks the store failed.
    fn guarded<T>(
        &self,
        f: impl FnOnce(&mut Writer) -> Result<T, LogStoreError>,
    ) -> Result<T, LogStoreError> {
        let mut w = self.writer()?;
        let result = f(&mut w);
        // A refused request wrote nothing: no need to distrust the files.
        if matches!(&result, Err(e) if !matches!(e, LogStoreError::Invalid(_))) {
            self.failed.store(true, Ordering::SeqCst);
        }
        result
    }

    fn log_state(&self) -> Result<LogState<TypeConfig>, LogStoreError> {
        let mem = self.mem()?;
        let last = mem.entries.last_key_value().map(|(_, e)| e.log_id);
        Ok(LogState {
            last_purged_log_id: mem.purged,
            last_log_id: last.or(mem.purged),
        })
    }

    fn entries<RB: RangeBounds<u64>>(&self, range: RB) -> Result<Vec<Entry>, LogStoreError> {
        let start = match range.start_bound() {
            Bound::Included(s) => *s,
            Bound::Excluded(s) => match s.checked_add(1) {
                Some(s) => s,
                None => return Ok(Vec::new()),
            },
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(e) => e.checked_add(1),
            Bound::Excluded(e) => Some(*e),
            Bound::Unbounded => None,
        };
        let mem = self.mem()?;
        Ok(match end {
            Some(end) if end <= start => Vec::new(),
            Some(end) => mem
                .entries
                .range(start..end)
                .map(|(_, e)| e.clone())
                .collect(),
            None => mem.entries.range(start..).map(|(_, e)| e.clone()).collect(),
        })
    }

    fn append(
        &self,
        entries: Vec<Entry>,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), LogStoreError> {
        let mut callback = Some(callback);
        let result = self.guarded(|w| {
            let mut records = Records::default();
            let mut fresh = Vec::with_capacity(entries.len());
            {
                let mem = self.mem()?;
                let purged = mem.purged.map(|p| p.index);
                let mut last = mem.last_index();
                for e in entries {
                    let index = e.log_id.index;
                    match place(purged, last, index) {
                        // Already covered by the snapshot the log was purged for.
                        Place::Stale => continue,
                        Place::Hole => {
                            return Err(LogStoreError::Invalid(format!(
                                "entry {index} after {last:?} leaves a hole"
                            )));
                        }
                        Place::Next | Place::Replace => last = Some(index),
                    }
                    records.add(&e)?;
                    fresh.push(e);
                }
            }
            w.records += records.len();
            {
                let mut mem = self.mem_mut()?;
                for e in fresh {
                    mem.put(e);
                }
            }
            // Sent under the writer lock, so the records and acknowledgements keep the order
            // of the appends.
            if let Some(callback) = callback.take() {
                let append = ToSync::Append { records, callback };
                if let Err(mpsc::SendError(append)) = self.syncer.send(append) {
                    if let ToSync::Append { callback, .. } = append {
                        callback.log_io_completed(Err(io::Error::other("the sync thread is gone")));
                    }
                    return Err(LogStoreError::Failed);
                }
            }
            Ok(())
        });
        if let (Err(e), Some(callback)) = (&result, callback) {
            callback.log_io_completed(Err(io::Error::other(e.to_string())));
        }
        result
    }

    fn save_vote(&self, vote: Vote<NodeId>) -> Result<(), LogStoreError> {
        self.guarded(|_| {
            write_small(&self.dir, VOTE, &vote, Sync::Yes)?;
            self.mem_mut()?.vote = Some(vote);
            Ok(())
        })
    }

    /// Not synced: the committed index only saves a restarted node from waiting for a leader
    /// before it re-applies its log; a stale or lost one is re-learned from the leader.
    fn save_committed(&self, committed: Option<LogId<NodeId>>) -> Result<(), LogStoreError> {
        self.guarded(|_| {
            write_small(&self.dir, COMMITTED, &committed, Sync::No)?;
            self.mem_mut()?.committed = committed;
            self.committed_dirty.store(false, Ordering::Release);
            Ok(())
        })
    }

    /// Whether `committed` is due to be written again (see [`COMMITTED_EVERY`]); if so, counts
    /// it as written now.
    fn committed_due(&self) -> bool {
        let mut last = self
            .committed_saved
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < COMMITTED_EVERY) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// Removes the entries at and after `log_id.index`.
    fn truncate(&self, log_id: LogId<NodeId>) -> Result<(), LogStoreError> {
        self.guarded(|w| {
            if self.mem()?.last_index().is_none_or(|l| l < log_id.index) {
                return Ok(());
            }
            self.rewrite(w, ..log_id.index)?;
            drop(self.mem_mut()?.entries.split_off(&log_id.index));
            Ok(())
        })
    }

    /// Removes the entries up to and including `log_id.index`, and remembers `log_id`.
    fn purge(&self, log_id: LogId<NodeId>) -> Result<(), LogStoreError> {
        self.guarded(|w| {
            if self.mem()?.purged.is_some_and(|p| p.index >= log_id.index) {
                return Ok(());
            }
            write_small(&self.dir, PURGED, &log_id, Sync::Yes)?;
            let live = {
                let mut mem = self.mem_mut()?;
                mem.purged = Some(log_id);
                mem.entries = match log_id.index.checked_add(1) {
                    Some(first_kept) => mem.entries.split_off(&first_kept),
                    None => BTreeMap::new(),
                };
                mem.entries.len() as u64
            };
            if w.records.saturating_sub(live) > live {
                self.rewrite(w, ..)?;
            }
            Ok(())
        })
    }

    /// Replaces `log` with the in-memory entries in `keep`: writes `log.tmp`, fsyncs it, renames
    /// it over `log`, fsyncs the directory, and reopens `log` for appending.
    fn rewrite(&self, w: &mut Writer, keep: impl RangeBounds<u64>) -> Result<(), LogStoreError> {
        let path = self.dir.join(LOG);
        let tmp = tmp_path(&self.dir, LOG);
        let file = File::create(&tmp).map_err(io_error("creating", &tmp))?;
        let mut out = BufWriter::new(file);
        let records = {
            let mem = self.mem()?;
            let mut records = Records::default();
            for (_, e) in mem.entries.range(keep) {
                records.add(e)?;
            }
            records
                .write_to(&mut out)
                .map_err(io_error("writing", &tmp))?;
            records.len()
        };
        let file = out
            .into_inner()
            .map_err(|e| io_error("writing", &tmp)(e.into_error()))?;
        file.sync_all().map_err(io_error("syncing", &tmp))?;
        let len = file.metadata().map_err(io_error("reading", &tmp))?.len();
        drop(file);
        fs::rename(&tmp, &path).map_err(io_error("renaming over", &path))?;
        sync_dir(&self.dir)?;
        let log = LogFile::open(&path, len, w.io).map_err(io_error("opening", &path))?;
        if self.syncer.send(ToSync::Switch(log)).is_err() {
            return Err(LogStoreError::Failed);
        }
        w.records = records;
        Ok(())
    }
}

/// The sync thread: writes the records of every batch of pending appends, syncs the log once
/// for them all, then acknowledges them in order. After a failed write or sync every later
/// acknowledgement is an error too.
fn sync_loop(mut log: LogFile, rx: mpsc::Receiver<ToSync>, failed: Arc<AtomicBool>) {
    let mut error: Option<(io::ErrorKind, String)> = None;
    let mut done = Vec::new();
    while let Ok(first) = rx.recv() {
        let taken = std::iter::once(first).chain(rx.try_iter().take(APPENDS_PER_SYNC - 1));
        for next in taken {
            let result = match next {
                ToSync::Append { records, callback } => {
                    done.push(callback);
                    match error {
                        None => log.append(&records),
                        Some(_) => Ok(()),
                    }
                }
                // The replaced file's appends are synced before they are acknowledged.
                ToSync::Switch(new) => {
                    let mut replaced = std::mem::replace(&mut log, new);
                    match error {
                        None => replaced.sync(),
                        Some(_) => Ok(()),
                    }
                }
            };
            if let (Err(e), None) = (result, &error) {
                error = Some(failure(&failed, e));
            }
        }
        if error.is_none()
            && let Err(e) = log.sync()
        {
            error = Some(failure(&failed, e));
        }
        for callback in done.drain(..) {
            let result = match &error {
                None => Ok(()),
                Some((kind, message)) => Err(io::Error::new(*kind, message.clone())),
            };
            callback.log_io_completed(result);
        }
    }
}

/// Takes the lock of the store's directory, waiting up to [`LOCK_PATIENCE`] for a store on its
/// way out. A filesystem without locks is used without.
fn lock_dir(dir: &Path) -> Result<Option<File>, LogStoreError> {
    let path = dir.join(LOCK);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_error("opening", &path))?;
    let deadline = std::time::Instant::now() + LOCK_PATIENCE;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Some(file)),
            Err(fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(fs::TryLockError::WouldBlock) => {
                return Err(LogStoreError::InUse {
                    path: dir.to_path_buf(),
                });
            }
            Err(fs::TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => {
                tracing::warn!(path = %path.display(), "no file locks here: nothing keeps two stores off this Raft log");
                return Ok(None);
            }
            Err(fs::TryLockError::Error(e)) => return Err(io_error("locking", &path)(e)),
        }
    }
}

fn failure(failed: &AtomicBool, e: io::Error) -> (io::ErrorKind, String) {
    tracing::error!(error = %e, "writing the Raft log failed");
    failed.store(true, Ordering::SeqCst);
    (e.kind(), e.to_string())
}

struct Loaded {
    entries: BTreeMap<u64, Entry>,
    records: u64,
    file_len: u64,
    /// Bytes of whole, valid records at the start of the file.
    valid_len: u64,
    /// Why the bytes after `valid_len` were rejected.
    torn: Option<String>,
}

/// Reads the records of `log`, stopping at the first short, mismatching or undecodable one.
fn load_log(file: &File, path: &Path, purged: Option<u64>) -> Result<Loaded, LogStoreError> {
    let file_len = file.metadata().map_err(io_error("reading", path))?.len();
    let mut reader = BufReader::new(file);
    let mut mem_entries: BTreeMap<u64, Entry> = BTreeMap::new();
    let mut records = 0u64;
    let mut offset = 0u64;
    let torn = loop {
        let remaining = file_len - offset;
        if remaining == 0 {
            break None;
        }
        if remaining < HEADER {
            break torn_unless_padding(file, path, offset, remaining, || {
                format!("{remaining} bytes, short of a record header")
            })?;
        }
        let mut header = [0u8; HEADER as usize];
        reader
            .read_exact(&mut header)
            .map_err(io_error("reading", path))?;
        let [l0, l1, l2, l3, c0, c1, c2, c3] = header;
        let len = u32::from_le_bytes([l0, l1, l2, l3]);
        let crc = u32::from_le_bytes([c0, c1, c2, c3]);
        if len == 0 {
            break torn_unless_padding(file, path, offset, remaining, || {
                "an empty record".to_string()
            })?;
        }
        if u64::from(len) > remaining - HEADER {
            break Some(format!(
                "a record of {len} bytes with {} bytes left",
                remaining - HEADER
            ));
        }
        let mut payload = vec![0u8; len as usize];
        reader
            .read_exact(&mut payload)
            .map_err(io_error("reading", path))?;
        if crc32fast::hash(&payload) != crc {
            break Some("a record whose crc32 does not match".to_string());
        }
        let entry: Entry = match postcard::from_bytes(&payload) {
            Ok(entry) => entry,
            Err(e) => break Some(format!("an undecodable record ({e})")),
        };
        let index = entry.log_id.index;
        let last = mem_entries.last_key_value().map(|(i, _)| *i);
        match place(purged, last, index) {
            Place::Stale => {}
            Place::Hole => {
                return Err(LogStoreError::Corrupt {
                    path: path.to_path_buf(),
                    reason: format!("entry {index} at byte {offset} follows entry {last:?}"),
                });
            }
            Place::Next | Place::Replace => {
                drop(mem_entries.split_off(&index));
                mem_entries.insert(index, entry);
            }
        }
        records += 1;
        offset += HEADER + u64::from(len);
    };
    Ok(Loaded {
        entries: mem_entries,
        records,
        file_len,
        valid_len: offset,
        torn,
    })
}

/// `None` when the `remaining` bytes from `offset` on are a direct write's padding, else
/// `Some(reason)` the tail is torn.
fn torn_unless_padding(
    file: &File,
    path: &Path,
    offset: u64,
    remaining: u64,
    reason: impl FnOnce() -> String,
) -> Result<Option<String>, LogStoreError> {
    if remaining >= log_file::BLOCK as u64 {
        return Ok(Some(reason()));
    }
    let mut rest = vec![0u8; remaining as usize];
    std::os::unix::fs::FileExt::read_exact_at(file, &mut rest, offset)
        .map_err(io_error("reading", path))?;
    Ok((!log_file::is_padding(&rest)).then(reason))
}

fn tmp_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.tmp"))
}

fn sync_dir(dir: &Path) -> Result<(), LogStoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("syncing the directory", dir))
}

/// Reads `[u32 crc32 LE][postcard(T)]` from `dir/name`; `None` when the file does not exist.
fn read_small<T: DeserializeOwned>(dir: &Path, name: &str) -> Result<Option<T>, LogStoreError> {
    let path = dir.join(name);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("reading", &path)(e)),
    };
    let corrupt = |reason: String| LogStoreError::Corrupt {
        path: path.clone(),
        reason,
    };
    let Some((crc, payload)) = bytes.split_first_chunk::<4>() else {
        return Err(corrupt(format!(
            "{} bytes, short of a checksum",
            bytes.len()
        )));
    };
    if crc32fast::hash(payload) != u32::from_le_bytes(*crc) {
        return Err(corrupt("the crc32 does not match".to_string()));
    }
    postcard::from_bytes(payload)
        .map(Some)
        .map_err(|e| corrupt(format!("undecodable ({e})")))
}

/// Replaces `dir/name` atomically and durably with `[u32 crc32 LE][postcard(value)]`.
/// Whether a small file is made durable before it is in place.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sync {
    Yes,
    No,
}

/// Replaces `dir/name` atomically (write to a temporary file, rename over).
fn write_small<T: Serialize>(
    dir: &Path,
    name: &str,
    value: &T,
    sync: Sync,
) -> Result<(), LogStoreError> {
    let payload = postcard::to_stdvec(value)?;
    let mut bytes = Vec::with_capacity(4 + payload.len());
    bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    bytes.extend_from_slice(&payload);
    let tmp = tmp_path(dir, name);
    let path = dir.join(name);
    let mut file = File::create(&tmp).map_err(io_error("creating", &tmp))?;
    file.write_all(&bytes).map_err(io_error("writing", &tmp))?;
    if sync == Sync::No {
        drop(file);
        return fs::rename(&tmp, &path).map_err(io_error("renaming over", &path));
    }
    file.sync_all().map_err(io_error("syncing", &tmp))?;
    drop(file);
    fs::rename(&tmp, &path).map_err(io_error("renaming over", &path))?;
    sync_dir(dir)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        self.inner
            .entries(range)
            .map_err(|e| StorageIOError::read_logs(&e).into())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        self.inner
            .log_state()
            .map_err(|e| StorageIOError::read_logs(&e).into())
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        let vote = *vote;
        self.blocking(move |inner| inner.save_vote(vote))
            .await
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        self.inner
            .mem()
            .map(|mem| mem.vote)
            .map_err(|e| StorageIOError::read_vote(&e).into())
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError> {
        if !self.inner.committed_due() {
            self.inner
                .mem_mut()
                .map_err(|e| StorageIOError::write(&e))?
                .committed = committed;
            self.inner.committed_dirty.store(true, Ordering::Release);
            return Ok(());
        }
        self.blocking(move |inner| inner.save_committed(committed))
            .await
            .map_err(|e| StorageIOError::write(&e).into())
    }

    /// The saved committed index, but never past the last entry on disk: the `committed` file
    /// is not synced, so after a crash it may name entries whose unsynced tail was lost. The
    /// entries that survived are a prefix of the committed log, hence committed themselves.
    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError> {
        self.inner
            .mem()
            .map(|mem| {
                let last = mem
                    .entries
                    .last_key_value()
                    .map(|(_, e)| e.log_id)
                    .or(mem.purged);
                match (mem.committed, last) {
                    (Some(c), Some(l)) if c.index > l.index => Some(l),
                    (Some(_), None) => None,
                    (c, _) => c,
                }
            })
            .map_err(|e| StorageIOError::read(&e).into())
    }

    /// Queues the records for the sync thread and returns; `callback` is called by the sync
    /// thread once they are written and durable.
    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        self.inner
            .append(entries, callback)
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError> {
        self.blocking(move |inner| inner.truncate(log_id))
            .await
            .map_err(|e| e.storage(ErrorSubject::Logs, ErrorVerb::Delete))
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError> {
        self.blocking(move |inner| inner.purge(log_id))
            .await
            .map_err(|e| e.storage(ErrorSubject::Logs, ErrorVerb::Delete))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::io::Cursor;
    use std::io::Write as _;

    use openraft::storage::{RaftLogStorageExt, RaftStateMachine, Snapshot};
    use openraft::testing::{StoreBuilder, Suite};
    use openraft::{
        BasicNode, CommittedLeaderId, EntryPayload, Membership, RaftSnapshotBuilder, SnapshotMeta,
        StoredMembership,
    };
    use tempfile::TempDir;

    use super::*;
    use crate::raft::types::{Applied, Write};

    // ---- a minimal in-memory state machine, for openraft's conformance suite ----

    #[derive(Default)]
    struct SmState {
        last_applied: Option<LogId<NodeId>>,
        membership: StoredMembership<NodeId, BasicNode>,
        current: Option<(SnapshotMeta<NodeId, BasicNode>, Vec<u8>)>,
        built: u64,
    }

    #[derive(Clone, Default)]
    struct MemSm(Arc<Mutex<SmState>>);

    impl MemSm {
        fn state(&self) -> MutexGuard<'_, SmState> {
            self.0.lock().expect("state machine lock")
        }
    }

    impl RaftSnapshotBuilder<TypeConfig> for MemSm {
        async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
            let mut st = self.state();
            let data = postcard::to_stdvec(&(st.last_applied, &st.membership))
                .map_err(|e| StorageIOError::write_snapshot(None, &e))?;
            st.built += 1;
            let meta = SnapshotMeta {
                last_log_id: st.last_applied,
                last_membership: st.membership.clone(),
                snapshot_id: format!("snapshot-{}", st.built),
            };
            st.current = Some((meta.clone(), data.clone()));
            Ok(Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(data)),
            })
        }
    }

    impl RaftStateMachine<TypeConfig> for MemSm {
        type SnapshotBuilder = MemSm;

        async fn applied_state(
            &mut self,
        ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError>
        {
            let st = self.state();
            Ok((st.last_applied, st.membership.clone()))
        }

        async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
        where
            I: IntoIterator<Item = Entry> + OptionalSend,
            I::IntoIter: OptionalSend,
        {
            let mut st = self.state();
            let mut out = Vec::new();
            for entry in entries {
                st.last_applied = Some(entry.log_id);
                if let EntryPayload::Membership(m) = &entry.payload {
                    st.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                }
                out.push(Applied::Nothing);
            }
            Ok(out)
        }

        async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
            self.clone()
        }

        async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
            Ok(Box::new(Cursor::new(Vec::new())))
        }

        async fn install_snapshot(
            &mut self,
            meta: &SnapshotMeta<NodeId, BasicNode>,
            snapshot: Box<Cursor<Vec<u8>>>,
        ) -> Result<(), StorageError> {
            let data = snapshot.into_inner();
            let (last_applied, membership): (
                Option<LogId<NodeId>>,
                StoredMembership<NodeId, BasicNode>,
            ) = postcard::from_bytes(&data)
                .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
            let mut st = self.state();
            st.last_applied = last_applied;
            st.membership = membership;
            st.current = Some((meta.clone(), data));
            Ok(())
        }

        async fn get_current_snapshot(
            &mut self,
        ) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
            Ok(self.state().current.clone().map(|(meta, data)| Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(data)),
            }))
        }
    }

    struct Builder;

    impl StoreBuilder<TypeConfig, LogStore, MemSm, TempDir> for Builder {
        async fn build(&self) -> Result<(TempDir, LogStore, MemSm), StorageError> {
            let dir = TempDir::new().map_err(|e| StorageIOError::write(&e))?;
            let store = LogStore::open(dir.path())?;
            Ok((dir, store, MemSm::default()))
        }
    }

    #[test]
    fn openraft_conformance_suite() {
        // Runs each case on a fresh store in a runtime of its own (so this is not a tokio test).
        if let Err(e) = Suite::test_all(Builder) {
            panic!("openraft's storage suite failed: {e}");
        }
    }

    // ---- recovery ----

    fn log_id(term: u64, index: u64) -> LogId<NodeId> {
        LogId::new(CommittedLeaderId::new(term, 0), index)
    }

    fn write(term: u64, index: u64) -> Entry {
        Entry {
            log_id: log_id(term, index),
            payload: EntryPayload::Normal(Write::new(
                format!("write {term}/{index}").into_bytes().into(),
                index,
            )),
        }
    }

    fn writes(term: u64, indexes: impl IntoIterator<Item = u64>) -> Vec<Entry> {
        indexes.into_iter().map(|i| write(term, i)).collect()
    }

    /// Both ways of writing the log: buffered, and direct (where the filesystem takes it).
    const MODES: [bool; 2] = [false, true];

    fn open_in(dir: &TempDir, direct: bool) -> LogStore {
        LogStore::open_with(dir.path(), direct).expect("open log store")
    }

    fn open(dir: &TempDir) -> LogStore {
        LogStore::open(dir.path()).expect("open the log store")
    }

    async fn all(store: &mut LogStore) -> Vec<Entry> {
        store.try_get_log_entries(..).await.expect("read entries")
    }

    /// A store opened on `dir` holding term 1's entries `1..=last`, synced.
    async fn holding(dir: &TempDir, direct: bool, last: u64) -> LogStore {
        let mut store = open_in(dir, direct);
        store
            .blocking_append(writes(1, 1..=last))
            .await
            .expect("append");
        store
    }

    /// The store reopened on `dir`, asserted to hold term 1's entries `first` then term 2's
    /// `then`, and nothing else.
    async fn reopened_holds(
        dir: &TempDir,
        direct: bool,
        first: std::ops::RangeInclusive<u64>,
        then: std::ops::RangeInclusive<u64>,
    ) -> LogStore {
        let mut store = open_in(dir, direct);
        let expected = [writes(1, first), writes(2, then)].concat();
        assert_eq!(all(&mut store).await, expected, "direct: {direct}");
        store
    }

    async fn state(store: &mut LogStore) -> (Option<LogId<NodeId>>, Option<LogId<NodeId>>) {
        let st = store.get_log_state().await.expect("log state");
        (st.last_purged_log_id, st.last_log_id)
    }

    /// Starts appending `entries` to `store` without waiting for the acknowledgement: polled
    /// once, the records are queued for the sync thread (maybe not written yet). Awaiting the
    /// returned future finishes the append.
    async fn queue(
        store: &mut LogStore,
        entries: Vec<Entry>,
    ) -> std::pin::Pin<Box<impl std::future::Future<Output = Result<(), StorageError>> + '_>> {
        let mut pending = Box::pin(store.blocking_append(entries));
        let _ = futures::poll!(pending.as_mut());
        pending
    }

    /// Bytes of whole records at the start of the log file (a direct write's padding aside).
    fn records_len(dir: &TempDir) -> u64 {
        let path = dir.path().join(LOG);
        let file = File::open(&path).expect("open log");
        load_log(&file, &path, None).expect("read log").valid_len
    }

    fn log_len(dir: &TempDir) -> u64 {
        fs::metadata(dir.path().join(LOG))
            .expect("log metadata")
            .len()
    }

    #[tokio::test]
    async fn reopen_restores_vote_committed_and_entries() {
        for direct in MODES {
            let dir = TempDir::new().expect("temp dir");
            let membership = Entry {
                log_id: log_id(1, 0),
                payload: EntryPayload::Membership(Membership::new(
                    vec![BTreeSet::from([0, 1, 2])],
                    None,
                )),
            };
            let mut expected = vec![membership.clone()];
            expected.extend(writes(1, 1..=5));
            {
                let mut store = open_in(&dir, direct);
                store.save_vote(&Vote::new(3, 1)).await.expect("save vote");
                store.blocking_append([membership]).await.expect("append");
                store
                    .blocking_append(writes(1, 1..=3))
                    .await
                    .expect("append");
                store
                    .blocking_append(writes(1, 4..=5))
                    .await
                    .expect("append");
                store
                    .save_committed(Some(log_id(1, 3)))
                    .await
                    .expect("save committed");
            }
            let mut store = open_in(&dir, direct);
            assert_eq!(
                store.read_vote().await.expect("vote"),
                Some(Vote::new(3, 1))
            );
            assert_eq!(
                store.read_committed().await.expect("committed"),
                Some(log_id(1, 3))
            );
            assert_eq!(state(&mut store).await, (None, Some(log_id(1, 5))));
            assert_eq!(all(&mut store).await, expected);
            let mut reader = store.get_log_reader().await;
            assert_eq!(
                reader.try_get_log_entries(2..4).await.expect("read"),
                writes(1, 2..=3)
            );
        }
    }

    #[tokio::test]
    async fn a_committed_index_past_the_surviving_log_reads_as_its_last_entry() {
        // The `committed` file is not synced: after a crash it may be ahead of the log's tail.
        let dir = TempDir::new().expect("temp dir");
        {
            let mut store = open(&dir);
            store
                .blocking_append(writes(1, 1..=5))
                .await
                .expect("append");
            store
                .save_committed(Some(log_id(1, 8)))
                .await
                .expect("save committed");
        }
        let mut store = open(&dir);
        assert_eq!(
            store.read_committed().await.expect("committed"),
            Some(log_id(1, 5))
        );
    }

    #[tokio::test]
    async fn pipelined_appends_are_all_acknowledged_and_durable() {
        for direct in MODES {
            let dir = TempDir::new().expect("temp dir");
            {
                let store = open_in(&dir, direct);
                // All appends are issued before any acknowledgement is awaited, so the sync thread
                // sees several at once.
                let appends = (1..=20u64).map(|i| {
                    let mut s = store.clone();
                    async move { s.blocking_append([write(1, i)]).await }
                });
                for r in futures::future::join_all(appends).await {
                    r.expect("append");
                }
            }
            let mut store = open_in(&dir, direct);
            assert_eq!(all(&mut store).await, writes(1, 1..=20));
        }
    }

    #[tokio::test]
    async fn torn_tail_is_cut_and_appends_continue() {
        for direct in MODES {
            let mut records = Records::default();
            records.add(&write(1, 4)).expect("encode");
            let mut valid = Vec::new();
            records.write_to(&mut valid).expect("encode");
            let half_record = valid[..valid.len() / 2].to_vec();
            let mut bad_crc = valid.clone();
            bad_crc[4] ^= 0xff;
            let mut undecodable = vec![3, 0, 0, 0];
            undecodable.extend_from_slice(&crc32fast::hash(&[0xff; 3]).to_le_bytes());
            undecodable.extend_from_slice(&[0xff; 3]);
            let tails: [(&str, Vec<u8>); 5] = [
                ("short header", vec![1, 2, 3]),
                ("half record", half_record),
                ("bad crc", bad_crc),
                ("undecodable", undecodable),
                ("zeroes", vec![0; 64]),
            ];
            for (what, tail) in tails {
                let dir = TempDir::new().expect("temp dir");
                holding(&dir, direct, 3).await;
                let good_len = records_len(&dir);
                {
                    // Right after the records (a direct write's padding goes first).
                    let mut f = OpenOptions::new()
                        .append(true)
                        .open(dir.path().join(LOG))
                        .expect("open log");
                    f.set_len(good_len).expect("cut the padding");
                    f.write_all(&tail).expect("write garbage");
                }
                let path = dir.path().join(LOG);
                let loaded =
                    load_log(&File::open(&path).expect("open log"), &path, None).expect("load");
                // Fewer zeroes than a block are padding, not a torn tail.
                assert_eq!(loaded.torn.is_some(), what != "zeroes", "{what}");
                {
                    let mut store = open_in(&dir, direct);
                    assert_eq!(log_len(&dir), good_len, "{what}: tail not cut");
                    assert_eq!(all(&mut store).await, writes(1, 1..=3), "{what}");
                    assert_eq!(
                        state(&mut store).await,
                        (None, Some(log_id(1, 3))),
                        "{what}"
                    );
                    store
                        .blocking_append([write(1, 4)])
                        .await
                        .expect("append after cut");
                }
                let mut store = open_in(&dir, direct);
                assert_eq!(
                    all(&mut store).await,
                    writes(1, 1..=4),
                    "{what}: after reopen"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_direct_writes_padding_is_the_end_of_the_log_not_a_torn_tail() {
        let dir = TempDir::new().expect("temp dir");
        {
            let mut store = open(&dir);
            store
                .blocking_append(writes(1, 1..=3))
                .await
                .expect("append");
        }
        if log_file::direct_io_works(dir.path()) {
            assert!(log_len(&dir) > records_len(&dir), "no padding");
            assert_eq!(log_len(&dir) % log_file::BLOCK as u64, 0);
        }
        let path = dir.path().join(LOG);
        let loaded = load_log(&File::open(&path).expect("open log"), &path, None).expect("load");
        assert_eq!(loaded.torn, None);
        assert_eq!(loaded.records, 3);
        let mut store = open(&dir);
        assert_eq!(all(&mut store).await, writes(1, 1..=3));
    }

    #[tokio::test]
    async fn a_second_store_on_an_open_directory_is_refused() {
        let dir = TempDir::new().expect("temp dir");
        let store = open(&dir);
        let err = LogStore::open(dir.path())
            .err()
            .expect("a second store is refused");
        assert!(matches!(err, LogStoreError::InUse { .. }), "{err}");
        assert!(
            err.to_string().contains("in use by another log store"),
            "{err}"
        );
        drop(store);
        let mut store = open(&dir);
        store.blocking_append([write(1, 1)]).await.expect("append");
    }

    #[tokio::test]
    async fn appends_queued_when_the_log_is_rewritten_stay_out_of_it() {
        for direct in MODES {
            let dir = TempDir::new().expect("temp dir");
            {
                let mut store = holding(&dir, direct, 10).await;
                let mut queued = store.clone();
                let pending = queue(&mut queued, writes(1, 11..=12)).await;
                store.truncate(log_id(1, 11)).await.expect("truncate");
                pending.await.expect("the queued append is acknowledged");
                assert_eq!(all(&mut store).await, writes(1, 1..=10));
                store
                    .blocking_append(writes(2, 11..=12))
                    .await
                    .expect("append after the rewrite");
            }
            reopened_holds(&dir, direct, 1..=10, 11..=12).await;
        }
    }

    #[tokio::test]
    async fn a_dropped_stores_last_appends_land_before_the_next_store_opens() {
        for direct in MODES {
            let dir = TempDir::new().expect("temp dir");
            {
                let mut store = holding(&dir, direct, 3).await;
                let _pending = queue(&mut store, writes(1, 4..=60)).await;
                // Dropped unacknowledged, with its records queued.
            }
            {
                let mut store = open_in(&dir, direct);
                let last = state(&mut store).await.1.expect("entries").index;
                assert_eq!(
                    last, 60,
                    "direct: {direct}: the queued appends were written"
                );
                store
                    .blocking_append(writes(2, 61..=63))
                    .await
                    .expect("append");
            }
            reopened_holds(&dir, direct, 1..=60, 61..=63).await;
        }
    }

    #[tokio::test]
    async fn corrupt_vote_is_an_error_not_a_default() {
        let dir = TempDir::new().expect("temp dir");
        {
            let mut store = open(&dir);
            store.save_vote(&Vote::new(2, 0)).await.expect("save vote");
        }
        fs::write(dir.path().join(VOTE), [1, 2, 3, 4, 5]).expect("garble the vote");
        assert!(matches!(
            LogStore::open(dir.path()),
            Err(LogStoreError::Corrupt { .. })
        ));
    }

    #[tokio::test]
    async fn purge_survives_reopen_and_compacts_lazily() {
        for direct in MODES {
            let dir = TempDir::new().expect("temp dir");
            let full_len;
            {
                let mut store = holding(&dir, direct, 10).await;
                full_len = records_len(&dir);
                store.purge(log_id(1, 4)).await.expect("purge");
                // 4 purged records against 6 live ones: the file is kept as it is.
                assert_eq!(records_len(&dir), full_len);
                assert_eq!(all(&mut store).await, writes(1, 5..=10));
            }
            {
                let mut store = open_in(&dir, direct);
                assert_eq!(
                    state(&mut store).await,
                    (Some(log_id(1, 4)), Some(log_id(1, 10)))
                );
                assert_eq!(all(&mut store).await, writes(1, 5..=10));
                store.purge(log_id(1, 8)).await.expect("purge");
                // Now the purged records outnumber the live ones: the file is rewritten.
                assert!(records_len(&dir) < full_len / 2, "log not compacted");
            }
            {
                let mut store = open_in(&dir, direct);
                assert_eq!(
                    state(&mut store).await,
                    (Some(log_id(1, 8)), Some(log_id(1, 10)))
                );
                assert_eq!(all(&mut store).await, writes(1, 9..=10));
                store.purge(log_id(1, 10)).await.expect("purge everything");
            }
            {
                let mut store = open_in(&dir, direct);
                assert_eq!(
                    state(&mut store).await,
                    (Some(log_id(1, 10)), Some(log_id(1, 10)))
                );
                assert!(all(&mut store).await.is_empty());
                store
                    .blocking_append([write(2, 11)])
                    .await
                    .expect("append after purge");
            }
            let mut store = open_in(&dir, direct);
            assert_eq!(
                state(&mut store).await,
                (Some(log_id(1, 10)), Some(log_id(2, 11)))
            );
            assert_eq!(all(&mut store).await, vec![write(2, 11)]);
        }
    }

    #[tokio::test]
    async fn truncate_survives_reopen() {
        for direct in MODES {
            let dir = TempDir::new().expect("temp dir");
            {
                let mut store = holding(&dir, direct, 10).await;
                store.truncate(log_id(1, 6)).await.expect("truncate");
                assert_eq!(all(&mut store).await, writes(1, 1..=5));
            }
            {
                let mut store = open_in(&dir, direct);
                assert_eq!(state(&mut store).await, (None, Some(log_id(1, 5))));
                assert_eq!(all(&mut store).await, writes(1, 1..=5));
                store
                    .blocking_append(writes(2, 6..=7))
                    .await
                    .expect("append after truncate");
            }
            let mut store = reopened_holds(&dir, direct, 1..=5, 6..=7).await;
            assert_eq!(state(&mut store).await, (None, Some(log_id(2, 7))));
        }
    }

    #[tokio::test]
    async fn holes_are_refused_and_purged_entries_ignored() {
        let dir = TempDir::new().expect("temp dir");
        {
            let mut store = open(&dir);
            store
                .blocking_append(writes(1, 1..=2))
                .await
                .expect("append");
            assert!(store.blocking_append([write(1, 4)]).await.is_err());
            // A refused append wrote nothing: the store still works.
            store
                .blocking_append(writes(1, 3..=4))
                .await
                .expect("append");
            store.purge(log_id(1, 2)).await.expect("purge");
            // Entries at or below the purged id are already in a snapshot: dropped.
            store
                .blocking_append(writes(1, 2..=5))
                .await
                .expect("append");
            assert_eq!(all(&mut store).await, writes(1, 3..=5));
        }
        let mut store = open(&dir);
        assert_eq!(all(&mut store).await, writes(1, 3..=5));
    }
}
