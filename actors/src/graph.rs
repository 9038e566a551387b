//! The validated graph the kernel runs.
//!
//! The config compiler (YAML or builder, in the `flotilla` crate) is the one place that builds a
//! [`Graph`]: by the time one exists every name is resolved, every `uses_with` deserialized,
//! every `when` parsed, every count positive and the nodes topologically sorted, so the actors
//! never meet invalid config.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::executor::{Context, DynamicBatching, EndpointInfo, SharedFactory};
use crate::query::Query;
use crate::raft::RaftSpec;
use crate::remote::RemoteReplica;
use crate::shard::RestartPolicy;

/// Which shards a request goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PollingKind {
    /// One shard (round robin over the shards).
    Any,
    /// Every shard; their results are reduced.
    All,
}

impl PollingKind {
    /// `ANY`/`ALL` in any case.
    pub fn parse(s: &str) -> Option<PollingKind> {
        if s.eq_ignore_ascii_case("any") {
            Some(PollingKind::Any)
        } else if s.eq_ignore_ascii_case("all") {
            Some(PollingKind::All)
        } else {
            None
        }
    }
}

impl fmt::Display for PollingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PollingKind::Any => "ANY",
            PollingKind::All => "ALL",
        })
    }
}

/// Polling per endpoint.
///
/// Jina 3.x always starts from `{'/search': ALL, '/index': ANY}`, uses the configured value (or
/// the `*` entry) for every other endpoint, and lets explicit endpoint entries override. So a
/// plain `polling='ALL'` still polls `/index` ANY, and the default `ANY` still polls `/search`
/// ALL. flotilla follows that, because users' sharded search Flows depend on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Polling {
    default: PollingKind,
    endpoints: Vec<(String, PollingKind)>,
}

impl Default for Polling {
    fn default() -> Self {
        Polling::jina(PollingKind::Any, Vec::new())
    }
}

impl Polling {
    /// Jina's table: the base entries, then `default` for others, then `explicit` entries (an
    /// explicit `*` entry replaces `default`).
    pub fn jina(default: PollingKind, explicit: Vec<(String, PollingKind)>) -> Polling {
        let mut p = Polling {
            default,
            endpoints: vec![
                ("/search".into(), PollingKind::All),
                ("/index".into(), PollingKind::Any),
            ],
        };
        for (ep, kind) in explicit {
            if ep == "*" {
                p.default = kind;
            } else if let Some(slot) = p.endpoints.iter_mut().find(|(e, _)| *e == ep) {
                slot.1 = kind;
            } else {
                p.endpoints.push((ep, kind));
            }
        }
        p
    }

    /// The polling of `endpoint`.
    pub fn of(&self, endpoint: &str) -> PollingKind {
        self.endpoints
            .iter()
            .find(|(e, _)| e == endpoint)
            .map_or(self.default, |(_, k)| *k)
    }

    /// The polling of endpoints without an entry.
    pub fn default_kind(&self) -> PollingKind {
        self.default
    }

    /// The explicit entries (including Jina's base ones).
    pub fn entries(&self) -> &[(String, PollingKind)] {
        &self.endpoints
    }
}

/// An Executor as a Deployment uses it.
#[derive(Clone)]
pub struct ExecutorSpec {
    /// The name it was registered under (`uses`).
    pub uses: String,
    pub factory: SharedFactory,
    pub uses_with: serde_json::Value,
}

impl ExecutorSpec {
    pub fn endpoints(&self) -> Vec<EndpointInfo> {
        self.factory.endpoints()
    }
}

/// The endpoints `executor` itself serves in batches (`Binding::dynamic_batching`).
pub fn declared_batching(executor: &ExecutorSpec) -> BTreeMap<String, DynamicBatching> {
    executor
        .endpoints()
        .into_iter()
        .filter_map(|e| Some((e.name, e.batching?)))
        .collect()
}

impl fmt::Debug for ExecutorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecutorSpec")
            .field("uses", &self.uses)
            .field("uses_with", &self.uses_with)
            .finish()
    }
}

