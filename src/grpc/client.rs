//! A gRPC client for a Jina 3.x gateway — flotilla's or Jina's own: what Jina's Python
//! `Client(protocol='grpc')` does, in Rust (jina-protocol.md §2.1, §2.5).
//!
//! ```no_run
//! # async fn demo() -> Result<(), flotilla::grpc::client::ClientError> {
//! use flotilla::grpc::client::{Client, ClientPost};
//! use flotilla::Doc;
//!
//! let client = Client::connect("grpc://localhost:12345").await?;
//! let docs: Vec<Doc> = (0..1000).map(|i| Doc::text_doc(format!("doc {i}"))).collect();
//! let opts = ClientPost { results_in_order: true, progress: true, ..ClientPost::default() };
//! let out = client.post_with("/index", docs, &opts).await?;
//! assert_eq!(out.len(), 1000);
//! # Ok(())
//! # }
//! ```
//!
//! What it promises, as Jina's client does:
//! - One bidirectional `/jina.JinaRPC/Call` per post: the docs are split into requests of
//!   `request_size` docs, all streamed over that one call, one response per request. No
//!   endpoint discovery, dry run or health check happens before a post.
//! - Each request has a fresh random 32-hex-digit `request_id`, `exec_endpoint = on`, the
//!   parameters (`{"__results__": {}}` when none are given, exactly as Jina sends them), and the
//!   docs in `data.docs` (no `data` at all for a post without docs).
//! - Responses come in completion order unless [`ClientPost::results_in_order`] is set, which
//!   sends `__results_in_order__: true`. The client then also puts responses back in input order
//!   by request id itself, so the order holds even against a server that ignores the metadata.
//! - A response whose `header.status` is `ERROR` (an Executor raised) ends the post with
//!   [`ClientError::BadServer`], carrying the exception's name, message and Executor — unless
//!   [`ClientPost::continue_on_error`] is set.
//! - One HTTP/2 connection per [`Client`] (clones share it), no message-size limits (Jina sets
//!   `-1`), no compression unless asked for, Jina's keepalive settings.
//!
//! - `grpcs://host:port` (or [`ClientBuilder::tls`], Jina's `tls=True`) speaks TLS, checking the
//!   server's certificate against the system's roots, the CA given with
//!   [`ClientBuilder::ca_certificate`], or the file `GRPC_DEFAULT_SSL_ROOTS_FILE_PATH` names (as
//!   gRPC's own clients do).
//!
//! Not supported: Jina's HTTP and WebSocket protocols, and Jina's retry loop (`max_attempts`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::stream::{self, Stream, StreamExt};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use prost_types::value::Kind;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tonic::codec::CompressionEncoding;
use tonic::transport::{Channel, Endpoint};

use super::tls::Roots;
use tonic::{Status, Streaming};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::codec::{self, CodecError, RESULTS_KEY};
use super::pb::docarray::DocListProto;
use super::pb::jina::data_request_proto::DataContentProto;
use super::pb::jina::data_request_proto::data_content_proto::Documents;
use super::pb::jina::jina_gateway_dry_run_rpc_client::JinaGatewayDryRunRpcClient;
use super::pb::jina::jina_rpc_client::JinaRpcClient;
use super::pb::jina::{DataRequestProto, HeaderProto, StatusProto, status_proto};
use crate::actors::doc::{Doc, DocList};
use crate::actors::request::{Params, Request};

/// Everything that can go wrong between a [`Client`] and a server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address cannot be used: malformed, no port, or a scheme this client does not speak
    /// (`http://`, `ws://`).
    #[error("{addr}: {reason}")]
    Address { addr: String, reason: String },
    /// The trusted roots for TLS cannot be used (an unreadable file, no certificate in it).
    #[error("{addr}: TLS: {source}")]
    Tls {
        addr: String,
        #[source]
        source: super::tls::TlsError,
    },
    /// [`Client::connect`] could not open a connection.
    #[error("cannot connect to {addr}: {}", chain(source))]
    Connect {
        addr: String,
        #[source]
        source: tonic::transport::Error,
    },
    /// The call failed at the gRPC level (unreachable server, cancelled, a gateway that could not
    /// reach an Executor, …); Jina's client raises `ConnectionError` or `BadServerFlow` there.
    #[error("gRPC status {:?}: {}", .0.code(), status_message(.0))]
    Status(#[from] Status),
    /// The server answered a request with `header.status = ERROR`: an Executor (or the gateway)
    /// failed on it. Jina's client raises `BadServer` there.
    #[error(transparent)]
    BadServer(Box<RemoteError>),
    /// A response that does not hold valid documents.
    #[error("undecodable response: {0}")]
    Codec(#[from] CodecError),
    /// The server ended the call before answering every request: the docs of the missing
    /// responses would otherwise be lost silently.
    #[error("the server answered {received} of {expected} requests, then ended the call")]
    Incomplete { expected: usize, received: usize },
    /// No complete answer within the client's timeout ([`ClientBuilder::timeout`]).
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// The causes of an error, each once, `: `-separated (tonic's transport errors say little
/// themselves: the reason is in their sources).
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !out.contains(&s) {
            let _ = write!(out, ": {s}");
        }
        cause = c.source();
    }
    out
}

