//! Config: YAML and builder calls become one typed, validated graph before anything starts.
//!
//! - [`exec`]: the raw entry of one Executor, with Jina's keys.
//! - [`compile`]: entries to a validated `Graph`, collecting every error with its place.
//! - [`yaml`]: Jina's YAML (`jtype: Flow` / `jtype: Deployment`) into the same entries.
//! - [`locate`]: the YAML line of an entry or key, for errors found after parsing.
//! - [`external`]: the addresses of an external Executor from `host`/`port`.
//! - [`error`]: `ConfigError`, naming file, line, Executor and key.

pub mod compile;
pub mod error;
pub mod exec;
pub mod external;
pub mod locate;
pub mod yaml;

pub use compile::{CompileEnv, GATEWAY, Kind};
pub use error::{ConfigError, ConfigErrors, Place};
pub use exec::{Exec, IntoNeeds, OneOrMany, PollingConfig, Scalar};
