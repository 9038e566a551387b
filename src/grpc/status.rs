//! How a failed request is reported on the wire, the way Jina reports it.
//!
//! An error inside an Executor (or a panic) is not a transport error: the response carries the
//! request back with `header.status = ERROR` and the exception (Jina's client raises `BadServer`
//! on it). A shard that cannot take the request (closed, no replica, over capacity) or a remote
//! replica that cannot be reached is a gRPC status instead, as in Jina.

use flotilla_actors::dispatch::DispatchError;
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

/// The Deployment a replica name (`indexer/rep-0`, `indexer/shard-1/rep-0`) belongs to.
fn deployment_of(replica: &str) -> &str {
    replica.split('/').next().unwrap_or(replica)
}

/// Maps a request's failure onto Jina's error model.
pub fn failure(e: &DispatchError) -> Failure {
    match e {
        DispatchError::Executor { replica, error } => Failure::InResponse(executor_status(
            &error.name,
            &error.message,
            deployment_of(replica),
        )),
        DispatchError::Panicked { replica, message } => {
            Failure::InResponse(executor_status("Panic", message, deployment_of(replica)))
        }
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