/// One Deployment: shards × replicas of an Executor under one name.
#[derive(Clone, Debug)]
pub struct DeploymentSpec {
    pub name: Arc<str>,
    pub executor: ExecutorSpec,
    pub replicas: usize,
    pub shards: usize,
    pub polling: Polling,
    /// Runs before the shards; it gets the docs matrix of a join.
    pub uses_before: Option<ExecutorSpec>,
    /// Runs after ALL-polled shards, instead of the default reduce; it gets every shard's docs.
    pub uses_after: Option<ExecutorSpec>,
    /// Reduce the parts of a join and the results of ALL-polled shards (`disable_reduce` off).
    pub reduce: bool,
    pub env: BTreeMap<String, String>,
    pub workspace: Option<PathBuf>,
    /// Per-replica `CUDA_VISIBLE_DEVICES`, from `CUDA_VISIBLE_DEVICES=RR…`.
    pub devices: Option<Vec<String>>,
    /// Requests that may wait per shard when every replica is busy.
    pub queue: usize,
    pub restart: RestartPolicy,
    /// An external Executor: its replicas run elsewhere and are reached through these.
    pub remote: Option<RemoteSpec>,
    /// A stateful Deployment: each shard's writes go through a Raft log. Its `root` is
    /// `<workspace>/raft`; shard `s` keeps its nodes under `<root>/<s>`.
    pub stateful: Option<RaftSpec>,
    /// This Deployment's one shard is shard `.0` of `.1`, the others running elsewhere: the
    /// id its replicas see and its Raft directory use `.0`.
    pub shard_of: Option<(usize, usize)>,
    /// `uses_dynamic_batching`: per endpoint, overriding what the Executor declares.
    pub batching: BTreeMap<String, DynamicBatching>,
}

/// The replicas of an external Executor.
#[derive(Clone)]
pub struct RemoteSpec {
    pub replicas: Vec<Arc<dyn RemoteReplica>>,
    /// Requests in flight per replica before requests queue.
    pub per_replica: usize,
}

impl fmt::Debug for RemoteSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteSpec")
            .field(
                "replicas",
                &self
                    .replicas
                    .iter()
                    .map(|r| r.address())
                    .collect::<Vec<_>>(),
            )
            .field("per_replica", &self.per_replica)
            .finish()
    }
}

/// The default number of requests in flight per remote replica.
pub const DEFAULT_PER_REMOTE: usize = 32;

/// The default bound of a shard's queue.
pub const DEFAULT_QUEUE: usize = 1024;

impl DeploymentSpec {
    /// A Deployment of one replica of `executor`, with Jina's defaults.
    pub fn new(name: impl Into<Arc<str>>, executor: ExecutorSpec) -> Self {
        DeploymentSpec {
            name: name.into(),
            executor,
            replicas: 1,
            shards: 1,
            polling: Polling::default(),
            uses_before: None,
            uses_after: None,
            reduce: true,
            env: BTreeMap::new(),
            workspace: None,
            devices: None,
            queue: DEFAULT_QUEUE,
            restart: RestartPolicy::default(),
            remote: None,
            stateful: None,
            shard_of: None,
            batching: BTreeMap::new(),
        }
    }

    /// The endpoints served in batches: what the Executor declares, overridden by
    /// `uses_dynamic_batching`.
    pub fn batching_table(&self) -> Arc<BTreeMap<String, DynamicBatching>> {
        let mut table = declared_batching(&self.executor);
        for (endpoint, b) in &self.batching {
            // An override sets the sizes; how the handler fails is the Executor's to declare.
            let alone = table.get(endpoint).is_some_and(|d| d.alone_on_error);
            table.insert(
                endpoint.clone(),
                DynamicBatching {
                    alone_on_error: b.alone_on_error || alone,
                    ..*b
                },
            );
        }
        Arc::new(table)
    }

    /// Shard `shard` of this Deployment as the Executor knows it: (id, number of shards).
    fn shard_id(&self, shard: usize) -> (usize, usize) {
        self.shard_of.unwrap_or((shard, self.shards))
    }

