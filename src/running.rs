//! A running Flow or Deployment: post requests, then close.

use flotilla_actors::doc::DocList;
use flotilla_actors::flow::{PostOptions, RunningFlow};
use flotilla_actors::graph::Graph;
use flotilla_actors::request::Request;

use crate::error::Error;

/// A started Flow (a Deployment is a Flow of one Executor). Dropping it stops it the way
/// [`Running::close`] does.
pub struct Running {
    flow: RunningFlow,
    graph: Graph,
}

impl Running {
    pub(crate) fn start(graph: Graph) -> Result<Running, Error> {
        let flow = RunningFlow::start(&graph)?;
        Ok(Running { flow, graph })
    }

    /// Sends `docs` to `endpoint` in requests of 100 docs (Jina's default `request_size`) and
    /// returns the resulting docs in input order.
    pub async fn post(&self, endpoint: &str, docs: impl Into<DocList>) -> Result<DocList, Error> {
        self.post_with(endpoint, docs, &PostOptions::default())
            .await
    }

    /// [`Running::post`] with a request size, parameters and prefetch of your choice.
    pub async fn post_with(
        &self,
        endpoint: &str,
        docs: impl Into<DocList>,
        opts: &PostOptions,
    ) -> Result<DocList, Error> {
        Ok(self.flow.post(endpoint, docs.into(), opts).await?)
    }

    /// [`Running::post`] for code that is not async: blocks the calling thread.
    pub fn post_blocking(
        &self,
        endpoint: &str,
        docs: impl Into<DocList>,
    ) -> Result<DocList, Error> {
        futures::executor::block_on(self.post(endpoint, docs))
    }

    /// Runs one request as it is (header, parameters, docs) and returns the response.
    pub async fn call(&self, req: Request) -> Result<Request, Error> {
        Ok(self.flow.call(req).await?)
    }

    /// The validated graph this Flow runs.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The kernel's running Flow.
    pub fn kernel(&self) -> &RunningFlow {
        &self.flow
    }

    /// Stops taking requests, lets in-flight ones finish, stops every replica. Blocks.
    pub fn close(mut self) {
        self.flow.close();
    }
}
