//! `raft_configuration`: Jina's keys (hashicorp/raft's, in snake case), validated and mapped
//! onto openraft's [`Config`].
//!
//! | Jina key | meaning here |
//! |---|---|
//! | `heartbeat_timeout` (ms) | a follower without news from the leader this long starts an election; the leader sends heartbeats every tenth of it (as hashicorp/raft does) |
//! | `election_timeout` (ms) | a candidate waits between this and twice this before trying again |
//! | `max_append_entries` | entries per AppendEntries message (openraft `max_payload_entries`) |
//! | `snapshot_threshold` | entries since the last snapshot that trigger a new one |
//! | `snapshot_interval` (s) | also snapshot every this often when anything was applied since |
//! | `trailing_logs` | entries kept in the log after a snapshot, for slow followers |
//! | `commit_timeout`, `leader_lease_timeout` (ms), `batch_apply_ch`, `shutdown_on_remove`, `log_level`, `no_snapshot_restore_on_start` | accepted for compatibility and checked for type; openraft has no equivalent knob (it replicates and applies as soon as it can) |
//!
//! Any other key is an error, so a typo never silently keeps a default.

use std::time::Duration;

use openraft::{Config, SnapshotPolicy};

/// Validated Raft settings of a stateful Deployment.
#[derive(Clone, Debug, PartialEq)]
pub struct RaftSettings {
    pub heartbeat_timeout: Duration,
    pub election_timeout: Duration,
    pub max_append_entries: u64,
    pub snapshot_threshold: u64,
    pub snapshot_interval: Duration,
    pub trailing_logs: u64,
}

impl Default for RaftSettings {
    /// Faster than hashicorp/raft's 1 s timeouts, because flotilla's replicas usually share a
    /// process and a failover should cost well under a second; the rest are hashicorp's values.
    fn default() -> Self {
        RaftSettings {
            heartbeat_timeout: Duration::from_millis(500),
            election_timeout: Duration::from_millis(500),
            max_append_entries: 64,
            snapshot_threshold: 8192,
            snapshot_interval: Duration::from_secs(120),
            trailing_logs: 10240,
        }
    }
}

/// Every key Jina accepts in `raft_configuration`.
pub const KEYS: &[&str] = &[
    "heartbeat_timeout",
    "election_timeout",
    "commit_timeout",
    "max_append_entries",
    "batch_apply_ch",
    "shutdown_on_remove",
    "trailing_logs",
    "snapshot_interval",
    "snapshot_threshold",
    "leader_lease_timeout",
    "log_level",
    "no_snapshot_restore_on_start",
];

impl RaftSettings {
    /// Reads `raft_configuration`. The error names the key and what was wrong with it.
    pub fn from_map(map: &serde_json::Map<String, serde_json::Value>) -> Result<Self, String> {
        let mut s = RaftSettings::default();
        for (key, value) in map {
            match key.as_str() {
                "heartbeat_timeout" => s.heartbeat_timeout = millis(key, value)?,
                "election_timeout" => s.election_timeout = millis(key, value)?,
                "max_append_entries" => s.max_append_entries = positive(key, value)?,
                "snapshot_threshold" => s.snapshot_threshold = positive(key, value)?,
                "snapshot_interval" => {
                    s.snapshot_interval = Duration::from_secs(positive(key, value)?)
                }
                "trailing_logs" => s.trailing_logs = number(key, value)?,
                "commit_timeout" | "leader_lease_timeout" => {
                    millis(key, value)?;
                }
                "batch_apply_ch" | "shutdown_on_remove" | "no_snapshot_restore_on_start" => {
                    boolean(key, value)?;
                }
                "log_level" => {
                    if !value.is_string() {
                        return Err(format!("`{key}` must be a string such as INFO"));
                    }
                }
                other => {
                    return Err(format!(
                        "unknown key `{other}` (known: {})",
                        KEYS.join(", ")
                    ));
                }
            }
        }
        s.check()?;
        Ok(s)
    }

