//! Jina's gRPC services over a running Flow: what a gateway serves to clients and what an
//! Executor server serves to a gateway (jina-protocol.md §1.4, §2).
//!
//! One [`JinaService`] implements every data and control service; its [`Role`] decides the two
//! places where gateway and Executor differ in Jina: the shape of `endpoint_discovery`, and the
//! request a `dry_run` sends.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;

use flotilla_actors::executor::DRY_RUN_ENDPOINT;
use flotilla_actors::flow::RunningFlow;
use flotilla_actors::request::Request as KRequest;
use flotilla_actors::router::join_parts;
use futures::future::BoxFuture;
use futures::stream::{FuturesOrdered, FuturesUnordered, Stream, StreamExt};
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use super::codec;
use super::error_trailer::unary_reply;
use super::pb::jina::{
    DataRequestListProto, DataRequestProto, EndpointsProto, HeaderProto, JinaInfoProto,
    StatusProto, data_request_proto, jina_data_request_rpc_server,
    jina_discover_endpoints_rpc_server, jina_gateway_dry_run_rpc_server, jina_info_rpc_server,
    jina_rpc_server, jina_single_data_request_rpc_server,
};
use super::schema;
use super::status::{Failure, as_response_status, executor_status, failure};
use crate::Running;

/// Whether the server faces clients (a gateway) or a gateway (an Executor server).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Gateway,
    Executor,
}

/// The protocol version flotilla speaks, as `_status` reports it.
pub const JINA_PROTOCOL: &str = "3.34.0";

struct Inner {
    running: Arc<Running>,
    role: Role,
    /// Requests in flight per `Call` stream unless the client sends `__prefetch__`.
    prefetch: usize,
    /// Bounds unary requests in flight; past it a unary call gets RESOURCE_EXHAUSTED.
    unary: Arc<Semaphore>,
    max_unary: usize,
    endpoints: Vec<String>,
    write_endpoints: Vec<String>,
}

impl Inner {
    /// A decoded request as this server runs it: an Executor server ignores
    /// `target_executor`, as a Jina worker does (the gateway in front of it chose already).
    fn as_served(&self, req: &mut KRequest) {
        if self.role == Role::Executor {
            req.target_executor = None;
        }
    }
}

/// The services, cheap to clone (one per tonic service).
#[derive(Clone)]
pub struct JinaService {
    inner: Arc<Inner>,
}

impl JinaService {
    /// Serves `running` in `role`, with `prefetch` requests in flight per stream and at most
    /// `max_unary` unary requests in flight.
    pub fn new(running: Arc<Running>, role: Role, prefetch: usize, max_unary: usize) -> Self {
        let mut endpoints: Vec<String> = Vec::new();
        let mut write_endpoints: Vec<String> = Vec::new();
        for node in &running.graph().nodes {
            for e in node.deployment.executor.endpoints() {
                if e.write && !write_endpoints.contains(&e.name) {
                    write_endpoints.push(e.name.clone());
                }
                if !endpoints.contains(&e.name) {
                    endpoints.push(e.name);
                }
            }
        }
        endpoints.push(DRY_RUN_ENDPOINT.to_owned());
        JinaService {
            inner: Arc::new(Inner {
                running,
                role,
                prefetch: prefetch.max(1),
                unary: Arc::new(Semaphore::new(max_unary.max(1))),
                max_unary: max_unary.max(1),
                endpoints,
                write_endpoints,
            }),
        }
    }
}

fn flow(inner: &Inner) -> &RunningFlow {
    inner.running.kernel()
}

