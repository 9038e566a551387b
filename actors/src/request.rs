//! The request that travels through a Flow: an endpoint, parameters and documents.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::doc::DocList;

/// Request parameters: a JSON map (Jina's `parameters`, a `google.protobuf.Struct` on the wire).
pub type Params = serde_json::Map<String, serde_json::Value>;

/// One part of a multi-part request: the docs one predecessor (or one shard) produced.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Part {
    /// The Executor (or shard) the part came from: the key of Jina's `docs_map`.
    pub from: Arc<str>,
    pub docs: DocList,
}

/// A request as an Executor handler sees it. It serializes (for a Raft log) with any serde
/// format; parameters and results travel as JSON text, so non-self-describing formats work.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Request {
    /// The request id (`header.request_id`).
    pub id: String,
    /// The endpoint being called, such as `/index`.
    pub endpoint: Arc<str>,
    /// The parameters, shared between the copies of a request sent to several shards.
    #[serde(with = "json_text")]
    pub parameters: Arc<Params>,
    /// The documents.
    pub docs: DocList,
    /// Jina's `docs_matrix` / `docs_map`: one entry per part when the request joins several
    /// predecessors without reduce, or when a `uses_before`/`uses_after` Executor gets every
    /// shard's result. Empty for a plain request.
    pub docs_matrix: Vec<Part>,
    /// Results Executors returned instead of documents, keyed by replica (`__results__`).
    #[serde(with = "json_text")]
    pub results: Params,
    /// The replicas that handled the request, in order (`indexer/rep-0`, …).
    pub routes: Vec<Arc<str>>,
    /// Jina's `header.target_executor`: a regex naming the Flow nodes that run the request (see
    /// `target.rs`). Read by the Flow when the request enters it; never logged.
    #[serde(skip)]
    pub target_executor: Option<Arc<str>>,
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
            target_executor: self.target_executor.clone(),
        }
    }
}

/// A JSON value as JSON text inside another serde format.
mod json_text {
    use serde::de::{DeserializeOwned, Error as _};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        let text = serde_json::to_string(v).map_err(serde::ser::Error::custom)?;
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, T: DeserializeOwned, D: Deserializer<'de>>(
        d: D,
    ) -> Result<T, D::Error> {
        let text = String::deserialize(d)?;
        serde_json::from_str(&text).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::{Doc, NdArray};

    #[test]
    fn a_request_round_trips_through_postcard() {
        let mut params = Params::new();
        params.insert("limit".into(), serde_json::json!(10));
        params.insert("nested".into(), serde_json::json!({"a": [1, 2.5, null]}));
        let mut req = Request::new(
            "/index",
            DocList::from(vec![
                Doc::with_id("a")
                    .with_text("hi")
                    .with_embedding(NdArray::from_f32(vec![1.0, 2.0]))
                    .with_tag("k", 5)
                    .with("blob", crate::doc::Value::Bytes(vec![1, 2, 3])),
            ]),
        )
        .with_parameters(params);
        req.routes.push("x/rep-0".into());
        let bytes = postcard::to_stdvec(&req).unwrap();
        let back: Request = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back.id, req.id);
        assert_eq!(back.endpoint, req.endpoint);
        assert_eq!(back.parameters, req.parameters);
        assert_eq!(back.docs, req.docs);
        assert_eq!(back.routes, req.routes);
    }
}
