//! One Executor entry, as YAML (`executors:` item, a Deployment's `with:`) and the builder
//! (`Flow::add`, `Deployment::new`) write it: the raw form, checked only by the compiler.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use flotilla_actors::executor::SharedFactory;

/// One value or a list of them (`needs: a` or `needs: [a, b]`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T: Clone> OneOrMany<T> {
    pub fn to_vec(&self) -> Vec<T> {
        match self {
            OneOrMany::One(t) => vec![t.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// A scalar YAML value that is used as a string (`env` values, ports).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Scalar {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::Str(s) => f.write_str(s),
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::Float(x) => write!(f, "{x}"),
            Scalar::Bool(b) => f.write_str(if *b { "True" } else { "False" }),
        }
    }
}

/// `polling`: one value for every endpoint, or a map per endpoint with `*` as wildcard.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum PollingConfig {
    One(String),
    PerEndpoint(BTreeMap<String, String>),
}

/// One Executor of a Flow or Deployment, with Jina's keys.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exec {
    pub name: Option<String>,
    pub uses: Option<String>,
    pub uses_with: Option<serde_json::Value>,
    pub needs: Option<OneOrMany<String>>,
    pub replicas: Option<i64>,
    pub shards: Option<i64>,
    pub polling: Option<PollingConfig>,
    pub when: Option<serde_json::Value>,
    pub uses_before: Option<String>,
    pub uses_after: Option<String>,
    pub disable_reduce: Option<bool>,
    /// The newer name of `disable_reduce`.
    pub no_reduce: Option<bool>,
    pub env: Option<BTreeMap<String, Scalar>>,
    pub workspace: Option<PathBuf>,
    pub external: Option<bool>,
    pub host: Option<OneOrMany<String>>,
    pub port: Option<OneOrMany<Scalar>>,
    pub timeout_send: Option<u64>,
    /// Jina's `tls` on an external Executor: call it over TLS.
    pub tls: Option<bool>,
    pub stateful: Option<bool>,
    pub peer_ports: Option<serde_json::Value>,
    pub raft_configuration: Option<serde_json::Map<String, serde_json::Value>>,
    /// Endpoints of a stateful Executor whose reads are linearizable: served by the leader
    /// after a read-index check instead of by any replica (flotilla's own key).
    pub linearizable_reads: Option<OneOrMany<String>>,
    /// Jina Hub's key; accepted for compatibility, nothing to install here.
    pub install_requirements: Option<bool>,
    /// Requests that may wait per shard when every replica is busy (flotilla's own key).
    pub queue_size: Option<i64>,
    /// Jina's `uses_dynamic_batching`: `{endpoint: {preferred_batch_size, timeout, flush_all}}`,
    /// overriding what the Executor declares.
    pub uses_dynamic_batching: Option<serde_json::Value>,
    /// `needs` is every Executor no one needs so far (the builder's `needs_all`).
    #[serde(skip)]
    pub needs_all: bool,
    /// An Executor given as a factory by the builder rather than by name.
    #[serde(skip)]
    pub uses_factory: Option<SharedFactory>,
    #[serde(skip)]
    pub uses_before_factory: Option<SharedFactory>,
    #[serde(skip)]
    pub uses_after_factory: Option<SharedFactory>,
    /// Raft message faults for tests of a stateful Executor.
    #[serde(skip)]
    pub raft_faults: Option<flotilla_actors::raft::Faults>,
    /// This process runs one replica of a stateful Executor whose replicas are processes.
    #[serde(skip)]
    pub raft_cluster: Option<flotilla_actors::raft::Cluster>,
    /// This Deployment is shard `.0` of an Executor of `.1` shards whose other shards run
    /// elsewhere (`flotilla executor --shard-id S --shards N`).
    #[serde(skip)]
    pub shard_of: Option<(usize, usize)>,
}

impl std::fmt::Debug for Exec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exec")
            .field("name", &self.name)
            .field("uses", &self.uses)
            .field("needs", &self.needs)
            .field("replicas", &self.replicas)
            .field("shards", &self.shards)
            .finish_non_exhaustive()
    }
}

