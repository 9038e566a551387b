//! How a failed request is reported on the wire, the way Jina reports it.
//!
//! An error inside an Executor (or a panic) is not a transport error: the response carries the
//! request back with `header.status = ERROR` and the exception (Jina's client raises `BadServer`
//! on it). A shard that cannot take the request (closed, no replica, over capacity) or a remote
//! replica that cannot be reached is a gRPC status instead, as in Jina.

use flotilla_actors::dispatch::DispatchError;
use flotilla_actors::graph::Graph;
use tonic::{Code, Status};

use super::pb::jina::{StatusProto, status_proto};

/// An Executor-level error as Jina's `StatusProto`.
pub fn executor_status(name: &str, message: &str, executor: &str) -> StatusProto {
    StatusProto {
        code: status_proto::StatusCode::Error as i32,
        description: format!("{name}('{message}')"),
        exception: Some(status_proto::ExceptionProto {
            name: name.to_owned(),
            args: vec![message.to_owned()],
            stacks: Vec::new(),
            executor: executor.to_owned(),
        }),
    }
}

/// What a failed request becomes: a Jina error status inside a response, or a gRPC status.
pub enum Failure {
    InResponse(StatusProto),
    Transport(Status),
}

/// What Jina's `ExceptionProto.executor` says for an error of `replica`: the class of the
/// Executor that raised it (Jina sends `executor.__class__.__name__`), here the name it was
/// registered under (`uses`). `indexer/rep-0` and `indexer/shard-1/rep-0` are the node's
/// Executor, `indexer/uses_before/rep-0` its `uses_before` (the longest node name that prefixes
/// the replica's wins, as node names may hold `/`). A replica the graph does not run itself (a
/// remote one, named by its address) is named as it is.
pub fn executor_class<'a>(graph: &'a Graph, replica: &'a str) -> &'a str {
    let found = graph
        .nodes
        .iter()
        .map(|n| &n.deployment)
        .filter_map(|d| Some((d, replica.strip_prefix(&*d.name)?.strip_prefix('/')?)))
        .max_by_key(|(d, _)| d.name.len());
    let Some((d, rest)) = found else {
        return replica;
    };
    let spec = match rest.split('/').next() {
        Some("uses_before") => d.uses_before.as_ref(),
        Some("uses_after") => d.uses_after.as_ref(),
        _ if d.remote.is_some() => None,
        _ => Some(&d.executor),
    };
    spec.map_or(replica, |e| e.uses.as_str())
}

/// Maps a request's failure onto Jina's error model; `graph` names the failing Executor.
pub fn failure(e: &DispatchError, graph: &Graph) -> Failure {
    match e {
        DispatchError::Executor {
            replica,
            error,
            class,
            ..
        } => Failure::InResponse(executor_status(
            &error.name,
            &error.message,
            class
                .as_deref()
                .unwrap_or_else(|| executor_class(graph, replica)),
        )),
        DispatchError::Panicked {
            replica, message, ..
        } => Failure::InResponse(executor_status(
            "Panic",
            message,
            executor_class(graph, replica),
        )),
        DispatchError::Busy { .. } => Failure::Transport(Status::resource_exhausted(e.to_string())),
        DispatchError::Closed { .. }
        | DispatchError::NoReplica { .. }
        | DispatchError::Unavailable { .. } => {
            Failure::Transport(Status::unavailable(e.to_string()))
        }
        DispatchError::BadRequest { .. } => {
            Failure::Transport(Status::invalid_argument(e.to_string()))
        }
    }
}

/// A transport failure as a Jina error status, for streams, where one failed request must not
/// end the stream of the others.
pub fn as_response_status(s: &Status) -> StatusProto {
    let name = match s.code() {
        Code::ResourceExhausted => "ResourceExhausted",
        Code::Unavailable => "ConnectionError",
        Code::InvalidArgument => "ValueError",
        _ => "RuntimeError",
    };
    executor_status(name, s.message(), "gateway")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Exec, Flow};
    use flotilla_actors::executor::ExecutorError;

    #[test]
    fn an_error_names_the_class_of_the_executor_that_raised_it() {
        let graph = Flow::new()
            .add(
                Exec::new()
                    .name("idx")
                    .uses("ExactNNIndexer")
                    .uses_with(serde_json::json!({"dim": 4}))
                    .shards(2)
                    .uses_before("Echo")
                    .uses_after("MatchMerger"),
            )
            .add(
                Exec::new()
                    .name("far")
                    .external_at(vec!["127.0.0.1:1".into()]),
            )
            .add(Exec::new().name("idx/echo").uses("Echo"))
            .graph()
            .expect("a valid Flow");
        let class = |replica| executor_class(&graph, replica);
        assert_eq!(class("idx/rep-0"), "ExactNNIndexer");
        assert_eq!(class("idx/shard-1/rep-0"), "ExactNNIndexer");
        assert_eq!(class("idx/uses_before/rep-0"), "Echo");
        assert_eq!(class("idx/uses_after/rep-0"), "MatchMerger");
        // A node whose name holds `/`: the longest name wins.
        assert_eq!(class("idx/echo/rep-0"), "Echo");
        // Not run here: named as they are.
        assert_eq!(class("far/rep-0"), "far/rep-0");
        assert_eq!(class("127.0.0.1:1"), "127.0.0.1:1");
        // A remote Executor that named its class is named by it.
        let named = |class: Option<&str>| {
            let e = DispatchError::Executor {
                replica: "127.0.0.1:1".into(),
                error: ExecutorError::named("ValueError", "no"),
                class: class.map(Into::into),
                docs: None,
            };
            match failure(&e, &graph) {
                Failure::InResponse(s) => s.exception.map(|x| x.executor),
                Failure::Transport(s) => panic!("not an Executor error: {s}"),
            }
        };
        assert_eq!(named(Some("Refuser")).as_deref(), Some("Refuser"));
        assert_eq!(named(None).as_deref(), Some("127.0.0.1:1"));
    }
}
