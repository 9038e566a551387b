//! Snapshots of a replica: the files an Executor's `snapshot(dir)` wrote, packed into bytes to
//! ship to other replicas, and kept on disk (`snapshot.bin`, replaced atomically) so that a
//! restarted replica starts from it instead of the whole log.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use openraft::{BasicNode, SnapshotMeta};
use serde::{Deserialize, Serialize};

use super::types::NodeId;

/// Snapshot metadata of a stateful shard.
pub type Meta = SnapshotMeta<NodeId, BasicNode>;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a snapshot: {source}")]
    Corrupt {
        path: PathBuf,
        source: postcard::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: path.to_owned(),
        source,
    }
}

#[derive(Serialize, Deserialize)]
struct File {
    path: String,
    #[serde(with = "serde_bytes")]
    bytes: Vec<u8>,
}

/// Packs every file under `dir` (recursively, paths relative to it).
pub fn pack(dir: &Path) -> Result<Vec<u8>, SnapshotError> {
    let mut files = Vec::new();
    collect(dir, dir, &mut files)?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    postcard::to_stdvec(&files).map_err(|source| SnapshotError::Corrupt {
        path: dir.to_owned(),
        source,
    })
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<File>) -> Result<(), SnapshotError> {
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        if entry.file_type().map_err(io(&path))?.is_dir() {
            collect(root, &path, out)?;
        } else {
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            let bytes = fs::read(&path).map_err(io(&path))?;
            out.push(File { path: rel, bytes });
        }
    }
    Ok(())
}

/// Unpacks `data` into `dir` (emptied first). Paths that would leave `dir` are refused.
pub fn unpack(data: &[u8], dir: &Path) -> Result<(), SnapshotError> {
    let files: Vec<File> = postcard::from_bytes(data).map_err(|source| SnapshotError::Corrupt {
        path: dir.to_owned(),
        source,
    })?;
    fresh_dir(dir)?;
    for f in files {
        let rel = Path::new(&f.path);
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(SnapshotError::Io {
                path: dir.join(rel),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "a snapshot file outside the snapshot directory",
                ),
            });
        }
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io(parent))?;
        }
        fs::write(&path, &f.bytes).map_err(io(&path))?;
    }
    Ok(())
}

/// Removes `dir` if it exists and creates it empty.
pub fn fresh_dir(dir: &Path) -> Result<(), SnapshotError> {
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(io(dir))?;
    }
    fs::create_dir_all(dir).map_err(io(dir))
}

#[derive(Serialize, Deserialize)]
struct Stored {
    meta: Meta,
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
}

/// Writes the current snapshot of a node (`dir/snapshot.bin`) durably and atomically.
pub fn store(dir: &Path, meta: &Meta, data: &[u8]) -> Result<(), SnapshotError> {
    let path = dir.join("snapshot.bin");
    let tmp = dir.join("snapshot.bin.tmp");
    let bytes = postcard::to_stdvec(&Stored {
        meta: meta.clone(),
        data: data.to_vec(),
    })
    .map_err(|source| SnapshotError::Corrupt {
        path: path.clone(),
        source,
    })?;
    {
        let mut f = fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    fs::rename(&tmp, &path).map_err(io(&path))?;
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The node's current snapshot, if it has one.
pub fn load(dir: &Path) -> Result<Option<(Meta, Vec<u8>)>, SnapshotError> {
    let path = dir.join("snapshot.bin");
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&path)(e)),
    };
    let s: Stored =
        postcard::from_bytes(&bytes).map_err(|source| SnapshotError::Corrupt { path, source })?;
    Ok(Some((s.meta, s.data)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_unpack_round_trip_with_subdirs() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a");
        fs::create_dir_all(a.join("sub")).unwrap();
        fs::write(a.join("state.bin"), b"hello").unwrap();
        fs::write(a.join("sub/more"), vec![7u8; 1000]).unwrap();
        let data = pack(&a).unwrap();
        let b = t.path().join("b");
        fs::create_dir_all(&b).unwrap();
        fs::write(b.join("stale"), b"x").unwrap();
        unpack(&data, &b).unwrap();
        assert_eq!(fs::read(b.join("state.bin")).unwrap(), b"hello");
        assert_eq!(fs::read(b.join("sub/more")).unwrap(), vec![7u8; 1000]);
        assert!(!b.join("stale").exists());
    }

    #[test]
    fn stored_snapshot_survives_and_garbage_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        assert!(load(t.path()).unwrap().is_none());
        let meta = Meta::default();
        store(t.path(), &meta, b"data").unwrap();
        let (m, d) = load(t.path()).unwrap().unwrap();
        assert_eq!(m, meta);
        assert_eq!(d, b"data");
        fs::write(t.path().join("snapshot.bin"), b"\xff\xff\xff").unwrap();
        assert!(matches!(load(t.path()), Err(SnapshotError::Corrupt { .. })));
    }
}
