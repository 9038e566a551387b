//! The registry: the one place where a `uses` name becomes an Executor factory.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::executor::{ExecutorFactory, SharedFactory};

/// Executor factories by name, so that config can say `uses: Echo`.
#[derive(Clone, Default)]
pub struct Registry {
    factories: BTreeMap<String, SharedFactory>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Registers `factory` under `name`, replacing any factory of that name.
    pub fn add(&mut self, name: impl Into<String>, factory: SharedFactory) -> &mut Self {
        self.factories.insert(name.into(), factory);
        self
    }

    /// Builder form of [`Registry::add`].
    pub fn with(
        mut self,
        name: impl Into<String>,
        factory: impl ExecutorFactory + 'static,
    ) -> Self {
        self.factories.insert(name.into(), Arc::new(factory));
        self
    }

    /// The factory registered under `name`.
    pub fn get(&self, name: &str) -> Option<&SharedFactory> {
        self.factories.get(name)
    }

    /// Every registered name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.factories.keys().map(String::as_str)
    }

    /// Adds every entry of `other`, replacing same-named ones.
    pub fn extend(&mut self, other: &Registry) {
        for (k, v) in &other.factories {
            self.factories.insert(k.clone(), v.clone());
        }
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.factories.keys()).finish()
    }
}
