//! The request that travels through a Flow: an endpoint, parameters and documents.

use std::sync::Arc;

use crate::doc::DocList;

/// Request parameters: a JSON map (Jina's `parameters`, a `google.protobuf.Struct` on the wire).
pub type Params = serde_json::Map<String, serde_json::Value>;

/// One part of a multi-part request: the docs one predecessor (or one shard) produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Part {
    /// The Executor (or shard) the part came from: the key of Jina's `docs_map`.
    pub from: Arc<str>,
    pub docs: DocList,
}

/// A request as an Executor handler sees it.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// The request id (`header.request_id`).
    pub id: String,
    /// The endpoint being called, such as `/index`.
    pub endpoint: Arc<str>,
    /// The parameters, shared between the copies of a request sent to several shards.
    pub parameters: Arc<Params>,
    /// The documents.
    pub docs: DocList,
    /// Jina's `docs_matrix` / `docs_map`: one entry per part when the request joins several
    /// predecessors without reduce, or when a `uses_before`/`uses_after` Executor gets every
    /// shard's result. Empty for a plain request.
    pub docs_matrix: Vec<Part>,
    /// Results Executors returned instead of documents, keyed by replica (`__results__`).
    pub results: Params,
    /// The replicas that handled the request, in order (`indexer/rep-0`, …).
    pub routes: Vec<Arc<str>>,
}

impl Request {
    /// A request for `endpoint` carrying `docs`, with a fresh id and no parameters.
    pub fn new(endpoint: impl Into<Arc<str>>, docs: DocList) -> Self {
        Request {
            id: crate::doc::fresh_id(),
            endpoint: endpoint.into(),
            docs,
            ..Request::default()
        }
    }

    /// The same request with these parameters.
    pub fn with_parameters(mut self, parameters: Params) -> Self {
        self.parameters = Arc::new(parameters);
        self
    }

    /// A parameter, if present.
    pub fn parameter(&self, key: &str) -> Option<&serde_json::Value> {
        self.parameters.get(key)
    }

    /// A copy with the same header and parameters and other docs: what is sent on to a branch or
    /// a shard.
    pub fn with_docs(&self, docs: DocList) -> Self {
        Request {
            id: self.id.clone(),
            endpoint: self.endpoint.clone(),
            parameters: self.parameters.clone(),
            docs,
            docs_matrix: Vec::new(),
            results: self.results.clone(),
            routes: self.routes.clone(),
        }
    }
}