    /// The name of shard `shard`: the Deployment's name, or `name/shard-i` when it has shards.
    pub fn shard_name(&self, shard: usize) -> Arc<str> {
        let (id, shards) = self.shard_id(shard);
        if shards > 1 {
            format!("{}/shard-{id}", self.name).into()
        } else {
            self.name.clone()
        }
    }

    /// The Raft spec of shard `shard` of a stateful Deployment.
    pub fn raft_spec(&self, shard: usize) -> Option<RaftSpec> {
        self.stateful.as_ref().map(|r| RaftSpec {
            root: r.root.join(self.shard_id(shard).0.to_string()),
            ..r.clone()
        })
    }

    /// The contexts of the replicas of shard `shard`: names, workspace, environment and device.
    pub fn contexts(&self, shard: usize) -> Vec<Context> {
        let (id, shards) = self.shard_id(shard);
        // A replica process of a stateful group (`--replica-id I`) runs replica I of the
        // group's N, whatever its own Deployment of one replica says.
        let cluster = self
            .stateful
            .as_ref()
            .and_then(|r| r.cluster.as_ref())
            .filter(|_| self.replicas == 1);
        let (first, replicas) = match cluster {
            Some(c) => (c.me as usize, c.peers.len().max(1)),
            None => (0, self.replicas),
        };
        (0..self.replicas)
            .map(|r| {
                let mut ctx = Context::new(&self.name, id, shards, first + r, replicas);
                ctx.workspace = self.workspace.clone();
                ctx.env = self.env.clone();
                if let Some(devices) = &self.devices {
                    ctx.env.insert(
                        "CUDA_VISIBLE_DEVICES".into(),
                        devices[r % devices.len()].clone(),
                    );
                }
                ctx
            })
            .collect()
    }
}

/// Where a node's input comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The request as the client sent it.
    Gateway,
    /// The output of another node (by index in [`Graph::nodes`]).
    Node(usize),
}

/// One node of a Flow: a Deployment, what it needs, and its filter.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub deployment: DeploymentSpec,
    /// Predecessors; the node runs once all of them have answered.
    pub needs: Vec<Source>,
    /// Docs that fail it do not reach this node (nor anything behind it on this branch).
    pub when: Option<Query>,
}

/// A validated Flow: nodes in topological order, and the nodes whose results make the answer.
#[derive(Clone, Debug)]
pub struct Graph {
    pub nodes: Vec<NodeSpec>,
    /// The nodes connected to the end gateway; several are reduced into one answer.
    pub outputs: Vec<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jina_polling_defaults() {
        let any = Polling::jina(PollingKind::Any, vec![]);
        assert_eq!(any.of("/index"), PollingKind::Any);
        assert_eq!(any.of("/search"), PollingKind::All);
        assert_eq!(any.of("/foo"), PollingKind::Any);
        let all = Polling::jina(PollingKind::All, vec![]);
        assert_eq!(all.of("/index"), PollingKind::Any);
        assert_eq!(all.of("/search"), PollingKind::All);
        assert_eq!(all.of("/foo"), PollingKind::All);
    }

    #[test]
    fn the_seed_polling_map() {
        // {'/custom': 'ALL', '/search': 'ANY', '*': 'ANY'}
        let p = Polling::jina(
            PollingKind::Any,
            vec![
                ("/custom".into(), PollingKind::All),
                ("/search".into(), PollingKind::Any),
                ("*".into(), PollingKind::Any),
            ],
        );
        assert_eq!(p.of("/index"), PollingKind::Any);
        assert_eq!(p.of("/search"), PollingKind::Any);
        assert_eq!(p.of("/custom"), PollingKind::All);
        assert_eq!(p.of("/anything"), PollingKind::Any);
    }

    #[test]
    fn polling_is_case_insensitive() {
        assert_eq!(PollingKind::parse("aLl"), Some(PollingKind::All));
        assert_eq!(PollingKind::parse("any"), Some(PollingKind::Any));
        assert_eq!(PollingKind::parse("some"), None);
    }
}
