//! A running Flow: a router per node of a validated [`Graph`], and the request path through it.
//!
//! For each request every node waits for all of its `needs`, then routes; nodes whose inputs
//! are ready run at the same time, each on its own replicas. A node's output goes to each of its
//! successors: copied for all but the last one, which takes it. The nodes connected to the end
//! gateway are reduced into the answer. A Deployment is a Flow of one node.

use std::sync::Arc;

use futures::channel::oneshot;
use futures::future::{BoxFuture, FutureExt};
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::dispatch::DispatchError;
use crate::doc::DocList;
use crate::graph::{Graph, Source};
use crate::request::{Params, Request};
use crate::router::{Router, reduced};
use crate::shard::StartError;
use crate::target::TargetExecutor;

/// How a post is split and sent.
#[derive(Clone, Debug)]
pub struct PostOptions {
    /// Docs per request; 0 sends them all in one request. Jina's default is 100.
    pub request_size: usize,
    pub parameters: Params,
    /// Requests in flight at once for one post (Jina's `prefetch`).
    pub prefetch: usize,
    /// Only the nodes whose name this regex matches run the requests (Jina's
    /// `target_executor`); `None`: every node.
    pub target_executor: Option<String>,
}

impl Default for PostOptions {
    fn default() -> Self {
        PostOptions {
            request_size: 100,
            parameters: Params::new(),
            prefetch: 1000,
            target_executor: None,
        }
    }
}

type NodeResult = Result<Request, DispatchError>;

/// A running Flow.
pub struct RunningFlow {
    routers: Vec<Router>,
    needs: Vec<Vec<Source>>,
    /// For each node, the successors its output goes to (node indices; `None` = the answer).
    consumers: Vec<Vec<Option<usize>>>,
    outputs: Vec<usize>,
    /// Re-sort the answer into input order (Jina does so whenever a Flow has a `when`).
    keep_input_order: bool,
    /// The last `target_executor` compiled: a post sends the same one with every request.
    last_target: std::sync::Mutex<Option<Arc<TargetExecutor>>>,
}

impl RunningFlow {
    /// Starts every node; on an error, stops what was started.
    pub fn start(graph: &Graph) -> Result<RunningFlow, StartError> {
        let mut routers = Vec::with_capacity(graph.nodes.len());
        for node in &graph.nodes {
            match Router::start(node) {
                Ok(r) => routers.push(r),
                Err(e) => {
                    for r in &mut routers {
                        r.close();
                    }
                    return Err(e);
                }
            }
        }
        let needs: Vec<Vec<Source>> = graph.nodes.iter().map(|n| n.needs.clone()).collect();
        let mut consumers = vec![Vec::new(); graph.nodes.len()];
        for (i, n) in needs.iter().enumerate() {
            for s in n {
                if let Source::Node(j) = s {
                    consumers[*j].push(Some(i));
                }
            }
        }
        for &o in &graph.outputs {
            consumers[o].push(None);
        }
        Ok(RunningFlow {
            routers,
            needs,
            consumers,
            outputs: graph.outputs.clone(),
            keep_input_order: graph.nodes.iter().any(|n| n.when.is_some()),
            last_target: std::sync::Mutex::new(None),
        })
    }

    /// The routers, in the graph's order.
    pub fn routers(&self) -> &[Router] {
        &self.routers
    }