/// A status's message and, for a local transport failure, its causes (`tcp connect error:
/// Connection refused`).
fn status_message(s: &Status) -> String {
    let mut out = s.message().to_owned();
    let mut cause = std::error::Error::source(s);
    while let Some(c) = cause {
        let m = c.to_string();
        if !out.contains(&m) {
            let _ = write!(out, ": {m}");
        }
        cause = c.source();
    }
    out
}

/// An error a server reported inside a response (`header.status.code == ERROR`): the exception
/// as Jina's `StatusProto.ExceptionProto` carries it.
#[derive(Clone, Debug, Default, PartialEq, Eq, thiserror::Error)]
#[error("{executor} failed on request {request_id}: {name}: {message}")]
pub struct RemoteError {
    /// The request that failed (empty for a dry run, or when the server did not say).
    pub request_id: String,
    /// The exception's class name (`ValueError`; `Panic` for a panicking Rust Executor).
    pub name: String,
    /// The exception's arguments joined by `, ` (the status description when there are none).
    pub message: String,
    /// The exception's arguments, as sent.
    pub args: Vec<String>,
    /// The formatted traceback lines (a Python Executor sends them; flotilla sends none).
    pub stacks: Vec<String>,
    /// The Executor (Deployment) that raised it; `gateway` for failures of the gateway itself.
    pub executor: String,
    /// The status description (Jina: `ValueError('…')`).
    pub description: String,
}

impl RemoteError {
    /// The error a status reports, if it is an error.
    fn from_status(request_id: &str, status: &StatusProto) -> Option<RemoteError> {
        if status.code < status_proto::StatusCode::Error as i32 {
            return None;
        }
        let ex = status.exception.clone().unwrap_or_default();
        let message = if ex.args.is_empty() {
            status.description.clone()
        } else {
            ex.args.join(", ")
        };
        Some(RemoteError {
            request_id: request_id.to_owned(),
            name: if ex.name.is_empty() {
                "Error".to_owned()
            } else {
                ex.name
            },
            message,
            args: ex.args,
            stacks: ex.stacks,
            executor: ex.executor,
            description: status.description.clone(),
        })
    }

    /// The error a response reports, if any.
    fn from_response(p: &DataRequestProto) -> Option<RemoteError> {
        let header = p.header.as_ref()?;
        RemoteError::from_status(&header.request_id, header.status.as_ref()?)
    }
}

/// Message compression for a [`Client`]'s calls (Jina's `compression='Gzip'|'Deflate'`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Deflate,
}

impl Compression {
    fn encoding(self) -> CompressionEncoding {
        match self {
            Compression::Gzip => CompressionEncoding::Gzip,
            Compression::Deflate => CompressionEncoding::Deflate,
        }
    }
}

/// How one post is split and sent (Jina's `Client.post` arguments).
#[derive(Clone, Debug)]
pub struct ClientPost {
    /// Docs per request; 0 sends them all in one request. Jina's default is 100.
    pub request_size: usize,
    /// The parameters of every request. When empty, `{"__results__": {}}` is sent, as Jina does.
    pub parameters: Params,
    /// Only the Executors whose name matches this regex handle the requests (Jina's
    /// `target_executor`).
    pub target_executor: Option<String>,
    /// Responses (and so docs) in input order instead of completion order.
    pub results_in_order: bool,
    /// At most this many requests unanswered at once, on the client and (through `__prefetch__`)
    /// on the gateway. `None` (or 0) leaves it to the gateway's own `prefetch`.
    pub prefetch: Option<usize>,
    /// A progress bar of requests answered, on stderr, when there is more than one request
    /// and stderr is a terminal. Nothing is ever drawn on stdout.
    pub progress: bool,
    /// Keep going past failed requests instead of failing the post: [`Client::post_with`] then
    /// returns the docs of every response (failed ones included, as the server sent them back)
    /// and logs each failure; [`Client::post_stream`] yields failed responses with
    /// [`Response::error`] set.
    pub continue_on_error: bool,
}

