//! External Executors: the kernel's [`RemoteReplica`] over gRPC, calling a replica the way
//! Jina's gateway does (jina-protocol.md §2.3, §4.9):
//!
//! - one request: unary `process_single_data` with `endpoint` metadata;
//! - several parts (a join without reduce): `process_data` with every part;
//! - an Executor error comes back inside the response (`header.status`): not retried;
//! - UNAVAILABLE, DEADLINE_EXCEEDED, NOT_FOUND, and CANCELLED/UNKNOWN/INTERNAL (a connection
//!   reset) are retried on another replica by the kernel, as is Raft's "not the leader";
//! - `timeout_send` becomes the call's deadline.
//!
//! Calls run on flotilla's own network runtime, so a Flow with external Executors works the
//! same from async and from blocking code.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use flotilla_actors::dispatch::DispatchError;
use flotilla_actors::executor::ExecutorError;
use flotilla_actors::remote::{Done, RemoteError, RemoteReplica};
use flotilla_actors::request::{Part, Request};
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

use super::client::chain;
use super::codec;
use super::pb::jina::jina_data_request_rpc_client::JinaDataRequestRpcClient;
use super::pb::jina::jina_single_data_request_rpc_client::JinaSingleDataRequestRpcClient;
use super::pb::jina::{DataRequestListProto, DataRequestProto, RouteProto, status_proto};
use super::tls::Roots;

/// The runtime remote calls run on: two threads, started on first use.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("flotilla-net")
            .enable_all()
            .build()
            .expect("starting flotilla's network runtime")
    })
}

/// One replica of an external Executor.
pub struct GrpcReplica {
    address: Arc<str>,
    single: JinaSingleDataRequestRpcClient<Channel>,
    multi: JinaDataRequestRpcClient<Channel>,
    timeout: Option<Duration>,
}

/// Why an external Executor's address cannot be called.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressError {
    pub address: Arc<str>,
    pub reason: String,
    /// The failure is in setting up TLS (the trusted roots, the server name).
    pub tls: bool,
}

impl std::fmt::Display for AddressError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.tls {
            write!(f, "TLS to {}: {}", self.address, self.reason)
        } else {
            write!(f, "{}: {}", self.address, self.reason)
        }
    }
}

impl GrpcReplica {
    /// A replica at `host:port`, over TLS when `tls` (trusting the system's roots, or the
    /// file `GRPC_DEFAULT_SSL_ROOTS_FILE_PATH` names); the connection is made on first use (and
    /// re-made after a failure), so an Executor that is not up yet only fails the requests sent
    /// meanwhile.
    pub fn new(
        host: &str,
        port: u16,
        timeout: Option<Duration>,
        tls: bool,
    ) -> Result<GrpcReplica, AddressError> {
        let address: Arc<str> = format!("{host}:{port}").into();
        let scheme = if tls { "https" } else { "http" };
        let mut endpoint =
            Endpoint::from_shared(format!("{scheme}://{address}")).map_err(|e| AddressError {
                address: address.clone(),
                reason: e.to_string(),
                tls: false,
            })?;
        if tls {
            let tls_error = |reason: String| AddressError {
                address: address.clone(),
                reason,
                tls: true,
            };
            let config = Roots::System
                .config(host)
                .map_err(|e| tls_error(e.to_string()))?;
            endpoint = endpoint
                .tls_config(config)
                .map_err(|e| tls_error(chain(&e)))?;
        }
        let endpoint = endpoint
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(3))
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_while_idle(true);
        let _enter = runtime().enter();
        let channel = endpoint.connect_lazy();
        Ok(GrpcReplica {
            address,
            single: JinaSingleDataRequestRpcClient::new(channel.clone())
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(usize::MAX),
            multi: JinaDataRequestRpcClient::new(channel)
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(usize::MAX),
            timeout,
        })
    }
}

impl RemoteReplica for GrpcReplica {
    fn address(&self) -> &Arc<str> {
        &self.address
    }

    fn send(&self, request: Request, done: Done) {
        let single = self.single.clone();
        let multi = self.multi.clone();
        let address = self.address.clone();
        let timeout = self.timeout;
        runtime().spawn(async move {
            done(call(single, multi, address, timeout, request).await);
        });
    }
}