    /// Runs one request through the Flow (only through the nodes its `target_executor`
    /// names, if it names some).
    pub async fn call(&self, mut req: Request) -> NodeResult {
        let _in_flight = crate::linger::InFlight::call();
        let target = match req.target_executor.take() {
            Some(pattern) => Some(self.target(&pattern)?),
            None => None,
        };
        let runs = |router: &Router| target.as_ref().is_none_or(|t| t.matches(router.name()));
        if self.routers.len() == 1 {
            let router = &self.routers[0];
            return if runs(router) {
                router.route(vec![req]).await
            } else {
                Ok(req)
            };
        }
        let order = self.keep_input_order.then(|| input_order(&req.docs));
        let n = self.routers.len();
        // One channel per edge into a node; the answer collects the outputs.
        let mut inboxes: Vec<Vec<oneshot::Receiver<NodeResult>>> =
            (0..n).map(|_| Vec::new()).collect();
        let mut outboxes: Vec<Vec<oneshot::Sender<NodeResult>>> =
            (0..n).map(|_| Vec::new()).collect();
        let mut answer = Vec::with_capacity(self.outputs.len());
        let mut from_gateway: Vec<oneshot::Sender<NodeResult>> = Vec::new();
        for (i, needs) in self.needs.iter().enumerate() {
            for s in needs {
                let (tx, rx) = oneshot::channel();
                inboxes[i].push(rx);
                match s {
                    Source::Gateway => from_gateway.push(tx),
                    Source::Node(j) => outboxes[*j].push(tx),
                }
            }
        }
        for (j, cons) in self.consumers.iter().enumerate() {
            // Outputs go last so that the answer takes the node's result without a copy.
            if cons.iter().any(Option::is_none) {
                let (tx, rx) = oneshot::channel();
                outboxes[j].push(tx);
                answer.push(rx);
            }
        }
        send_all(from_gateway, Ok(req));
        let nodes: Vec<BoxFuture<'_, ()>> = self
            .routers
            .iter()
            .zip(inboxes)
            .zip(outboxes)
            .map(|((router, inbox), outbox)| {
                async move {
                    let mut parts = Vec::with_capacity(inbox.len());
                    let mut failed = None;
                    for rx in inbox {
                        match rx.await {
                            Ok(Ok(r)) => parts.push(r),
                            Ok(Err(e)) => {
                                failed.get_or_insert(e);
                            }
                            Err(_) => {
                                failed.get_or_insert(DispatchError::Closed {
                                    shard: router.name().clone(),
                                });
                            }
                        }
                    }
                    let out = match failed {
                        Some(e) => Err(e),
                        None if runs(router) => router.route(parts).await,
                        None => Ok(router.pass(parts)),
                    };
                    send_all(outbox, out);
                }
                .boxed()
            })
            .collect();
        let run = futures::future::join_all(nodes);
        let collect = async {
            let mut parts = Vec::with_capacity(answer.len());
            for rx in answer {
                parts.push(rx.await.unwrap_or_else(|_| {
                    Err(DispatchError::Closed {
                        shard: Arc::from("flow"),
                    })
                })?);
            }
            Ok::<_, DispatchError>(parts)
        };
        let (_, parts) = futures::future::join(run, collect).await;
        let mut parts = parts?;
        let mut out = if parts.len() == 1 {
            parts.pop().unwrap_or_default()
        } else {
            reduced(parts)
        };
        if let Some(order) = order {
            sort_into(&mut out.docs, &order);
        }
        Ok(out)
    }

    /// `pattern` compiled, or the last one compiled if it is the same.
    fn target(&self, pattern: &str) -> Result<Arc<TargetExecutor>, DispatchError> {
        let mut last = self
            .last_target
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(t) = last.as_ref().filter(|t| t.pattern() == pattern) {
            return Ok(t.clone());
        }
        let t = Arc::new(TargetExecutor::new(pattern)?);
        *last = Some(t.clone());
        Ok(t)
    }

    /// Sends `docs` to `endpoint`, split into requests of `request_size` docs that run
    /// concurrently, and returns every resulting doc in input order.
    pub async fn post(
        &self,
        endpoint: &str,
        docs: DocList,
        opts: &PostOptions,
    ) -> Result<DocList, DispatchError> {
        let endpoint: Arc<str> = Arc::from(endpoint);
        let parameters = Arc::new(opts.parameters.clone());
        let target: Option<Arc<str>> = opts.target_executor.as_deref().map(Arc::from);
        let size = if opts.request_size == 0 {
            docs.len().max(1)
        } else {
            opts.request_size
        };
        let mut batches: Vec<DocList> = Vec::with_capacity(docs.len().div_ceil(size).max(1));
        let mut docs = docs.into_vec().into_iter().peekable();
        if docs.peek().is_none() {
            batches.push(DocList::new());
        }
        while docs.peek().is_some() {
            batches.push(docs.by_ref().take(size).collect());
        }
        let results: Vec<Request> = stream::iter(batches.into_iter().map(|b| {
            let mut req = Request::new(endpoint.clone(), b);
            req.parameters = parameters.clone();
            req.target_executor = target.clone();
            self.call(req)
        }))
        .buffered(opts.prefetch.max(1))
        .try_collect()
        .await?;
        let mut out = DocList::with_capacity(results.iter().map(|r| r.docs.len()).sum());
        for r in results {
            out.extend(r.docs);
        }
        Ok(out)
    }

    /// Stops every node after its in-flight requests. Blocks; idempotent.
    pub fn close(&mut self) {
        for r in &mut self.routers {
            r.close();
        }
    }
}

impl Drop for RunningFlow {
    fn drop(&mut self) {
        self.close();
    }
}

fn send_all(outbox: Vec<oneshot::Sender<NodeResult>>, out: NodeResult) {
    let mut outbox = outbox;
    let Some(last) = outbox.pop() else {
        return;
    };
    for tx in outbox {
        let _ = tx.send(out.clone());
    }
    let _ = last.send(out);
}

fn input_order(docs: &DocList) -> std::collections::HashMap<String, usize> {
    docs.iter()
        .enumerate()
        .map(|(i, d)| (d.id().to_owned(), i))
        .collect()
}

/// Sorts docs into the order their ids had in the input; unknown ids go last, in their order.
fn sort_into(docs: &mut DocList, order: &std::collections::HashMap<String, usize>) {
    docs.sort_by_key(|d| order.get(d.id()).copied().unwrap_or(usize::MAX));
}