impl Default for ClientPost {
    fn default() -> Self {
        ClientPost {
            request_size: 100,
            parameters: Params::new(),
            target_executor: None,
            results_in_order: false,
            prefetch: None,
            progress: false,
            continue_on_error: false,
        }
    }
}

/// One response of a post.
#[derive(Clone, Debug)]
pub struct Response {
    /// The request as the server sent it back: its id, endpoint, parameters, docs, routes, and
    /// the `__results__` Executors returned (in [`Request::results`], keyed by Executor replica).
    pub request: Request,
    /// What failed, when the server reported an error for this request (only ever set with
    /// [`ClientPost::continue_on_error`]; otherwise the post fails with it).
    pub error: Option<RemoteError>,
}

/// Builds a [`Client`] with options; [`Client::connect`] and [`Client::new`] use the defaults.
#[derive(Clone, Debug)]
pub struct ClientBuilder {
    addr: String,
    compression: Option<Compression>,
    connect_timeout: Option<Duration>,
    timeout: Option<Duration>,
    tls: bool,
    roots: Roots,
}

impl ClientBuilder {
    /// Speaks TLS even to a `host:port` or `grpc://` address (Jina's `tls=True`); `grpcs://`
    /// turns it on by itself.
    pub fn tls(mut self, on: bool) -> Self {
        self.tls = on;
        self
    }

    /// Trusts only this CA (PEM) for TLS, instead of the system's roots; implies [`Self::tls`].
    pub fn ca_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.roots = Roots::Ca(pem.into());
        self.tls = true;
        self
    }

    /// Compresses every message sent with `c` and accepts compressed answers. Off by default,
    /// as in Jina.
    pub fn compression(mut self, c: Compression) -> Self {
        self.compression = Some(c);
        self
    }

    /// Gives up opening a connection after `d` (default: the operating system's TCP timeout).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = Some(d);
        self
    }

    /// A deadline for each operation as a whole: a post (every request answered), a health
    /// check, a dry run. Past it the operation fails with [`ClientError::Timeout`] and the call
    /// is cancelled. No deadline by default, as in Jina.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// A client that connects on its first call (and reconnects after failures by itself). Fails
    /// only on an unusable address; needs no runtime until the first call.
    pub fn build(self) -> Result<Client, ClientError> {
        let parsed = parse_addr(&self.addr)?;
        let tls = self.tls || parsed.tls;
        let (addr, uri) = if tls {
            (
                format!("grpcs://{}:{}", parsed.host, parsed.port),
                format!("https://{}:{}", parsed.host, parsed.port),
            )
        } else {
            (
                format!("grpc://{}:{}", parsed.host, parsed.port),
                format!("http://{}:{}", parsed.host, parsed.port),
            )
        };
        let mut endpoint = Endpoint::from_shared(uri).map_err(|e| ClientError::Address {
            addr: self.addr.clone(),
            reason: chain(&e),
        })?;
        if tls {
            let config = self
                .roots
                .config(&parsed.host)
                .map_err(|source| ClientError::Tls {
                    addr: addr.clone(),
                    source,
                })?;
            endpoint = endpoint
                .tls_config(config)
                .map_err(|e| ClientError::Address {
                    addr: addr.clone(),
                    reason: format!("TLS: {}", chain(&e)),
                })?;
        }
        // Jina's channel options (jina-protocol.md §2.1): keepalive 9999 ms, timeout 4999 ms,
        // pings without calls too.
        endpoint = endpoint
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_millis(9999))
            .keep_alive_timeout(Duration::from_millis(4999))
            .keep_alive_while_idle(true);
        if let Some(d) = self.connect_timeout {
            endpoint = endpoint.connect_timeout(d);
        }
        Ok(Client {
            inner: Arc::new(Inner {
                addr,
                endpoint,
                channel: OnceLock::new(),
                compression: self.compression,
                timeout: self.timeout,
            }),
        })
    }

    /// A client connected now: fails with [`ClientError::Connect`] when nothing answers.
    pub async fn connect(self) -> Result<Client, ClientError> {
        let client = self.build()?;
        let channel =
            client
                .inner
                .endpoint
                .connect()
                .await
                .map_err(|source| ClientError::Connect {
                    addr: client.inner.addr.clone(),
                    source,
                })?;
        // A fresh client: nobody else can have set the channel yet.
        let _ = client.inner.channel.set(channel);
        Ok(client)
    }
}