impl Exec {
    /// An entry with every key unset (Jina's defaults apply).
    pub fn new() -> Self {
        Exec::default()
    }

    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The Executor, by its registered name.
    pub fn uses(mut self, uses: impl Into<String>) -> Self {
        self.uses = Some(uses.into());
        self
    }

    /// The Executor, by a factory (its `uses` name is only shown in messages).
    pub fn uses_factory(mut self, name: impl Into<String>, factory: SharedFactory) -> Self {
        self.uses = Some(name.into());
        self.uses_factory = Some(factory);
        self
    }

    /// Constructor arguments, deserialized into the Executor's config type.
    pub fn uses_with(mut self, with: serde_json::Value) -> Self {
        self.uses_with = Some(with);
        self
    }

    /// One predecessor (`gateway` for the Flow's input).
    pub fn needs(mut self, needs: impl IntoNeeds) -> Self {
        self.needs = Some(needs.into_needs());
        self
    }

    pub fn replicas(mut self, n: i64) -> Self {
        self.replicas = Some(n);
        self
    }

    pub fn shards(mut self, n: i64) -> Self {
        self.shards = Some(n);
        self
    }

    /// `ANY` or `ALL` for every endpoint (Jina's base table still applies, see the README).
    pub fn polling(mut self, p: impl Into<String>) -> Self {
        self.polling = Some(PollingConfig::One(p.into()));
        self
    }

    /// Polling per endpoint, `*` for the others.
    pub fn polling_map<K: Into<String>, V: Into<String>>(
        mut self,
        m: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.polling = Some(PollingConfig::PerEndpoint(
            m.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
        ));
        self
    }

    /// A `when` filter in DocArray's query language.
    pub fn when(mut self, q: serde_json::Value) -> Self {
        self.when = Some(q);
        self
    }

    pub fn uses_before(mut self, uses: impl Into<String>) -> Self {
        self.uses_before = Some(uses.into());
        self
    }

    pub fn uses_before_factory(mut self, name: impl Into<String>, f: SharedFactory) -> Self {
        self.uses_before = Some(name.into());
        self.uses_before_factory = Some(f);
        self
    }

    pub fn uses_after(mut self, uses: impl Into<String>) -> Self {
        self.uses_after = Some(uses.into());
        self
    }

    pub fn uses_after_factory(mut self, name: impl Into<String>, f: SharedFactory) -> Self {
        self.uses_after = Some(name.into());
        self.uses_after_factory = Some(f);
        self
    }

    /// Turns off the default reduce of joins and ALL-polled shards.
    pub fn disable_reduce(mut self, off: bool) -> Self {
        self.disable_reduce = Some(off);
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env
            .get_or_insert_with(BTreeMap::new)
            .insert(key.into(), Scalar::Str(value.into()));
        self
    }

    pub fn workspace(mut self, dir: impl Into<PathBuf>) -> Self {
        self.workspace = Some(dir.into());
        self
    }

    /// An external Executor whose replicas are at `addresses` (`host:port` each).
    pub fn external_at(mut self, addresses: Vec<String>) -> Self {
        self.external = Some(true);
        self.host = Some(OneOrMany::Many(addresses));
        self
    }

    /// Calls the external Executor over TLS (Jina's `tls=True`), trusting the system's roots or
    /// the file `GRPC_DEFAULT_SSL_ROOTS_FILE_PATH` names.
    pub fn tls(mut self, on: bool) -> Self {
        self.tls = Some(on);
        self
    }

    /// The deadline of each call to an external Executor, in milliseconds.
    pub fn timeout_send(mut self, ms: u64) -> Self {
        self.timeout_send = Some(ms);
        self
    }

    pub fn queue_size(mut self, n: i64) -> Self {
        self.queue_size = Some(n);
        self
    }

    /// Replicates the Executor's state through a Raft log (needs a `workspace`).
    pub fn stateful(mut self, on: bool) -> Self {
        self.stateful = Some(on);
        self
    }

