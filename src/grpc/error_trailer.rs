//! Jina's `is-error` trailer on unary data calls (jina-protocol.md §2.6–2.7).
//!
//! A Jina worker answers a request that failed inside its Executor with gRPC OK, the error in
//! `header.status`, and the trailing metadata `is-error: true`. A Jina gateway reads the trailer,
//! not the header, to stop the request's chain there: without it, the Executors after a failed
//! flotilla Executor would still run. tonic sets no custom trailers on a successful unary call,
//! so a handler marks its response with [`IsError`] (an extension, never sent) and
//! [`ErrorTrailerLayer`] adds the trailer beside the body's own `grpc-status`.

use futures::TryFutureExt;
use futures::future::MapOk;
use http_body_util::BodyExt;
use tonic::body::Body;
use tonic::codegen::http::{self, HeaderMap, HeaderValue};
use tonic::codegen::{Context, Poll, Service};

use super::pb::jina::DataRequestProto;
use super::pb::jina::status_proto::StatusCode;

/// The mark of a response whose request failed inside an Executor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IsError;

/// `reply` as a unary response, marked for the trailer when its header carries an error.
pub fn unary_reply(reply: DataRequestProto) -> tonic::Response<DataRequestProto> {
    let failed = reply
        .header
        .as_ref()
        .and_then(|h| h.status.as_ref())
        .is_some_and(|s| s.code == StatusCode::Error as i32);
    let mut response = tonic::Response::new(reply);
    if failed {
        response.extensions_mut().insert(IsError);
    }
    response
}

/// Wraps a server's routes so that responses marked [`IsError`] end with `is-error: true`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ErrorTrailerLayer;

impl<S> tower_layer::Layer<S> for ErrorTrailerLayer {
    type Service = ErrorTrailer<S>;

    fn layer(&self, inner: S) -> ErrorTrailer<S> {
        ErrorTrailer { inner }
    }
}

/// The service [`ErrorTrailerLayer`] makes.
#[derive(Clone, Debug)]
pub struct ErrorTrailer<S> {
    inner: S,
}

type Reply = http::Response<Body>;

impl<S, R> Service<R> for ErrorTrailer<S>
where
    S: Service<R, Response = Reply>,
{
    type Response = Reply;
    type Error = S::Error;
    type Future = MapOk<S::Future, fn(Reply) -> Reply>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.inner.call(request).map_ok(with_trailer)
    }
}

/// Adds `is-error: true` to the trailers of a marked response; others pass as they are.
fn with_trailer(mut reply: Reply) -> Reply {
    if reply.extensions_mut().remove::<IsError>().is_none() {
        return reply;
    }
    let (parts, body) = reply.into_parts();
    let mut trailers = HeaderMap::with_capacity(1);
    trailers.insert("is-error", HeaderValue::from_static("true"));
    let body = body.with_trailers(std::future::ready(Some(Ok(trailers))));
    http::Response::from_parts(parts, Body::new(body))
}