/// An address taken apart: `[scheme://]host:port`.
#[derive(Debug, PartialEq)]
struct Parsed {
    /// As given, with the brackets of an IPv6 host.
    host: String,
    port: u16,
    /// `grpcs://`.
    tls: bool,
}

/// `grpc://host:port`, `grpcs://host:port` or `host:port`.
fn parse_addr(addr: &str) -> Result<Parsed, ClientError> {
    let bad = |reason: &str| ClientError::Address {
        addr: addr.to_owned(),
        reason: reason.to_owned(),
    };
    let trimmed = addr.trim();
    let (rest, tls) = match trimmed.split_once("://") {
        None => (trimmed, false),
        Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
            "grpc" => (rest, false),
            "grpcs" => (rest, true),
            "http" | "https" | "ws" | "wss" => {
                return Err(bad(
                    "this is Jina's HTTP/WebSocket protocol; flotilla's client speaks gRPC \
                     only: use grpc://host:port",
                ));
            }
            _ => return Err(bad("unknown scheme; use grpc://host:port")),
        },
    };
    let rest = rest.trim_end_matches('/');
    if rest.contains('/') {
        return Err(bad("a gRPC address has no path; use grpc://host:port"));
    }
    let Some((host, port)) = rest.rsplit_once(':') else {
        return Err(bad("no port; use grpc://host:port"));
    };
    if host.is_empty() {
        return Err(bad("no host; use grpc://host:port"));
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(bad("an IPv6 host needs brackets: grpc://[::1]:port"));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| bad("the port is not a number from 0 to 65535"))?;
    Ok(Parsed {
        host: host.to_owned(),
        port,
        tls,
    })
}

struct Inner {
    /// `grpc://host:port`.
    addr: String,
    endpoint: Endpoint,
    /// Made on first use (creating a channel needs a Tokio runtime).
    channel: OnceLock<Channel>,
    compression: Option<Compression>,
    timeout: Option<Duration>,
}