    /// Serves `endpoint` in batches of up to `preferred_batch_size` docs (Jina's
    /// `uses_dynamic_batching`; see `flotilla_actors::executor::DynamicBatching`).
    pub fn dynamic_batching(
        mut self,
        endpoint: impl Into<String>,
        preferred_batch_size: usize,
    ) -> Self {
        let entry = serde_json::json!({ "preferred_batch_size": preferred_batch_size });
        match &mut self.uses_dynamic_batching {
            Some(serde_json::Value::Object(map)) => {
                map.insert(endpoint.into(), entry);
            }
            _ => {
                self.uses_dynamic_batching = Some(serde_json::json!({ endpoint.into(): entry }));
            }
        }
        self
    }

    /// Jina's `uses_dynamic_batching` as one JSON value:
    /// `{"/search": {"preferred_batch_size": 16, "timeout": 100}}`.
    pub fn uses_dynamic_batching(mut self, config: serde_json::Value) -> Self {
        self.uses_dynamic_batching = Some(config);
        self
    }

    /// Jina's `raft_configuration` keys, such as `{"snapshot_threshold": 1000}`.
    pub fn raft_configuration(mut self, config: serde_json::Value) -> Self {
        self.raft_configuration = match config {
            serde_json::Value::Object(m) => Some(m),
            _ => Some(serde_json::Map::new()),
        };
        self
    }

    /// Peer ports of a stateful Executor's replicas (a list, or a map per shard), as Jina.
    pub fn peer_ports(mut self, ports: serde_json::Value) -> Self {
        self.peer_ports = Some(ports);
        self
    }

    /// Endpoints whose reads are linearizable (served by the Raft leader).
    pub fn linearizable_reads<S: Into<String>>(
        mut self,
        endpoints: impl IntoIterator<Item = S>,
    ) -> Self {
        self.linearizable_reads = Some(OneOrMany::Many(
            endpoints.into_iter().map(Into::into).collect(),
        ));
        self
    }

    /// Delays and drops Raft messages between replicas (tests of failure handling).
    pub fn raft_faults(mut self, faults: flotilla_actors::raft::Faults) -> Self {
        self.raft_faults = Some(faults);
        self
    }

    /// Runs this process's replica as node `cluster.me` of a Raft group whose other nodes are
    /// processes at `cluster.peers` (`flotilla executor --stateful`).
    pub fn raft_cluster(mut self, cluster: flotilla_actors::raft::Cluster) -> Self {
        self.raft_cluster = Some(cluster);
        self
    }

    /// Serves shard `shard` of an Executor of `shards` shards whose other shards run
    /// elsewhere: its replicas see that shard id, and a stateful one keeps its Raft log under
    /// `<workspace>/raft/<shard>/` (Jina's worker `--shard-id`, `--shards`).
    pub fn shard_of(mut self, shard: usize, shards: usize) -> Self {
        self.shard_of = Some((shard, shards));
        self
    }
}

/// What `needs` accepts: a name, or a list of names.
pub trait IntoNeeds {
    fn into_needs(self) -> OneOrMany<String>;
}

impl IntoNeeds for &str {
    fn into_needs(self) -> OneOrMany<String> {
        OneOrMany::One(self.to_owned())
    }
}

impl IntoNeeds for String {
    fn into_needs(self) -> OneOrMany<String> {
        OneOrMany::One(self)
    }
}

impl<const N: usize> IntoNeeds for [&str; N] {
    fn into_needs(self) -> OneOrMany<String> {
        OneOrMany::Many(self.iter().map(|s| (*s).to_owned()).collect())
    }
}

impl IntoNeeds for Vec<String> {
    fn into_needs(self) -> OneOrMany<String> {
        OneOrMany::Many(self)
    }
}

impl IntoNeeds for Vec<&str> {
    fn into_needs(self) -> OneOrMany<String> {
        OneOrMany::Many(self.into_iter().map(str::to_owned).collect())
    }
}
