//! The shard supervisor: starts a shard's replicas, each on an Arbiter of its own, restarts a
//! replica whose handler panicked (within a limit, so that a crashing Executor cannot become a
//! restart storm), and stops them cleanly.
//!
//! Dispatch itself does not go through the supervisor's mailbox: callers and replicas share the
//! shard's [`Dispatch`] table, and the supervisor only changes who is in it.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_rt::Arbiter;
use tokio::sync::oneshot;

use crate::dispatch::{Dispatch, DispatchError};
use crate::executor::{Context as ExecContext, ExecutorError, SharedFactory};
use crate::remote::RemoteReplica;
use crate::replica::{ReplicaActor, ReplicaFailed, Stop};
use crate::request::Request;
use crate::system::system;

/// How often a replica may be restarted before it is left down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Restarts allowed within `window`.
    pub max_restarts: usize,
    pub window: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            max_restarts: 10,
            window: Duration::from_secs(60),
        }
    }
}

/// Everything needed to run one shard.
#[derive(Clone)]
pub struct ShardSpec {
    /// `indexer`, or `indexer/shard-1`.
    pub name: Arc<str>,
    pub factory: SharedFactory,
    pub uses_with: serde_json::Value,
    /// One context per replica (its names, workspace, environment, device).
    pub contexts: Vec<ExecContext>,
    /// Requests that may wait when every replica is busy.
    pub queue: usize,
    pub restart: RestartPolicy,
}

/// A replica could not be started.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{replica}: the Executor could not be started: {error}")]
pub struct StartError {
    pub replica: Arc<str>,
    pub error: ExecutorError,
}

/// A running shard: its dispatch table and, for local replicas, its supervisor.
pub struct Shard {
    dispatch: Arc<Dispatch>,
    supervisor: Option<Addr<ShardSupervisor>>,
    closed: bool,
}

impl Shard {
    /// A shard of remote replicas (an external Executor), each taking up to `per_replica`
    /// requests at once. Nothing starts: the replicas run elsewhere.
    pub fn remote(
        name: Arc<str>,
        replicas: Vec<Arc<dyn RemoteReplica>>,
        per_replica: usize,
        queue: usize,
    ) -> Shard {
        Shard {
            dispatch: Dispatch::remote(name, replicas, per_replica, queue),
            supervisor: None,
            closed: false,
        }
    }

    /// Starts every replica and returns once all of them run (or the first error).
    pub fn start(spec: ShardSpec) -> Result<Shard, StartError> {
        let dispatch = Dispatch::new(spec.name.clone(), spec.contexts.len(), spec.queue);
        let spec = Arc::new(spec);
        let (sup, started) = {
            let dispatch = dispatch.clone();
            let spec = spec.clone();
            system().run(move || {
                let replicas = spec.contexts.len();
                let sup = ShardSupervisor {
                    arbiters: (0..replicas).map(|_| Some(Arbiter::new())).collect(),
                    restarts: vec![VecDeque::new(); replicas],
                    spec,
                    dispatch,
                    stopping: false,
                }
                .start();
                let started = sup.send(StartReplicas);
                (sup, started)
            })
        };
        let mut shard = Shard {
            dispatch,
            supervisor: Some(sup),
            closed: false,
        };
        match futures::executor::block_on(started) {
            Ok(Ok(())) => Ok(shard),
            Ok(Err(e)) => {
                shard.close();
                Err(e)
            }
            Err(_) => {
                shard.close();
                Err(StartError {
                    replica: spec.name.clone(),
                    error: ExecutorError::new("the shard supervisor stopped while starting"),
                })
            }
        }
    }

    /// Serves a request on an idle replica (waiting for room when the shard is saturated).
    pub async fn call(&self, req: Request) -> Result<Request, DispatchError> {
        self.dispatch.call(req).await
    }

    /// Serves a request, or fails at once with `Busy` when the shard is saturated.
    pub async fn try_call(&self, req: Request) -> Result<Request, DispatchError> {
        self.dispatch.try_call(req).await
    }

    /// The shard's dispatch table.
    pub fn dispatch(&self) -> &Arc<Dispatch> {
        &self.dispatch
    }

    /// Stops taking requests, lets every accepted one finish, then stops the replicas and joins
    /// their threads. Blocks; idempotent.
    pub fn close(&mut self) {
        if std::mem::replace(&mut self.closed, true) {
            return;
        }
        self.dispatch.close();
        let Some(sup) = self.supervisor.take() else {
            return;
        };
        let arbiters = futures::executor::block_on(sup.send(Shutdown)).unwrap_or_default();
        for a in arbiters {
            a.stop();
            let _ = a.join();
        }
    }
}

impl Drop for Shard {
    fn drop(&mut self) {
        self.close();
    }
}

/// The actor that owns a shard's replicas.
pub(crate) struct ShardSupervisor {
    spec: Arc<ShardSpec>,
    dispatch: Arc<Dispatch>,
    arbiters: Vec<Option<Arbiter>>,
    restarts: Vec<VecDeque<Instant>>,
    stopping: bool,
}

impl Actor for ShardSupervisor {
    type Context = Context<Self>;
}

type Built = Result<Addr<ReplicaActor>, ExecutorError>;