/// A client of one gateway (or Executor server). Cheap to clone: clones share one HTTP/2
/// connection, which carries any number of concurrent posts.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.inner.addr)
            .field("compression", &self.inner.compression)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client of `addr` (`grpc://host:port` or `host:port`) that connects on its first call.
    /// Fails only on an unusable address.
    pub fn new(addr: &str) -> Result<Client, ClientError> {
        Client::builder(addr).build()
    }

    /// A client of `addr`, connected now: fails with [`ClientError::Connect`] when nothing
    /// answers there.
    pub async fn connect(addr: &str) -> Result<Client, ClientError> {
        Client::builder(addr).connect().await
    }

    /// A client with options (compression, timeouts).
    pub fn builder(addr: &str) -> ClientBuilder {
        ClientBuilder {
            addr: addr.to_owned(),
            compression: None,
            connect_timeout: None,
            timeout: None,
            tls: false,
            roots: Roots::default(),
        }
    }

    /// The server's address, `grpc://host:port`.
    pub fn addr(&self) -> &str {
        &self.inner.addr
    }

    fn channel(&self) -> Channel {
        self.inner
            .channel
            .get_or_init(|| self.inner.endpoint.connect_lazy())
            .clone()
    }

    fn rpc(&self) -> JinaRpcClient<Channel> {
        let mut c = JinaRpcClient::new(self.channel())
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        if let Some(comp) = self.inner.compression {
            c = c
                .send_compressed(comp.encoding())
                .accept_compressed(comp.encoding());
        }
        c
    }

    /// Runs `f` within the client's timeout, if it has one.
    async fn timed<T>(
        &self,
        f: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        match self.inner.timeout {
            None => f.await,
            Some(d) => tokio::time::timeout(d, f)
                .await
                .unwrap_or(Err(ClientError::Timeout(d))),
        }
    }

    /// Sends `docs` to the endpoint `on` in requests of 100 docs and returns the docs of every
    /// response, in completion order (as Jina's client does; see [`ClientPost::results_in_order`]
    /// for input order).
    pub async fn post(&self, on: &str, docs: impl Into<DocList>) -> Result<DocList, ClientError> {
        self.post_with(on, docs, &ClientPost::default()).await
    }

    /// [`Client::post`] with options: the docs of every response, concatenated.
    pub async fn post_with(
        &self,
        on: &str,
        docs: impl Into<DocList>,
        opts: &ClientPost,
    ) -> Result<DocList, ClientError> {
        let mut responses = std::pin::pin!(self.post_stream(on, docs, opts));
        let mut out = DocList::new();
        while let Some(r) = responses.next().await {
            let r = r?;
            if let Some(e) = &r.error {
                tracing::error!("{e} (continuing: continue_on_error is set)");
            }
            out.extend(r.request.docs);
        }
        Ok(out)
    }

    /// [`Client::post_with`], keeping each whole response: parameters, `__results__`, routes and
    /// errors (with [`ClientPost::continue_on_error`]).
    pub async fn post_responses(
        &self,
        on: &str,
        docs: impl Into<DocList>,
        opts: &ClientPost,
    ) -> Result<Vec<Response>, ClientError> {
        let mut responses = std::pin::pin!(self.post_stream(on, docs, opts));
        let mut out = Vec::new();
        while let Some(r) = responses.next().await {
            out.push(r?);
        }
        Ok(out)
    }

    /// The responses of a post as they arrive (in input order with
    /// [`ClientPost::results_in_order`]), to process results while later requests are still
    /// running. Nothing is sent until the stream is first polled; dropping it cancels the call.
    /// After an error the stream ends.
    pub fn post_stream(
        &self,
        on: &str,
        docs: impl Into<DocList>,
        opts: &ClientPost,
    ) -> impl Stream<Item = Result<Response, ClientError>> + Send + 'static {
        let post = Post::new(self, on, docs.into(), opts);
        stream::unfold(post, |mut post| async move {
            let item = post.next().await?;
            Some((item, post))
        })
    }

    /// `grpc.health.v1.Health/Check` of `service` (`""`: the server as a whole, what
    /// `jina ping executor` and Kubernetes probes ask).
    pub async fn health_check(&self, service: &str) -> Result<ServingStatus, ClientError> {
        let mut health = HealthClient::new(self.channel());
        let request = HealthCheckRequest {
            service: service.to_owned(),
        };
        self.timed(async move {
            let status = health.check(request).await?.into_inner().status;
            Ok(ServingStatus::try_from(status).unwrap_or(ServingStatus::Unknown))
        })
        .await
    }

    /// Whether the server reports itself `SERVING` to a health check; an error when it cannot
    /// be asked.
    pub async fn health(&self) -> Result<bool, ClientError> {
        Ok(self.health_check("").await? == ServingStatus::Serving)
    }

    /// `/jina.JinaGatewayDryRunRPC/dry_run`: the gateway sends a request through the whole
    /// Flow. `Ok` when it came back successfully, [`ClientError::BadServer`] with what failed
    /// otherwise. (A bare Jina Executor does not implement it: that is a
    /// [`ClientError::Status`] `Unimplemented`.)
    pub async fn dry_run(&self) -> Result<(), ClientError> {
        let mut rpc = JinaGatewayDryRunRpcClient::new(self.channel());
        self.timed(async move {
            let status = rpc.dry_run(()).await?.into_inner();
            match RemoteError::from_status("", &status) {
                None => Ok(()),
                Some(e) => Err(ClientError::BadServer(Box::new(e))),
            }
        })
        .await
    }

    /// Whether a dry run through the Flow succeeds (Jina's `Client.is_flow_ready()`); false
    /// when anything fails, including when nothing listens.
    pub async fn is_ready(&self) -> bool {
        self.dry_run().await.is_ok()
    }
}

/// A fresh request id like Jina's `uuid4().hex`: 32 lowercase hex digits of a random version-4
/// UUID.
fn request_id() -> String {
    let mut x: u128 = rand::random();
    x = (x & !(0xf << 76)) | (0x4 << 76); // version 4
    x = (x & !(0x3 << 62)) | (0x2 << 62); // RFC 4122 variant
    format!("{x:032x}")
}

