//! Built-in Executors, registered by name in [`builtin_registry`].
//!
//! - `BaseExecutor`: binds nothing, so every request passes through unchanged (Jina's default
//!   for `.add()` without `uses`).
//! - `Echo`: returns the docs it gets.
//! - `ExactNNIndexer`: exact nearest-neighbour search (`/index`, `/search`, `/count`, `/clear`),
//!   the seed's `ExactNNSearch`; `uses_with: {dim, metric, limit, threads}` (threads: a
//!   search's own, default one per core); `/search` is served in batches of queued queries.
//! - `MatchMerger`: merges sharded search results, keeping the best `top_k` matches by score.
//! - `SlowFast`: the seed's bottleneck demo, `/slow` sleeps, `/fast` returns at once.

mod echo;
mod exact_nn;
mod match_merger;
mod slow_fast;

use std::sync::Arc;

use flotilla_actors::executor::{Executor, FnFactory, NoArgs, Requests, SharedFactory, factory};
use flotilla_actors::registry::Registry;

pub use echo::Echo;
pub use exact_nn::{
    ExactNNConfig, ExactNNIndexer, Metric, SEARCH_BATCH, default_threads, normalise_into,
};
pub use match_merger::MatchMerger;
pub use slow_fast::SlowFast;

/// Jina's `BaseExecutor`: no endpoints, so requests pass through unchanged.
pub struct BaseExecutor;

impl Executor for BaseExecutor {
    fn requests(_: &mut Requests<Self>) {}
}

/// The factory of [`BaseExecutor`].
pub fn base_executor() -> SharedFactory {
    factory(|_| Ok(BaseExecutor))
}

/// Every built-in Executor by name.
pub fn builtin_registry() -> Registry {
    let mut r = Registry::new();
    r.add("BaseExecutor", base_executor());
    r.add(
        "Echo",
        Arc::new(FnFactory::new(|_: NoArgs, _: &_| Ok(Echo))),
    );
    r.add(
        "ExactNNIndexer",
        Arc::new(FnFactory::new(|cfg: ExactNNConfig, _: &_| {
            ExactNNIndexer::new(cfg)
        })),
    );
    r.add(
        "MatchMerger",
        Arc::new(FnFactory::new(|cfg: MatchMerger, _: &_| Ok(cfg))),
    );
    r.add(
        "SlowFast",
        Arc::new(FnFactory::new(|cfg: SlowFast, _: &_| Ok(cfg))),
    );
    r
}
