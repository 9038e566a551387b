//! Serving a running Flow over gRPC: Jina's services plus `grpc.health.v1` and server
//! reflection v1alpha (which Jina's gateway needs to use an Executor), gzip and deflate accepted,
//! no message-size limit unless one is configured (Jina sets none anywhere), and Jina's
//! `is-error` trailer on unary replies that carry an Executor error. Given a certificate and
//! key ([`ServeOptions::tls`]), it serves over TLS only.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::codec::CompressionEncoding;
use tonic::transport::Server as TonicServer;
use tonic::transport::server::TcpIncoming;

use super::client::chain;
use super::error_trailer::ErrorTrailerLayer;
use super::pb::jina::{
    jina_data_request_rpc_server::JinaDataRequestRpcServer,
    jina_discover_endpoints_rpc_server::JinaDiscoverEndpointsRpcServer,
    jina_gateway_dry_run_rpc_server::JinaGatewayDryRunRpcServer,
    jina_info_rpc_server::JinaInfoRpcServer, jina_rpc_server::JinaRpcServer,
    jina_single_data_request_rpc_server::JinaSingleDataRequestRpcServer,
};
use super::raft::RaftService;
use super::service::{JinaService, Role};
use super::tls::ServerTls;
use crate::Running;
use crate::error::Error;
use flotilla_actors::raft::group::RaftGroup;

/// How to serve.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub role: Role,
    /// Requests in flight per `Call` stream (Jina's gateway `prefetch`, default 1000).
    pub prefetch: usize,
    /// Unary requests in flight before RESOURCE_EXHAUSTED.
    pub max_unary: usize,
    /// The largest message accepted or sent; `None` is unlimited, as in Jina.
    pub max_message_size: Option<usize>,
    /// Compress responses (to clients that accept it). Off by default, as in Jina; compressed
    /// requests are always accepted.
    pub compression: Option<CompressionEncoding>,
    /// The Raft group of a stateful replica process: its `flotilla.Raft` service is served
    /// beside Jina's.
    pub raft: Option<Arc<RaftGroup>>,
    /// Serve over TLS with this certificate and key (Jina's `ssl_certfile`, `ssl_keyfile`).
    pub tls: Option<ServerTls>,
}

impl ServeOptions {
    /// Jina's defaults for `role`.
    pub fn new(role: Role) -> Self {
        ServeOptions {
            role,
            prefetch: 1000,
            max_unary: 10_000,
            max_message_size: None,
            compression: None,
            raft: None,
            tls: None,
        }
    }
}

/// The services Jina's gateway finds through reflection (the list a Jina worker returns).
const REFLECTED: &[&str] = &[
    "grpc.reflection.v1alpha.ServerReflection",
    "jina.JinaDataRequestRPC",
    "jina.JinaDiscoverEndpointsRPC",
    "jina.JinaGatewayDryRunRPC",
    "jina.JinaInfoRPC",
    "jina.JinaRPC",
    "jina.JinaSingleDataRequestRPC",
];

/// A gRPC server running in the background.
pub struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
    running: Arc<Running>,
}

macro_rules! configured {
    ($server:expr, $limit:expr, $send:expr) => {{
        let s = $server
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Deflate)
            .max_decoding_message_size($limit)
            .max_encoding_message_size($limit);
        match $send {
            Some(encoding) => s.send_compressed(encoding),
            None => s,
        }
    }};
}

impl Server {
    /// Binds `addr` (port 0 picks a free one) and serves `running` until [`Server::stop`].
    pub async fn start(
        running: Arc<Running>,
        addr: SocketAddr,
        opts: ServeOptions,
    ) -> Result<Server, Error> {
        let listener = TcpListener::bind(addr).await.map_err(|source| Error::Io {
            path: format!("grpc://{addr}"),
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| Error::Io {
            path: format!("grpc://{addr}"),
            source,
        })?;
        let svc = JinaService::new(running.clone(), opts.role, opts.prefetch, opts.max_unary);
        let limit = opts.max_message_size.unwrap_or(usize::MAX);

        let (health, health_svc) = tonic_health::server::health_reporter();
        health
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;
        for name in REFLECTED.iter().filter(|n| n.starts_with("jina.")) {
            health
                .set_service_status(*name, tonic_health::ServingStatus::Serving)
                .await;
        }
        let mut reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(super::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
        for name in REFLECTED {
            reflection = reflection.with_service_name(*name);
        }
        let reflection = reflection
            .build_v1alpha()
            .map_err(|e| Error::Serve(e.to_string()))?;

        let mut builder = TonicServer::builder();
        if let Some(tls) = &opts.tls {
            // Parses the certificate and key: a key that is not one, or does not fit, is an
            // error here, before anything is served.
            builder = builder
                .tls_config(tls.config())
                .map_err(|e| Error::Serve(format!("TLS with {}: {}", tls.source(), chain(&e))))?;
        }
        let router = builder
            .layer(ErrorTrailerLayer)
            .tcp_nodelay(true)
            .http2_keepalive_interval(Some(std::time::Duration::from_secs(10)))
            .add_service(configured!(
                JinaRpcServer::new(svc.clone()),
                limit,
                opts.compression
            ))
            .add_service(configured!(
                JinaSingleDataRequestRpcServer::new(svc.clone()),
                limit,
                opts.compression
            ))
            .add_service(configured!(
                JinaDataRequestRpcServer::new(svc.clone()),
                limit,
                opts.compression
            ))
            .add_service(JinaDiscoverEndpointsRpcServer::new(svc.clone()))
            .add_service(JinaGatewayDryRunRpcServer::new(svc.clone()))
            .add_service(JinaInfoRpcServer::new(svc))
            .add_service(health_svc)
            .add_service(reflection)
            .add_optional_service(opts.raft.clone().map(RaftService::server));
        let (stop, stopped) = oneshot::channel::<()>();
        // A listener handed over as a plain stream keeps Nagle's algorithm on whatever
        // `tcp_nodelay` says: responses of a few KB then wait for the client's delayed ACK
        // (40 ms). `TcpIncoming` sets TCP_NODELAY on every accepted connection.
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let task = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async {
            let _ = stopped.await;
        }));
        let scheme = if opts.tls.is_some() { "grpcs" } else { "grpc" };
        tracing::info!("serving {:?} on {scheme}://{addr}", opts.role);
        Ok(Server {
            addr,
            stop: Some(stop),
            task: Some(task),
            running,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The Flow it serves.
    pub fn running(&self) -> &Arc<Running> {
        &self.running
    }

    /// Stops accepting connections and waits for the server to finish its open calls.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