/// The parameters as Jina's client sends them: `{"__results__": {}}` when there are none.
fn parameters_struct(p: &Params) -> prost_types::Struct {
    let mut s = codec::params_to_struct(p);
    if p.is_empty() {
        s.fields.insert(
            RESULTS_KEY.to_owned(),
            prost_types::Value {
                kind: Some(Kind::StructValue(prost_types::Struct::default())),
            },
        );
    }
    s
}

/// What every request of a post shares.
struct Template {
    endpoint: String,
    target_executor: Option<String>,
    parameters: prost_types::Struct,
}

impl Template {
    fn request(&self, request_id: String, docs: &[Doc]) -> DataRequestProto {
        DataRequestProto {
            header: Some(HeaderProto {
                request_id,
                exec_endpoint: Some(self.endpoint.clone()),
                target_executor: self.target_executor.clone(),
                ..HeaderProto::default()
            }),
            parameters: Some(self.parameters.clone()),
            routes: Vec::new(),
            // Jina sends no `data` at all for a post without inputs.
            data: (!docs.is_empty()).then(|| DataContentProto {
                documents: Some(Documents::Docs(DocListProto {
                    docs: docs.iter().map(codec::doc_to_proto).collect(),
                })),
            }),
        }
    }
}

/// What is left to send: requests are encoded one at a time as the call takes them.
struct Outbound {
    template: Template,
    docs: std::vec::IntoIter<Doc>,
    size: usize,
    ids: std::vec::IntoIter<String>,
    in_flight: Option<Arc<Semaphore>>,
}

impl Outbound {
    async fn next(&mut self) -> Option<DataRequestProto> {
        let id = self.ids.next()?;
        if let Some(sem) = &self.in_flight {
            // Closed only when the post is over.
            sem.acquire().await.ok()?.forget();
        }
        let batch: Vec<Doc> = self.docs.by_ref().take(self.size).collect();
        Some(self.template.request(id, &batch))
    }
}

/// Puts responses back in input order by request id; what it cannot place goes out at once.
struct Reorder {
    index: HashMap<String, usize>,
    next: usize,
    held: BTreeMap<usize, Response>,
}

impl Reorder {
    fn push(&mut self, r: Response, ready: &mut VecDeque<Response>) {
        match self.index.remove(&r.request.id) {
            None => ready.push_back(r),
            Some(i) => {
                self.held.insert(i, r);
                while let Some(r) = self.held.remove(&self.next) {
                    ready.push_back(r);
                    self.next += 1;
                }
            }
        }
    }

    /// What is still held when the call ends (responses are missing): in order.
    fn flush(&mut self, ready: &mut VecDeque<Response>) {
        ready.extend(std::mem::take(&mut self.held).into_values());
    }
}

/// One post in progress: the call, the responses not yet handed out, the progress bar.
struct Post {
    client: Client,
    /// Taken when the call starts (on the first poll).
    endpoint: String,
    wants_progress: bool,
    outbound: Option<(Outbound, tonic::metadata::MetadataMap)>,
    inbound: Option<Streaming<DataRequestProto>>,
    in_flight: Option<Arc<Semaphore>>,
    order: Option<Reorder>,
    ready: VecDeque<Response>,
    total: usize,
    received: usize,
    continue_on_error: bool,
    progress: Option<ProgressBar>,
    /// The deadline, from the first poll on.
    timeout: Option<(Instant, Duration)>,
    /// The call has ended (all answered, or failed).
    ended: bool,
    done: bool,
}