/// The endpoint of a request: the header's, else the `endpoint` metadata Jina's gateway sends.
fn endpoint_from(md: &MetadataMap) -> Option<String> {
    md.get("endpoint")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// A response that reports `status` for the request `header` named, with `docs` (Jina answers
/// an Executor error with the request, docs as the failing handler left them).
fn error_reply(
    header: Option<HeaderProto>,
    status: StatusProto,
    docs: Option<&flotilla_actors::doc::DocList>,
) -> DataRequestProto {
    let mut header = header.unwrap_or_default();
    header.status = Some(status);
    DataRequestProto {
        header: Some(header),
        data: Some(data_request_proto::DataContentProto {
            documents: Some(data_request_proto::data_content_proto::Documents::Docs(
                docs.map(codec::docs_to_proto).unwrap_or_default(),
            )),
        }),
        ..DataRequestProto::default()
    }
}

/// Decodes, runs and encodes one request. Executor errors come back inside the response;
/// transport-level failures as a gRPC status.
async fn run_one(
    inner: Arc<Inner>,
    proto: DataRequestProto,
    endpoint: Option<String>,
) -> Result<DataRequestProto, Failed> {
    let _received = flotilla_actors::linger::InFlight::received();
    let header = proto.header.clone();
    let mut req = match codec::request_from_proto(proto) {
        Ok(r) => r,
        Err(e) => {
            return Ok(error_reply(
                header,
                executor_status("ValueError", &e.to_string(), "gateway"),
                None,
            ));
        }
    };
    if req.endpoint.is_empty()
        && let Some(e) = endpoint
    {
        req.endpoint = e.into();
    }
    inner.as_served(&mut req);
    let result = flow(&inner).call(req).await;
    finish(&inner, header.clone(), result).map_err(|status| Failed { header, status })
}

/// A request that failed at the transport level, with the header that names it.
struct Failed {
    header: Option<HeaderProto>,
    status: Status,
}

fn finish(
    inner: &Inner,
    header: Option<HeaderProto>,
    result: Result<KRequest, flotilla_actors::dispatch::DispatchError>,
) -> Result<DataRequestProto, Status> {
    match result {
        Ok(r) => Ok(codec::request_to_proto(&r)),
        Err(e) => match failure(&e, inner.running.graph()) {
            Failure::InResponse(status) => Ok(error_reply(header, status, e.docs())),
            Failure::Transport(s) => Err(s),
        },
    }
}

/// Responses in the order requests came (`__results_in_order__`) or as they complete.
enum Pending<F: std::future::Future> {
    Ordered(FuturesOrdered<F>),
    Unordered(FuturesUnordered<F>),
}

impl<F: std::future::Future> Pending<F> {
    fn push(&mut self, f: F) {
        match self {
            Pending::Ordered(p) => p.push_back(f),
            Pending::Unordered(p) => p.push(f),
        }
    }

    fn len(&self) -> usize {
        match self {
            Pending::Ordered(p) => p.len(),
            Pending::Unordered(p) => p.len(),
        }
    }

    async fn next(&mut self) -> Option<F::Output> {
        match self {
            Pending::Ordered(p) => p.next().await,
            Pending::Unordered(p) => p.next().await,
        }
    }
}

type ResponseStream =
    Pin<Box<dyn Stream<Item = Result<DataRequestProto, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl jina_rpc_server::JinaRpc for JinaService {
    type CallStream = ResponseStream;

    async fn call(
        &self,
        request: Request<Streaming<DataRequestProto>>,
    ) -> Result<Response<Self::CallStream>, Status> {
        let md = request.metadata();
        let in_order = md
            .get("__results_in_order__")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let prefetch = md
            .get("__prefetch__")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&p| p > 0)
            .unwrap_or(self.inner.prefetch);
        let endpoint = endpoint_from(md);
        let mut inbound = request.into_inner();
        let inner = self.inner.clone();
        let (tx, rx) = mpsc::channel(prefetch.min(1024));
        tokio::spawn(async move {
            let mut pending: Pending<BoxFuture<'static, Result<DataRequestProto, Failed>>> =
                if in_order {
                    Pending::Ordered(FuturesOrdered::new())
                } else {
                    Pending::Unordered(FuturesUnordered::new())
                };
            let mut open = true;
            loop {
                tokio::select! {
                    msg = inbound.message(), if open && pending.len() < prefetch => match msg {
                        Ok(Some(p)) => pending.push(Box::pin(run_one(inner.clone(), p, endpoint.clone()))),
                        Ok(None) => open = false,
                        Err(status) => {
                            // A malformed or truncated stream: say so and stop reading it.
                            let _ = tx.send(Err(status)).await;
                            return;
                        }
                    },
                    Some(out) = pending.next(), if pending.len() > 0 => {
                        // One failed request must not end the stream of the others.
                        let out = out.or_else(|f| Ok(error_reply(f.header, as_response_status(&f.status), None)));
                        if tx.send(out).await.is_err() {
                            return; // the client went away
                        }
                    },
                    else => break,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

impl JinaService {
    /// Room for one more unary call, or RESOURCE_EXHAUSTED when `max_unary` are in flight.
    fn unary_permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Status> {
        self.inner.unary.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "{} unary requests are already in flight",
                self.inner.max_unary
            ))
        })
    }
}

#[tonic::async_trait]
impl jina_single_data_request_rpc_server::JinaSingleDataRequestRpc for JinaService {
    async fn process_single_data(
        &self,
        request: Request<DataRequestProto>,
    ) -> Result<Response<DataRequestProto>, Status> {
        let _permit = self.unary_permit()?;
        let endpoint = endpoint_from(request.metadata());
        run_one(self.inner.clone(), request.into_inner(), endpoint)
            .await
            .map(unary_reply)
            .map_err(|f| f.status)
    }
}

#[tonic::async_trait]
impl jina_data_request_rpc_server::JinaDataRequestRpc for JinaService {
    async fn process_data(
        &self,
        request: Request<DataRequestListProto>,
    ) -> Result<Response<DataRequestProto>, Status> {
        let _permit = self.unary_permit()?;
        let endpoint = endpoint_from(request.metadata());
        let list = request.into_inner().requests;
        let header = list.first().and_then(|r| r.header.clone());
        let mut parts = Vec::with_capacity(list.len());
        for p in list {
            match codec::request_from_proto(p) {
                Ok(r) => parts.push(r),
                Err(e) => {
                    let status = executor_status("ValueError", &e.to_string(), "gateway");
                    return Ok(unary_reply(error_reply(header, status, None)));
                }
            }
        }
        if parts.is_empty() {
            return Err(Status::invalid_argument(
                "process_data needs at least one request",
            ));
        }
        let mut req = if parts.len() == 1 {
            parts.pop().unwrap_or_default()
        } else {
            join_parts(parts)
        };
        if req.endpoint.is_empty()
            && let Some(e) = endpoint
        {
            req.endpoint = e.into();
        }
        self.inner.as_served(&mut req);
        let result = flow(&self.inner).call(req).await;
        finish(&self.inner, header, result).map(unary_reply)
    }
}

#[tonic::async_trait]
impl jina_discover_endpoints_rpc_server::JinaDiscoverEndpointsRpc for JinaService {
    async fn endpoint_discovery(&self, _: Request<()>) -> Result<Response<EndpointsProto>, Status> {
        let eps = self.inner.endpoints.iter().map(String::as_str);
        let schemas = match self.inner.role {
            Role::Executor => schema::executor_schemas(eps),
            Role::Gateway => schema::gateway_schemas(eps),
        };
        Ok(Response::new(EndpointsProto {
            endpoints: self.inner.endpoints.clone(),
            write_endpoints: self.inner.write_endpoints.clone(),
            schemas: Some(schemas),
        }))
    }
}

#[tonic::async_trait]
impl jina_gateway_dry_run_rpc_server::JinaGatewayDryRunRpc for JinaService {
    async fn dry_run(&self, _: Request<()>) -> Result<Response<StatusProto>, Status> {
        let req = KRequest::new(
            DRY_RUN_ENDPOINT,
            flotilla_actors::doc::DocList::from(flotilla_actors::doc::Doc::new()),
        );
        let status = match flow(&self.inner).call(req).await {
            Ok(_) => StatusProto::default(),
            Err(e) => match failure(&e, self.inner.running.graph()) {
                Failure::InResponse(s) => s,
                Failure::Transport(s) => as_response_status(&s),
            },
        };
        Ok(Response::new(status))
    }
}

#[tonic::async_trait]
impl jina_info_rpc_server::JinaInfoRpc for JinaService {
    async fn status(&self, _: Request<()>) -> Result<Response<JinaInfoProto>, Status> {
        let mut jina = BTreeMap::new();
        jina.insert("jina".to_owned(), JINA_PROTOCOL.to_owned());
        jina.insert("flotilla".to_owned(), env!("CARGO_PKG_VERSION").to_owned());
        jina.insert("docarray".to_owned(), "0.41.0".to_owned());
        jina.insert("proto-backend".to_owned(), "prost".to_owned());
        let envs = std::env::vars()
            .filter(|(k, _)| k.starts_with("JINA_"))
            .collect();
        Ok(Response::new(JinaInfoProto { jina, envs }))
    }
}