impl ShardSupervisor {
    /// Builds replica `i`'s Executor on its Arbiter and starts its actor there.
    fn spawn_replica(&self, i: usize, me: Recipient<ReplicaFailed>) -> oneshot::Receiver<Built> {
        let (tx, rx) = oneshot::channel();
        let spec = self.spec.clone();
        let dispatch = self.dispatch.clone();
        let Some(arbiter) = self.arbiters[i].as_ref() else {
            let _ = tx.send(Err(ExecutorError::new("the replica's thread is gone")));
            return rx;
        };
        let spawned = arbiter.spawn_fn(move || {
            let ectx = Arc::new(spec.contexts[i].clone());
            let span = tracing::info_span!("replica", name = %ectx.runtime_name);
            let built = span.in_scope(|| {
                std::panic::catch_unwind(AssertUnwindSafe(|| {
                    spec.factory.build(&spec.uses_with, &ectx)
                }))
            });
            let result = match built {
                Ok(Ok(exec)) => Ok(ReplicaActor::new(i, exec, ectx, dispatch, me).start()),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(ExecutorError::named(
                    "Panic",
                    "the Executor's constructor panicked",
                )),
            };
            let _ = tx.send(result);
        });
        if !spawned {
            tracing::error!(shard = %self.spec.name, replica = i, "the replica's thread is gone");
        }
        rx
    }

    fn replica_name(&self, i: usize) -> Arc<str> {
        self.spec.contexts[i].runtime_name.clone()
    }

    /// Whether replica `i` may be restarted now, counting this restart.
    fn may_restart(&mut self, i: usize) -> bool {
        let policy = self.spec.restart;
        let now = Instant::now();
        let history = &mut self.restarts[i];
        while history
            .front()
            .is_some_and(|t| now.duration_since(*t) > policy.window)
        {
            history.pop_front();
        }
        if history.len() >= policy.max_restarts {
            return false;
        }
        history.push_back(now);
        true
    }
}

/// Starts every replica; answers when all run or one failed.
struct StartReplicas;

impl Message for StartReplicas {
    type Result = Result<(), StartError>;
}

impl Handler<StartReplicas> for ShardSupervisor {
    type Result = ResponseActFuture<Self, Result<(), StartError>>;

    fn handle(&mut self, _: StartReplicas, ctx: &mut Self::Context) -> Self::Result {
        let me = ctx.address().recipient();
        let pending: Vec<_> = (0..self.arbiters.len())
            .map(|i| self.spawn_replica(i, me.clone()))
            .collect();
        let all = futures::future::join_all(pending);
        Box::pin(all.into_actor(self).map(|results, act, _ctx| {
            let mut first_error = None;
            for (i, r) in results.into_iter().enumerate() {
                match r {
                    Ok(Ok(addr)) => act.dispatch.replica_up(i, addr),
                    Ok(Err(error)) => {
                        first_error.get_or_insert(StartError {
                            replica: act.replica_name(i),
                            error,
                        });
                    }
                    Err(_) => {
                        first_error.get_or_insert(StartError {
                            replica: act.replica_name(i),
                            error: ExecutorError::new(
                                "the replica's thread stopped while starting",
                            ),
                        });
                    }
                }
            }
            first_error.map_or(Ok(()), Err)
        }))
    }
}

impl Handler<ReplicaFailed> for ShardSupervisor {
    type Result = ();

    fn handle(&mut self, msg: ReplicaFailed, ctx: &mut Self::Context) {
        let i = msg.index;
        if self.stopping {
            return;
        }
        let name = self.replica_name(i);
        if !self.may_restart(i) {
            tracing::error!(replica = %name, reason = %msg.reason,
                "restart limit reached ({} within {:?}); the replica stays down",
                self.spec.restart.max_restarts, self.spec.restart.window);
            self.dispatch.replica_dead(i);
            return;
        }
        tracing::warn!(replica = %name, reason = %msg.reason, "restarting the replica");
        let rx = self.spawn_replica(i, ctx.address().recipient());
        ctx.spawn(rx.into_actor(self).map(move |built, act, ctx| match built {
            Ok(Ok(addr)) => act.dispatch.replica_up(i, addr),
            Ok(Err(e)) => {
                tracing::error!(replica = %act.replica_name(i), "restart failed: {e}");
                // Counts as another failure: retried until the limit is reached.
                ctx.notify(ReplicaFailed {
                    index: i,
                    reason: e.to_string(),
                });
            }
            Err(_) => act.dispatch.replica_dead(i),
        }));
    }
}

/// Stops the supervisor and hands back the replicas' Arbiters for the caller to stop and join.
struct Shutdown;

impl Message for Shutdown {
    type Result = Vec<Arbiter>;
}

impl Handler<Shutdown> for ShardSupervisor {
    type Result = MessageResult<Shutdown>;

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) -> Self::Result {
        self.stopping = true;
        for i in 0..self.arbiters.len() {
            if let Some(addr) = self.dispatch.retire(i) {
                addr.do_send(Stop);
            }
        }
        ctx.stop();
        MessageResult(self.arbiters.iter_mut().filter_map(Option::take).collect())
    }
}