impl Post {
    fn new(client: &Client, on: &str, docs: DocList, opts: &ClientPost) -> Post {
        let n = docs.len();
        let size = if opts.request_size == 0 {
            n.max(1)
        } else {
            opts.request_size
        };
        // A post without docs is still one request (Jina: `inputs=None`).
        let total = n.div_ceil(size).max(1);
        let ids: Vec<String> = (0..total).map(|_| request_id()).collect();
        let order = opts.results_in_order.then(|| Reorder {
            index: ids.iter().cloned().zip(0..).collect(),
            next: 0,
            held: BTreeMap::new(),
        });
        let prefetch = opts.prefetch.filter(|&p| p > 0);
        let in_flight = prefetch.map(|p| Arc::new(Semaphore::new(p)));
        let mut metadata = tonic::metadata::MetadataMap::new();
        if opts.results_in_order {
            metadata.insert(
                "__results_in_order__",
                tonic::metadata::MetadataValue::from_static("true"),
            );
        }
        if let Some(p) = prefetch {
            metadata.insert("__prefetch__", p.into());
        }
        let outbound = Outbound {
            template: Template {
                endpoint: on.to_owned(),
                target_executor: opts.target_executor.clone(),
                parameters: parameters_struct(&opts.parameters),
            },
            docs: docs.into_vec().into_iter(),
            size,
            ids: ids.into_iter(),
            in_flight: in_flight.clone(),
        };
        Post {
            client: client.clone(),
            endpoint: on.to_owned(),
            wants_progress: opts.progress && total > 1,
            outbound: Some((outbound, metadata)),
            inbound: None,
            in_flight,
            order,
            ready: VecDeque::new(),
            total,
            received: 0,
            continue_on_error: opts.continue_on_error,
            progress: None,
            timeout: None,
            ended: false,
            done: false,
        }
    }

    /// The next response, or the error that ends the post, or `None` once it is over.
    async fn next(&mut self) -> Option<Result<Response, ClientError>> {
        if self.done {
            return None;
        }
        if self.outbound.is_some()
            && let Some(d) = self.client.inner.timeout
        {
            self.timeout = Some((Instant::now() + d, d));
        }
        let item = match self.timeout {
            None => self.step().await,
            Some((deadline, d)) => tokio::time::timeout_at(deadline, self.step())
                .await
                .unwrap_or(Some(Err(ClientError::Timeout(d)))),
        };
        if !matches!(item, Some(Ok(_))) {
            self.finish(item.is_none());
        }
        item
    }

    /// Ends the call (if still open) and the progress bar.
    fn finish(&mut self, success: bool) {
        self.done = true;
        self.inbound = None;
        if let Some(sem) = &self.in_flight {
            sem.close();
        }
        if let Some(bar) = self.progress.take() {
            if success {
                bar.finish();
            } else {
                bar.abandon();
            }
        }
    }

    async fn step(&mut self) -> Option<Result<Response, ClientError>> {
        loop {
            if let Some(r) = self.ready.pop_front() {
                return Some(Ok(r));
            }
            if self.ended {
                return (self.received < self.total).then_some(Err(ClientError::Incomplete {
                    expected: self.total,
                    received: self.received,
                }));
            }
            if let Some((outbound, metadata)) = self.outbound.take() {
                let mut request =
                    tonic::Request::new(stream::unfold(outbound, |mut o| async move {
                        let r = o.next().await?;
                        Some((r, o))
                    }));
                *request.metadata_mut() = metadata;
                if let Some((deadline, _)) = self.timeout {
                    request.set_timeout(deadline.saturating_duration_since(Instant::now()));
                }
                if self.wants_progress {
                    self.progress = Some(progress_bar(self.total, &self.endpoint));
                }
                match self.client.rpc().call(request).await {
                    Ok(r) => self.inbound = Some(r.into_inner()),
                    Err(s) => return Some(Err(s.into())),
                }
                continue;
            }
            let inbound = self.inbound.as_mut()?;
            match inbound.message().await {
                Err(s) => return Some(Err(s.into())),
                Ok(None) => {
                    self.ended = true;
                    self.inbound = None;
                    if let Some(o) = &mut self.order {
                        o.flush(&mut self.ready);
                    }
                }
                Ok(Some(proto)) => {
                    self.received += 1;
                    if let Some(sem) = &self.in_flight {
                        sem.add_permits(1);
                    }
                    if let Some(bar) = &self.progress {
                        bar.inc(1);
                    }
                    let error = RemoteError::from_response(&proto);
                    if let Some(e) = error.clone()
                        && !self.continue_on_error
                    {
                        return Some(Err(ClientError::BadServer(Box::new(e))));
                    }
                    let request = match codec::request_from_proto(proto) {
                        Ok(r) => r,
                        Err(e) => return Some(Err(e.into())),
                    };
                    let r = Response { request, error };
                    match &mut self.order {
                        None => return Some(Ok(r)),
                        Some(o) => o.push(r, &mut self.ready),
                    }
                }
            }
        }
    }
}