    fn check(&self) -> Result<(), String> {
        if self.heartbeat_timeout < Duration::from_millis(20) {
            return Err("`heartbeat_timeout` must be at least 20 ms".into());
        }
        if self.election_timeout < Duration::from_millis(20) {
            return Err("`election_timeout` must be at least 20 ms".into());
        }
        Ok(())
    }

    /// openraft's configuration for these settings; `snapshots` is false when the Executor
    /// cannot snapshot (then the log is never compacted).
    pub fn openraft(&self, cluster: &str, snapshots: bool) -> Result<Config, String> {
        let heartbeat = (self.heartbeat_timeout.as_millis() as u64 / 10).max(5);
        let election = self
            .election_timeout
            .max(self.heartbeat_timeout)
            .as_millis() as u64;
        let config = Config {
            cluster_name: cluster.to_owned(),
            heartbeat_interval: heartbeat,
            election_timeout_min: election,
            election_timeout_max: election * 2,
            max_payload_entries: self.max_append_entries,
            snapshot_policy: if snapshots {
                SnapshotPolicy::LogsSinceLast(self.snapshot_threshold)
            } else {
                SnapshotPolicy::Never
            },
            max_in_snapshot_log_to_keep: self.trailing_logs,
            // Snapshots of a large index take a while to ship between replicas.
            install_snapshot_timeout: 30_000,
            snapshot_max_chunk_size: 8 << 20,
            ..Config::default()
        };
        config.validate().map_err(|e| e.to_string())
    }
}

fn number(key: &str, v: &serde_json::Value) -> Result<u64, String> {
    match v {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| format!("`{key}` must be a non-negative integer, not {v}"))
}

fn positive(key: &str, v: &serde_json::Value) -> Result<u64, String> {
    match number(key, v)? {
        0 => Err(format!("`{key}` must be positive")),
        n => Ok(n),
    }
}

fn millis(key: &str, v: &serde_json::Value) -> Result<Duration, String> {
    Ok(Duration::from_millis(positive(key, v)?))
}

fn boolean(key: &str, v: &serde_json::Value) -> Result<bool, String> {
    match v {
        serde_json::Value::Bool(b) => Ok(*b),
        serde_json::Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        serde_json::Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(format!("`{key}` must be true or false, not {v}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn jina_keys_map_onto_openraft() {
        let s = RaftSettings::from_map(&map(json!({
            "heartbeat_timeout": 1000, "election_timeout": "1500", "max_append_entries": 16,
            "snapshot_threshold": 100, "trailing_logs": 10, "commit_timeout": 50,
            "log_level": "DEBUG", "shutdown_on_remove": true
        })))
        .unwrap();
        let c = s.openraft("c", true).unwrap();
        assert_eq!(c.heartbeat_interval, 100);
        assert_eq!(
            (c.election_timeout_min, c.election_timeout_max),
            (1500, 3000)
        );
        assert_eq!(c.max_payload_entries, 16);
        assert_eq!(c.snapshot_policy, SnapshotPolicy::LogsSinceLast(100));
        assert_eq!(c.max_in_snapshot_log_to_keep, 10);
        let never = s.openraft("c", false).unwrap();
        assert_eq!(never.snapshot_policy, SnapshotPolicy::Never);
    }

    #[test]
    fn bad_keys_and_values_are_named() {
        let e = RaftSettings::from_map(&map(json!({"heartbeat_timout": 5}))).unwrap_err();
        assert!(e.contains("unknown key `heartbeat_timout`"), "{e}");
        let e = RaftSettings::from_map(&map(json!({"max_append_entries": 0}))).unwrap_err();
        assert!(e.contains("`max_append_entries` must be positive"), "{e}");
        let e = RaftSettings::from_map(&map(json!({"election_timeout": "soon"}))).unwrap_err();
        assert!(e.contains("`election_timeout`"), "{e}");
        let e = RaftSettings::from_map(&map(json!({"batch_apply_ch": 3}))).unwrap_err();
        assert!(e.contains("true or false"), "{e}");
    }
}