fn with_metadata<T>(msg: T, endpoint: &str, timeout: Option<Duration>) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if let Ok(v) = endpoint.parse() {
        r.metadata_mut().insert("endpoint", v);
    }
    if let Some(t) = timeout {
        r.set_timeout(t);
    }
    r
}

/// The parts of a join without reduce, one request each, named by where they came from.
fn parts_of(req: &Request) -> DataRequestListProto {
    let requests = req
        .docs_matrix
        .iter()
        .map(|Part { from, docs }| {
            let mut part = req.with_docs(docs.clone());
            part.routes.clear();
            let mut p = codec::request_to_proto(&part);
            p.routes = vec![RouteProto {
                executor: from.to_string(),
                ..RouteProto::default()
            }];
            p
        })
        .collect();
    DataRequestListProto { requests }
}

async fn call(
    mut single: JinaSingleDataRequestRpcClient<Channel>,
    mut multi: JinaDataRequestRpcClient<Channel>,
    address: Arc<str>,
    timeout: Option<Duration>,
    request: Request,
) -> Result<Request, RemoteError> {
    let endpoint = request.endpoint.clone();
    let sent = if request.docs_matrix.is_empty() {
        let msg = with_metadata(codec::request_to_proto(&request), &endpoint, timeout);
        single.process_single_data(msg).await
    } else {
        let msg = with_metadata(parts_of(&request), &endpoint, timeout);
        multi.process_data(msg).await
    };
    match sent {
        Ok(resp) => answer(&address, request, resp.into_inner()),
        Err(status) => {
            // tonic reports its own client-side deadline as CANCELLED "Timeout expired".
            let code = match status.code() {
                Code::Cancelled if status.message().contains("Timeout expired") => {
                    Code::DeadlineExceeded
                }
                code => code,
            };
            let retry = matches!(
                code,
                Code::Unavailable
                    | Code::DeadlineExceeded
                    | Code::NotFound
                    | Code::Cancelled
                    | Code::Unknown
                    | Code::Internal
            ) || status.message().contains("not the leader");
            Err(RemoteError {
                error: DispatchError::Unavailable {
                    replica: address,
                    message: format!("{code:?}: {}", status.message()),
                },
                retry,
                request: Some(Box::new(request)),
            })
        }
    }
}

/// The remote's response: its docs and results, or the Executor error its header carries.
fn answer(
    address: &Arc<str>,
    sent: Request,
    resp: DataRequestProto,
) -> Result<Request, RemoteError> {
    let failed = resp
        .header
        .as_ref()
        .and_then(|h| h.status.as_ref())
        .filter(|s| s.code == status_proto::StatusCode::Error as i32);
    if let Some(status) = failed {
        let (name, message, class) = match &status.exception {
            Some(e) => (
                e.name.clone(),
                e.args.join(", "),
                Some(e.executor.as_str()).filter(|c| !c.is_empty()),
            ),
            None => ("ExecutorError".to_owned(), status.description.clone(), None),
        };
        let class = class.map(Arc::from);
        // The remote answers with the request, docs as its handler left them (Jina's error
        // model); docs that do not decode leave the error without docs.
        let docs = codec::request_from_proto(resp)
            .ok()
            .map(|r| Arc::new(r.docs));
        return Err(RemoteError {
            error: DispatchError::Executor {
                replica: address.clone(),
                error: ExecutorError::named(name, message),
                class,
                docs,
            },
            retry: false,
            request: None,
        });
    }
    match codec::request_from_proto(resp) {
        Ok(mut r) => {
            // Keep the request's own header and route; add the replica that served it.
            r.id = sent.id;
            r.endpoint = sent.endpoint;
            r.parameters = sent.parameters;
            let mut routes = sent.routes;
            routes.push(address.clone());
            r.routes = routes;
            Ok(r)
        }
        Err(e) => Err(RemoteError {
            error: DispatchError::executor(
                address.clone(),
                ExecutorError::named("ValueError", format!("undecodable response: {e}")),
            ),
            retry: false,
            request: None,
        }),
    }
}