/// A bar of requests answered out of `total`, on stderr (hidden when it is not a terminal).
fn progress_bar(total: usize, on: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} requests ({per_sec}, eta {eta})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(on.to_owned());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let ok = |a: &str| Client::new(a).unwrap().addr().to_owned();
        assert_eq!(ok("grpc://localhost:12345"), "grpc://localhost:12345");
        assert_eq!(ok("localhost:12345"), "grpc://localhost:12345");
        assert_eq!(ok(" GRPC://127.0.0.1:1/ "), "grpc://127.0.0.1:1");
        assert_eq!(ok("grpc://[::1]:80"), "grpc://[::1]:80");
        let parsed = |a: &str| parse_addr(a).unwrap();
        let p = parsed("grpcs://[::1]:443");
        assert_eq!((p.host.as_str(), p.port, p.tls), ("[::1]", 443, true));
        assert!(!parsed("h:1").tls);
        let reason = |a: &str| match parse_addr(a) {
            Err(ClientError::Address { reason, .. }) => reason,
            other => panic!("{a}: {other:?}"),
        };
        assert!(reason("http://h:1").contains("gRPC only"));
        assert!(reason("foo://h:1").contains("unknown scheme"));
        assert!(reason("grpc://h").contains("no port"));
        assert!(reason("grpc://:1").contains("no host"));
        assert!(reason("grpc://h:99999").contains("port"));
        assert!(reason("grpc://h:1/x").contains("path"));
        assert!(reason("::1:80").contains("brackets"));
    }

    #[test]
    fn request_ids_are_uuid4_hex() {
        let a = request_id();
        assert_eq!(a.len(), 32);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(&a[12..13], "4");
        assert!(matches!(&a[16..17], "8" | "9" | "a" | "b"));
        assert_ne!(a, request_id());
    }

    #[test]
    fn parameters_as_jina_sends_them() {
        let s = parameters_struct(&Params::new());
        assert_eq!(
            s.fields[RESULTS_KEY].kind,
            Some(Kind::StructValue(prost_types::Struct::default()))
        );
        let mut p = Params::new();
        p.insert("k".into(), serde_json::json!(1));
        let s = parameters_struct(&p);
        assert!(!s.fields.contains_key(RESULTS_KEY));
        assert_eq!(s.fields["k"].kind, Some(Kind::NumberValue(1.0)));
    }

    #[test]
    fn requests_are_built_like_jinas() {
        let t = Template {
            endpoint: "/foo".into(),
            target_executor: None,
            parameters: parameters_struct(&Params::new()),
        };
        let r = t.request("r1".into(), &[Doc::with_id("d1").with_text("hi")]);
        let h = r.header.as_ref().unwrap();
        assert_eq!(h.request_id, "r1");
        assert_eq!(h.exec_endpoint.as_deref(), Some("/foo"));
        assert_eq!(h.target_executor, None);
        assert!(r.routes.is_empty());
        let Some(Documents::Docs(d)) = r.data.and_then(|d| d.documents) else {
            panic!("no docs")
        };
        assert_eq!(d.docs.len(), 1);
        // No docs: no data at all.
        assert!(t.request("r2".into(), &[]).data.is_none());
    }

    fn response(id: &str) -> Response {
        Response {
            request: Request {
                id: id.into(),
                ..Request::default()
            },
            error: None,
        }
    }

    #[test]
    fn reorder_restores_input_order_and_passes_unknown_ids() {
        let mut o = Reorder {
            index: [("a", 0), ("b", 1), ("c", 2)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            next: 0,
            held: BTreeMap::new(),
        };
        let mut ready = VecDeque::new();
        o.push(response("c"), &mut ready);
        o.push(response("x"), &mut ready);
        assert_eq!(ready.len(), 1, "an unknown id goes out at once");
        o.push(response("a"), &mut ready);
        o.push(response("b"), &mut ready);
        let ids: Vec<_> = ready.iter().map(|r| r.request.id.as_str()).collect();
        assert_eq!(ids, ["x", "a", "b", "c"]);
    }

    #[test]
    fn remote_errors_read_jinas_status() {
        let s = super::super::status::executor_status("ValueError", "bad", "enc");
        let e = RemoteError::from_status("r", &s).unwrap();
        assert_eq!(
            (e.name.as_str(), e.message.as_str(), e.executor.as_str()),
            ("ValueError", "bad", "enc")
        );
        assert_eq!(e.to_string(), "enc failed on request r: ValueError: bad");
        assert!(RemoteError::from_status("r", &StatusProto::default()).is_none());
    }
}
