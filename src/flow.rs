//! The Flow builder: a DAG of Executors behind one gateway.
//!
//! ```no_run
//! use flotilla::{Exec, Flow};
//!
//! let flow = Flow::new()
//!     .add(Exec::new().name("p1").needs("gateway"))
//!     .add(Exec::new().name("p2").needs("gateway"))
//!     .needs(["p1", "p2"], Exec::new().name("r1"));
//! let running = flow.start().expect("a valid Flow");
//! let docs = running.post_blocking("/search", flotilla::Doc::text_doc("hi")).unwrap();
//! # drop(docs);
//! ```

use std::sync::Arc;

use flotilla_actors::executor::SharedFactory;
use flotilla_actors::graph::Graph;
use flotilla_actors::registry::Registry;

use crate::config::compile::{Kind, Locate, NoLines, compile};
use crate::config::locate::Lines;
use crate::config::yaml::FlowWith;
use crate::config::{CompileEnv, ConfigErrors, Exec, IntoNeeds};
use crate::error::Error;
use crate::executors::builtin_registry;
use crate::running::Running;

/// A Flow being described: Executors added in order, by default each needing the previous one.
#[derive(Clone)]
pub struct Flow {
    entries: Vec<Exec>,
    registry: Registry,
    env: CompileEnv,
    /// Where the entries are in their YAML file, when they came from one.
    lines: Option<Arc<Lines>>,
    with: FlowWith,
}

impl Default for Flow {
    fn default() -> Self {
        Flow::new()
    }
}

impl Flow {
    /// An empty Flow that knows the built-in Executors and reads the GPU environment of this
    /// process.
    pub fn new() -> Self {
        Flow {
            entries: Vec::new(),
            registry: builtin_registry(),
            env: CompileEnv::from_process(),
            lines: None,
            with: FlowWith::default(),
        }
    }

    /// Loads a Flow from a YAML file (`jtype: Flow`).
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<Flow, Error> {
        let path = path.as_ref();
        crate::config::yaml::load(path)?.into_flow().ok_or_else(|| {
            Error::Config(crate::config::ConfigErrors(vec![
                crate::config::ConfigError {
                    place: crate::config::Place {
                        file: Some(path.display().to_string()),
                        line: Some(1),
                        ..Default::default()
                    },
                    message: "this is a Deployment, not a Flow".into(),
                },
            ]))
        })
    }

    pub(crate) fn with_yaml(mut self, entries: Vec<Exec>, lines: Lines, with: FlowWith) -> Self {
        self.entries = entries;
        self.lines = Some(Arc::new(lines));
        self.with = with;
        self
    }

    /// The Flow's own settings (`with:` in YAML).
    pub fn settings(&self) -> &FlowWith {
        &self.with
    }

    /// Adds an Executor; without `needs` it needs the one added before (the gateway for the
    /// first).
    #[allow(clippy::should_implement_trait, reason = "Jina's Flow API is `.add()`")]
    pub fn add(mut self, exec: Exec) -> Self {
        self.entries.push(exec);
        self
    }

    /// Adds an Executor that needs each of `needs` (Jina's `.needs([...])`).
    pub fn needs(self, needs: impl IntoNeeds, exec: Exec) -> Self {
        self.add(exec.needs(needs))
    }

    /// Adds an Executor that needs every Executor no one needs so far (Jina's `.needs_all()`).
    pub fn needs_all(self, mut exec: Exec) -> Self {
        exec.needs = None;
        exec.needs_all = true;
        self.add(exec)
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

    /// The entries added so far.
    pub fn entries(&self) -> &[Exec] {
        &self.entries
    }

    /// Validates the Flow into the graph the kernel runs, or returns every error.
    pub fn graph(&self) -> Result<Graph, ConfigErrors> {
        let locate: &dyn Locate = match &self.lines {
            Some(l) => l.as_ref(),
            None => &NoLines,
        };
        compile(&self.entries, Kind::Flow, &self.registry, &self.env, locate)
    }

    /// Validates and starts the Flow; returns once every replica runs.
    pub fn start(&self) -> Result<Running, Error> {
        Running::start(self.graph()?)
    }
}
