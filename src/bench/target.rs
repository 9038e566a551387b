//! What a benchmark posts to: a running Flow called in process, or the same Flow behind
//! flotilla's gRPC gateway on loopback, posted to by flotilla's Rust client.

use std::sync::Arc;

use crate::actors::flow::PostOptions;
use crate::grpc::client::{Client, ClientPost};
use crate::grpc::server::{ServeOptions, Server};
use crate::grpc::service::Role;
use crate::{DocList, Running};

use super::{BenchError, Ctx};

/// How requests reach the Flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `Running::post` / `Running::call` in the same process: no serialisation, no network.
    InProcess,
    /// Through flotilla's gRPC gateway on 127.0.0.1: protobuf both ways, HTTP/2 on loopback.
    Grpc,
}

impl Mode {
    pub const BOTH: [Mode; 2] = [Mode::InProcess, Mode::Grpc];

    /// The mode's name in the tables.
    pub fn label(self) -> &'static str {
        match self {
            Mode::InProcess => "in-process",
            Mode::Grpc => "gRPC",
        }
    }
}

/// A started Flow and, in gRPC mode, its gateway and a connected client.
pub struct Target {
    running: Arc<Running>,
    grpc: Option<(Server, Client)>,
}

impl Target {
    /// Serves `running` as `mode` needs.
    pub async fn start(running: Running, mode: Mode) -> Result<Target, BenchError> {
        let running = Arc::new(running);
        let grpc = match mode {
            Mode::InProcess => None,
            Mode::Grpc => {
                let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
                let server = Server::start(running.clone(), addr, ServeOptions::new(Role::Gateway))
                    .await
                    .ctx("starting the gRPC gateway")?;
                let url = format!("grpc://{}", server.local_addr());
                let client = Client::connect(&url)
                    .await
                    .ctx(format!("connecting to {url}"))?;
                Some((server, client))
            }
        };
        Ok(Target { running, grpc })
    }

    pub fn mode(&self) -> Mode {
        if self.grpc.is_some() {
            Mode::Grpc
        } else {
            Mode::InProcess
        }
    }

    /// The running Flow.
    pub fn running(&self) -> &Arc<Running> {
        &self.running
    }

    /// The gateway's address (gRPC mode).
    pub fn addr(&self) -> Option<std::net::SocketAddr> {
        self.grpc.as_ref().map(|(s, _)| s.local_addr())
    }

    /// Posts `docs` to `endpoint` in requests of `request_size` docs, all in flight at once
    /// (the client's and gateway's default prefetch), and returns the resulting docs in input
    /// order.
    pub async fn post(
        &self,
        endpoint: &str,
        docs: DocList,
        request_size: usize,
    ) -> Result<DocList, BenchError> {
        let context = || format!("{} post to {endpoint}", self.mode().label());
        match &self.grpc {
            None => {
                let opts = PostOptions {
                    request_size,
                    ..PostOptions::default()
                };
                self.running
                    .post_with(endpoint, docs, &opts)
                    .await
                    .ctx(context())
            }
            Some((_, client)) => {
                let opts = ClientPost {
                    request_size,
                    results_in_order: true,
                    ..ClientPost::default()
                };
                client.post_with(endpoint, docs, &opts).await.ctx(context())
            }
        }
    }

    /// Stops the gateway (its open calls finish), then the Flow.
    pub async fn close(self) {
        let Target { running, grpc } = self;
        if let Some((server, client)) = grpc {
            drop(client);
            server.stop().await;
        }
        // The gateway's services held clones; once they are gone this is the last one. If one
        // is still alive somewhere, dropping ours leaves the Flow to stop with it.
        if let Ok(running) = Arc::try_unwrap(running) {
            running.close();
        }
    }
}
