//! The router of one Flow node: it joins the parts its `needs` produced, filters them with the
//! node's `when`, runs `uses_before`, polls the shards (ANY: one, round robin; ALL: every shard
//! at once) and merges their results by reduce or with `uses_after`.
//!
//! A router holds no per-request state between awaits of different requests, so it is a plain
//! shared object whose [`Router::route`] runs in the caller's task rather than an actor with a
//! mailbox: a request crosses a thread only where real work is, at a replica. Parallel branches
//! run at the same time because the Flow polls their routes concurrently (see `flow.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::dispatch::DispatchError;
use crate::doc::DocList;
use crate::graph::{DeploymentSpec, ExecutorSpec, NodeSpec, Polling, PollingKind};
use crate::query::Query;
use crate::reduce;
use crate::request::{Part, Request};
use crate::shard::{Shard, ShardSpec, StartError};

/// A running Flow node (or a whole Deployment).
pub struct Router {
    name: Arc<str>,
    shards: Vec<Shard>,
    polling: Polling,
    uses_before: Option<Shard>,
    uses_after: Option<Shard>,
    reduce: bool,
    when: Option<Query>,
    next_shard: AtomicUsize,
}

impl Router {
    /// Starts the node's shards (and its `uses_before`/`uses_after` Executors).
    pub fn start(node: &NodeSpec) -> Result<Router, StartError> {
        let d = &node.deployment;
        if let Some(remote) = &d.remote {
            return Ok(Router {
                name: d.name.clone(),
                shards: vec![Shard::remote(
                    d.name.clone(),
                    remote.replicas.clone(),
                    remote.per_replica,
                    d.queue,
                )],
                polling: d.polling.clone(),
                uses_before: None,
                uses_after: None,
                reduce: d.reduce,
                when: node.when.clone(),
                next_shard: AtomicUsize::new(0),
            });
        }
        let shards = (0..d.shards)
            .map(|s| {
                Shard::start(ShardSpec {
                    name: d.shard_name(s),
                    factory: d.executor.factory.clone(),
                    uses_with: d.executor.uses_with.clone(),
                    contexts: d.contexts(s),
                    queue: d.queue,
                    restart: d.restart,
                    raft: d.raft_spec(s),
                    batching: d.batching_table(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let helper = |role: &str, e: &Option<ExecutorSpec>| {
            e.as_ref().map(|e| start_helper(d, role, e)).transpose()
        };
        Ok(Router {
            name: d.name.clone(),
            uses_before: helper("uses_before", &d.uses_before)?,
            uses_after: helper("uses_after", &d.uses_after)?,
            shards,
            polling: d.polling.clone(),
            reduce: d.reduce,
            when: node.when.clone(),
            next_shard: AtomicUsize::new(0),
        })
    }

    /// The node's name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The node's shards.
    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    /// Runs the node on the parts its predecessors produced (one per `needs`). Its Executors
    /// (`uses_before`, the shards, `uses_after`; remote ones too, as Jina's gateway does) see
    /// the parameters meant for this node (see `target.rs`); the result goes on with the
    /// parameters the request came with, whatever an Executor did to them.
    pub async fn route(&self, mut parts: Vec<Request>) -> Result<Request, DispatchError> {
        let Some(sent) = parts.first().map(|p| p.parameters.clone()) else {
            return Ok(Request::default());
        };
        if let Some(own) = crate::target::parameters_for(&sent, &self.name) {
            let own = Arc::new(own);
            for p in &mut parts {
                p.parameters = own.clone();
            }
        }
        let mut out = self.run(parts).await?;
        out.parameters = sent;
        Ok(out)
    }

    async fn run(&self, mut parts: Vec<Request>) -> Result<Request, DispatchError> {
        if let Some(q) = &self.when {
            for p in &mut parts {
                p.docs.retain(|d| q.matches(d));
            }
        }
        let req = if let Some(before) = &self.uses_before {
            let mut req = before
                .call(multipart(
                    parts.into_iter().map(|p| (part_name(&p), p)).collect(),
                ))
                .await?;
            // The shards get what uses_before made of the parts, not the parts again.
            req.docs_matrix.clear();
            req
        } else if parts.len() == 1 {
            parts.pop().unwrap_or_default()
        } else if self.reduce {
            reduced(parts)
        } else {
            multipart(parts.into_iter().map(|p| (part_name(&p), p)).collect())
        };
        self.poll(req).await
    }

    /// What a node that a request's `target_executor` leaves out hands on, no Executor called:
    /// its one part, or its parts reduced by doc id. (Jina's gateway hands on whichever part
    /// arrived last; a merge gives the same answer every time and loses no doc, and a join
    /// without reduce would repeat the docs every branch carried through.)
    pub fn pass(&self, mut parts: Vec<Request>) -> Request {
        if parts.len() > 1 {
            reduced(parts)
        } else {
            parts.pop().unwrap_or_default()
        }
    }

    async fn poll(&self, req: Request) -> Result<Request, DispatchError> {
        let n = self.shards.len();
        if n == 1 {
            return self.shards[0].call(req).await;
        }
        match self.polling.of(&req.endpoint) {
            PollingKind::Any => {
                let i = self.next_shard.fetch_add(1, Ordering::Relaxed) % n;
                self.shards[i].call(req).await
            }
            PollingKind::All => {
                let mut copies: Vec<Request> =
                    (1..n).map(|_| req.with_docs(req.docs.clone())).collect();
                copies.push(req);
                let calls = self.shards.iter().zip(copies).map(|(s, r)| s.call(r));
                let results = futures::future::join_all(calls).await;
                let mut parts = Vec::with_capacity(n);
                for (shard, r) in self.shards.iter().zip(results) {
                    // A part is named by its shard in `docs_map`.
                    parts.push((shard.dispatch().name().clone(), r?));
                }
                if let Some(after) = &self.uses_after {
                    return after.call(multipart(parts)).await;
                }
                let parts: Vec<Request> = parts.into_iter().map(|(_, r)| r).collect();
                Ok(if self.reduce {
                    reduced(parts)
                } else {
                    concatenated(parts)
                })
            }
        }
    }

    /// Stops every shard after its in-flight requests.
    pub fn close(&mut self) {
        for s in &mut self.shards {
            s.close();
        }
        for s in self
            .uses_before
            .iter_mut()
            .chain(self.uses_after.iter_mut())
        {
            s.close();
        }
    }
}

fn start_helper(d: &DeploymentSpec, role: &str, e: &ExecutorSpec) -> Result<Shard, StartError> {
    let name: Arc<str> = format!("{}/{role}", d.name).into();
    let mut ctx = crate::executor::Context::new(&name, 0, 1, 0, 1);
    ctx.workspace = d.workspace.clone();
    ctx.env = d.env.clone();
    Shard::start(ShardSpec {
        name,
        factory: e.factory.clone(),
        uses_with: e.uses_with.clone(),
        contexts: vec![ctx],
        queue: d.queue,
        restart: d.restart,
        raft: None,
        batching: std::sync::Arc::new(crate::graph::declared_batching(e)),
    })
}

/// The part's name for `docs_map`: the last replica that handled it, as Jina keys it by the last
/// route's Executor.
fn part_name(r: &Request) -> Arc<str> {
    r.routes
        .last()
        .cloned()
        .unwrap_or_else(|| Arc::from("gateway"))
}

/// Header, parameters and merged results of several parts, around `docs`.
fn merged_envelope(parts: &mut [Request], docs: DocList) -> Request {
    let mut base = std::mem::take(&mut parts[0]);
    for p in parts.iter_mut().skip(1) {
        reduce::merge_results(&mut base.results, std::mem::take(&mut p.results));
        for r in p.routes.drain(..) {
            if !base.routes.contains(&r) {
                base.routes.push(r);
            }
        }
    }
    base.docs = docs;
    base
}

/// The parts reduced by doc id into one request.
pub(crate) fn reduced(mut parts: Vec<Request>) -> Request {
    let lists: Vec<DocList> = parts
        .iter_mut()
        .map(|p| std::mem::take(&mut p.docs))
        .collect();
    merged_envelope(&mut parts, reduce::reduce(lists))
}

/// The parts' docs one after the other, without reduce.
fn concatenated(mut parts: Vec<Request>) -> Request {
    let docs = parts
        .iter_mut()
        .flat_map(|p| std::mem::take(&mut p.docs))
        .collect();
    merged_envelope(&mut parts, docs)
}

/// Several requests as one, the way a Jina worker receives `process_data`: the docs of every
/// part one after the other, and each part in `docs_matrix`, named by the last replica that
/// handled it.
pub fn join_parts(parts: Vec<Request>) -> Request {
    multipart(parts.into_iter().map(|p| (part_name(&p), p)).collect())
}

/// One request carrying every part: the docs concatenated, and each part in `docs_matrix`.
fn multipart(parts: Vec<(Arc<str>, Request)>) -> Request {
    let matrix = parts
        .iter()
        .map(|(from, p)| Part {
            from: from.clone(),
            docs: p.docs.clone(),
        })
        .collect();
    let mut req = concatenated(parts.into_iter().map(|(_, p)| p).collect());
    req.docs_matrix = matrix;
    req
}
