//! The Deployment builder: one Executor, with replicas and shards, served on its own.
//!
//! ```no_run
//! use flotilla::Deployment;
//!
//! let dep = Deployment::new().name("slow_encoder").uses("Echo").replicas(3);
//! let running = dep.start().expect("a valid Deployment");
//! let docs = running.post_blocking("/", flotilla::Doc::text_doc("hello")).unwrap();
//! assert_eq!(docs.texts(), vec!["hello"]);
//! ```

use std::sync::Arc;

use flotilla_actors::executor::SharedFactory;
use flotilla_actors::graph::Graph;
use flotilla_actors::registry::Registry;

use crate::config::compile::{Kind, Locate, NoLines, compile};
use crate::config::locate::Lines;
use crate::config::{CompileEnv, ConfigErrors, Exec};
use crate::error::Error;
use crate::executors::builtin_registry;
use crate::running::Running;

/// A Deployment being described.
#[derive(Clone)]
pub struct Deployment {
    exec: Exec,
    registry: Registry,
    env: CompileEnv,
    lines: Option<Arc<Lines>>,
}

impl Default for Deployment {
    fn default() -> Self {
        Deployment::new()
    }
}

macro_rules! forward {
    ($($(#[$m:meta])* $name:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            $(#[$m])*
            pub fn $name(mut self, $($arg: $ty),*) -> Self {
                self.exec = self.exec.$name($($arg),*);
                self
            }
        )*
    };
}

impl Deployment {
    /// A Deployment of Jina's `BaseExecutor` (until [`Deployment::uses`] says otherwise).
    pub fn new() -> Self {
        Deployment {
            exec: Exec::new(),
            registry: builtin_registry(),
            env: CompileEnv::from_process(),
            lines: None,
        }
    }

    /// Loads a Deployment from a YAML file (`jtype: Deployment`).
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<Deployment, Error> {
        let path = path.as_ref();
        crate::config::yaml::load(path)?
            .into_deployment()
            .ok_or_else(|| {
                Error::Config(crate::config::ConfigErrors(vec![
                    crate::config::ConfigError {
                        place: crate::config::Place {
                            file: Some(path.display().to_string()),
                            line: Some(1),
                            ..Default::default()
                        },
                        message: "this is a Flow, not a Deployment".into(),
                    },
                ]))
            })
    }

    pub(crate) fn with_yaml(mut self, lines: Lines) -> Self {
        self.lines = Some(Arc::new(lines));
        self
    }

    /// A Deployment of the Executor `exec` describes.
    pub fn of(exec: Exec) -> Self {
        Deployment {
            exec,
            ..Deployment::new()
        }
    }

    forward! {
        /// The Deployment's name (default `executor`).
        name(name: impl Into<String>);
        /// The Executor, by registered name.
        uses(uses: impl Into<String>);
        /// The Executor, by factory.
        uses_factory(name: impl Into<String>, factory: SharedFactory);
        /// Constructor arguments for the Executor.
        uses_with(with: serde_json::Value);
        /// Copies of the Executor; a request goes to one (the idle one first).
        replicas(n: i64);
        /// Partitions; `polling` says whether a request goes to one or all.
        shards(n: i64);
        /// `ANY` or `ALL`.
        polling(p: impl Into<String>);
        /// Runs before the shards.
        uses_before(uses: impl Into<String>);
        /// Runs after ALL-polled shards, instead of the default reduce.
        uses_after(uses: impl Into<String>);
        /// Turns off the reduce of ALL-polled shards.
        disable_reduce(off: bool);
        /// One environment variable of the replicas.
        env(key: impl Into<String>, value: impl Into<String>);
        /// The Executor's workspace directory.
        workspace(dir: impl Into<std::path::PathBuf>);
        /// Requests that may wait per shard when every replica is busy.
        queue_size(n: i64);
        /// Serves `endpoint` in batches of up to `preferred_batch_size` docs (Jina's dynamic
        /// batching), overriding what the Executor declares.
        dynamic_batching(endpoint: impl Into<String>, preferred_batch_size: usize);
        /// Jina's `uses_dynamic_batching`, as one JSON value.
        uses_dynamic_batching(config: serde_json::Value);
        /// Replicates the Executor's state through a Raft log (needs a `workspace`).
        stateful(on: bool);
        /// Jina's `raft_configuration` keys.
        raft_configuration(config: serde_json::Value);
        /// Peer ports of the replicas (a list, or a map per shard).
        peer_ports(ports: serde_json::Value);
        /// Delays and drops Raft messages (tests).
        raft_faults(faults: flotilla_actors::raft::Faults);
        /// An external Executor whose replicas are already running at `addresses`
        /// (`host:port` each), served through this Deployment.
        external_at(addresses: Vec<String>);
        /// The deadline of each call to an external Executor, in milliseconds.
        timeout_send(ms: u64);
        /// Runs this process's replica as one node of a Raft group spanning processes.
        raft_cluster(cluster: flotilla_actors::raft::Cluster);
        /// Serves shard `shard` of an Executor of `shards` shards run elsewhere.
        shard_of(shard: usize, shards: usize);
    }

    /// Polling per endpoint, `*` for the others.
    /// Endpoints of a stateful Executor whose reads are linearizable (served by the leader).
    pub fn linearizable_reads<S: Into<String>>(
        mut self,
        endpoints: impl IntoIterator<Item = S>,
    ) -> Self {
        self.exec = self.exec.linearizable_reads(endpoints);
        self
    }

    pub fn polling_map<K: Into<String>, V: Into<String>>(
        mut self,
        m: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.exec = self.exec.polling_map(m);
        self
    }

    /// Makes an Executor type available to `uses` under `name`.
    pub fn register(mut self, name: impl Into<String>, factory: SharedFactory) -> Self {
        self.registry.add(name, factory);
        self
    }

    /// Adds every Executor of `registry` to those `uses` can name.
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry.extend(registry);
        self
    }

    /// Uses this GPU environment instead of the process's.
    pub fn compile_env(mut self, env: CompileEnv) -> Self {
        self.env = env;
        self
    }

    /// Validates the Deployment into the one-node graph the kernel runs.
    pub fn graph(&self) -> Result<Graph, ConfigErrors> {
        let locate: &dyn Locate = match &self.lines {
            Some(l) => l.as_ref(),
            None => &NoLines,
        };
        compile(
            std::slice::from_ref(&self.exec),
            Kind::Deployment,
            &self.registry,
            &self.env,
            locate,
        )
    }

    /// Validates and starts the Deployment; returns once every replica runs.
    pub fn start(&self) -> Result<Running, Error> {
        Running::start(self.graph()?)
    }
}
