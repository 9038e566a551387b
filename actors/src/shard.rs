//! The shard supervisor: starts a shard's replicas, each on an Arbiter of its own, restarts a
//! replica whose handler panicked (within a limit, so that a crashing Executor cannot become a
//! restart storm), and stops them cleanly.
//!
//! Dispatch itself does not go through the supervisor's mailbox: callers and replicas share the
//! shard's [`Dispatch`] table, and the supervisor only changes who is in it.

use std::collections::{BTreeMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_rt::Arbiter;
use tokio::sync::oneshot;

use crate::dispatch::{Dispatch, DispatchError};
use crate::executor::{Context as ExecContext, DynamicBatching, ExecutorError, SharedFactory};
use crate::raft::group::{self as raft_group, RaftGroup, RaftSpec};
use crate::remote::RemoteReplica;
use crate::replica::{ReplicaActor, ReplicaFailed, Started, Stop};
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
    /// A stateful shard: its writes go through a Raft log.
    pub raft: Option<RaftSpec>,
    /// The endpoints served in batches (by the endpoint a handler is bound to).
    pub batching: Arc<BTreeMap<String, DynamicBatching>>,
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
    raft: Option<Arc<RaftGroup>>,
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
            raft: None,
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
                    raft: None,
                    active: replicas,
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
            raft: None,
            closed: false,
        };
        match futures::executor::block_on(started) {
            Ok(Ok(())) => match &spec.raft {
                None => Ok(shard),
                Some(raft) => match shard.start_raft(&spec, raft.clone()) {
                    Ok(()) => Ok(shard),
                    Err(e) => {
                        shard.close();
                        Err(e)
                    }
                },
            },
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

    /// Forms the Raft group of a stateful shard over its running replicas; returns once every
    /// replica has its state back.
    fn start_raft(&mut self, spec: &ShardSpec, raft: RaftSpec) -> Result<(), StartError> {
        let fail = |message: String| StartError {
            replica: spec.name.clone(),
            error: ExecutorError::named("RaftError", message),
        };
        let replicas = (0..spec.contexts.len())
            .map(|i| self.dispatch.local(i))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| fail("a replica is not running".into()))?;
        let writes = spec
            .factory
            .endpoints()
            .into_iter()
            .filter(|e| e.write)
            .map(|e| e.name)
            .collect();
        let name = spec.name.clone();
        let group = raft_group::block_on(RaftGroup::start(
            name,
            self.dispatch.clone(),
            raft,
            replicas,
            writes,
        ))
        .ok_or_else(|| fail("the Raft runtime stopped".into()))?
        .map_err(|e| fail(e.to_string()))?;
        if let Some(sup) = &self.supervisor {
            sup.do_send(SetRaft(group.clone()));
        }
        self.raft = Some(group);
        Ok(())
    }

    /// Serves a request on an idle replica (waiting for room when the shard is saturated). In a
    /// stateful shard a write goes through the Raft log, a linearizable read to the leader, and
    /// any other read to any replica once every replica has applied the writes acknowledged
    /// before it (reads never miss an acknowledged write, whichever replica serves them). Writes
    /// and linearizable reads take room in the shard like any request, so the shard's bound
    /// holds for them too.
    pub async fn call(&self, req: Request) -> Result<Request, DispatchError> {
        self.serve(req, false).await
    }

    /// [`Shard::call`], but failing with `Busy` instead of waiting for room when the shard is
    /// saturated. (A plain read of a stateful shard still waits first for every replica to have
    /// the acknowledged writes.)
    pub async fn try_call(&self, req: Request) -> Result<Request, DispatchError> {
        self.serve(req, true).await
    }

    async fn serve(&self, req: Request, or_busy: bool) -> Result<Request, DispatchError> {
        if let Some(g) = &self.raft {
            let logged = g.is_write(&req.endpoint);
            if logged || g.is_linearizable(&req.endpoint) {
                let room = if or_busy {
                    self.dispatch.try_admit()?
                } else {
                    self.dispatch.admit().await?
                };
                return if logged {
                    g.write(req, room).await
                } else {
                    g.read(req, room).await
                };
            }
            // Any replica may serve a read: it waits until all have every acknowledged write.
            g.settle().await;
        }
        if or_busy {
            self.dispatch.try_call(req).await
        } else {
            self.dispatch.call(req).await
        }
    }

    /// Serves a request on local replica `i` itself, bypassing dispatch (to ask each replica
    /// of a stateful shard what it holds, for instance). Writes sent this way are not logged.
    pub async fn call_replica(&self, i: usize, request: Request) -> Result<Request, DispatchError> {
        let Some(addr) = self.dispatch.local(i) else {
            return Err(DispatchError::NoReplica {
                shard: self.dispatch.name().clone(),
            });
        };
        let (tx, rx) = oneshot::channel();
        addr.do_send(crate::replica::Apply {
            request,
            reply: tx,
            answer: true,
        });
        rx.await.unwrap_or_else(|_| {
            Err(DispatchError::Closed {
                shard: self.dispatch.name().clone(),
            })
        })
    }

    /// The Raft group of a stateful shard.
    pub fn raft(&self) -> Option<&Arc<RaftGroup>> {
        self.raft.as_ref()
    }

    /// Stops local replica `i` as if its process died: out of rotation, its actor and (in a
    /// stateful shard) its Raft node stopped. [`Shard::restart_replica`] brings it back.
    pub fn stop_replica(&self, i: usize) {
        let Some(sup) = &self.supervisor else { return };
        if let Some(g) = &self.raft {
            let g = g.clone();
            raft_group::block_on(async move { g.stop_node(i as u64).await });
        }
        let _ = futures::executor::block_on(sup.send(StopReplica(i)));
    }

    /// Starts local replica `i` again with a fresh Executor. In a stateful shard it restores
    /// its snapshot, replays its log and catches up with the leader before it takes requests.
    pub fn restart_replica(&self, i: usize) -> Result<(), StartError> {
        let Some(sup) = &self.supervisor else {
            return Ok(());
        };
        let name = self.dispatch.name().clone();
        let fail = |error: ExecutorError| StartError {
            replica: format!("{name}/rep-{i}").into(),
            error,
        };
        futures::executor::block_on(sup.send(RestartReplica(i)))
            .map_err(|_| fail(ExecutorError::new("the shard supervisor stopped")))?
            .map_err(fail)
    }

    /// Scales the shard to `replicas` local replicas. In a stateful shard new replicas join the
    /// Raft group (catching up from a snapshot and the log) and removed ones leave it first.
    pub fn scale(&self, replicas: usize) -> Result<(), StartError> {
        let Some(sup) = &self.supervisor else {
            return Ok(());
        };
        let name = self.dispatch.name().clone();
        futures::executor::block_on(sup.send(Scale(replicas)))
            .map_err(|_| ExecutorError::new("the shard supervisor stopped"))
            .and_then(|r| r)
            .map_err(|error| StartError {
                replica: name,
                error,
            })
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
        if let Some(g) = self.raft.take() {
            raft_group::block_on(async move { g.shutdown().await });
        }
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
    raft: Option<Arc<RaftGroup>>,
    /// Replicas the shard is meant to run (changed by scaling).
    active: usize,
    stopping: bool,
}

impl Actor for ShardSupervisor {
    type Context = Context<Self>;
}

type Built = Result<Started, ExecutorError>;

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
        let ectx = Arc::new(self.context(i));
        let spawned = arbiter.spawn_fn(move || {
            let span = tracing::info_span!("replica", name = %ectx.runtime_name);
            let built = span.in_scope(|| {
                std::panic::catch_unwind(AssertUnwindSafe(|| {
                    spec.factory.build(&spec.uses_with, &ectx)
                }))
            });
            let result = match built {
                Ok(Ok(exec)) => {
                    let batching = spec.batching.clone();
                    // A stateful replica's Executor is driven by its Raft log, on its thread.
                    let inline_ok = spec.raft.is_none();
                    let actor = ReplicaActor::new(i, exec, ectx, dispatch, me, batching, inline_ok);
                    let inline = actor.inline();
                    Ok(Started {
                        addr: actor.start(),
                        inline,
                    })
                }
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
        self.context(i).runtime_name.clone()
    }

    /// Replica `i`'s context; replicas added by scaling get one like the first replica's.
    fn context(&self, i: usize) -> ExecContext {
        let contexts = &self.spec.contexts;
        if let Some(c) = contexts.get(i) {
            return c.clone();
        }
        let base = &contexts[i % contexts.len().max(1)];
        let mut c = ExecContext::new(&base.deployment, base.shard, base.shards, i, i + 1);
        c.workspace = base.workspace.clone();
        c.env = base.env.clone();
        c
    }

    /// Makes sure replica `i` has a thread and a slot.
    fn ensure_replica(&mut self, i: usize) {
        while self.arbiters.len() <= i {
            self.arbiters.push(None);
            self.restarts.push(VecDeque::new());
        }
        if self.arbiters[i].is_none() {
            self.arbiters[i] = Some(Arbiter::new());
        }
        self.dispatch.ensure_slot(i);
    }

    /// Starts replica `i` with a fresh Executor and, in a stateful shard, brings its Raft node
    /// back (snapshot, log, catch-up) before it takes requests.
    fn bring_up(
        &mut self,
        i: usize,
        ctx: &mut Context<Self>,
    ) -> impl ActorFuture<Self, Output = Result<(), ExecutorError>> + 'static {
        self.ensure_replica(i);
        let rx = self.spawn_replica(i, ctx.address().recipient());
        let raft = self.raft.clone();
        let dispatch = self.dispatch.clone();
        async move {
            let started = match rx.await {
                Ok(Ok(started)) => started,
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(ExecutorError::new("the replica's thread stopped")),
            };
            let addr = started.addr.clone();
            if let Some(g) = raft {
                let node_addr = addr.clone();
                let joined = raft_group::runtime()
                    .spawn(async move { g.restart_node(i as u64, node_addr).await })
                    .await;
                match joined {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        addr.do_send(Stop);
                        return Err(ExecutorError::named("RaftError", e.to_string()));
                    }
                    Err(_) => return Err(ExecutorError::new("the Raft runtime stopped")),
                }
            }
            dispatch.replica_up(i, started);
            Ok(())
        }
        .into_actor(self)
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
                    Ok(Ok(started)) => act.dispatch.replica_up(i, started),
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
        let up = self.bring_up(i, ctx);
        ctx.spawn(up.map(move |result, act, ctx| {
            if let Err(e) = result {
                tracing::error!(replica = %act.replica_name(i), "restart failed: {e}");
                // Counts as another failure: retried until the limit is reached.
                ctx.notify(ReplicaFailed {
                    index: i,
                    reason: e.to_string(),
                });
            }
        }));
    }
}

/// Hands the supervisor the shard's Raft group once it has formed.
struct SetRaft(Arc<RaftGroup>);

impl Message for SetRaft {
    type Result = ();
}

impl Handler<SetRaft> for ShardSupervisor {
    type Result = ();

    fn handle(&mut self, SetRaft(g): SetRaft, _: &mut Self::Context) {
        self.raft = Some(g);
    }
}

/// Takes replica `i` out of rotation and stops its actor (its thread stays for a restart).
struct StopReplica(usize);

impl Message for StopReplica {
    type Result = ();
}

impl Handler<StopReplica> for ShardSupervisor {
    type Result = ();

    fn handle(&mut self, StopReplica(i): StopReplica, _: &mut Self::Context) {
        if i < self.arbiters.len()
            && let Some(addr) = self.dispatch.retire(i)
        {
            addr.do_send(Stop);
        }
    }
}

/// Starts replica `i` again (after [`StopReplica`]).
struct RestartReplica(usize);

impl Message for RestartReplica {
    type Result = Result<(), ExecutorError>;
}

impl Handler<RestartReplica> for ShardSupervisor {
    type Result = ResponseActFuture<Self, Result<(), ExecutorError>>;

    fn handle(
        &mut self,
        RestartReplica(i): RestartReplica,
        ctx: &mut Self::Context,
    ) -> Self::Result {
        if let Some(addr) = self.dispatch.retire(i) {
            addr.do_send(Stop);
        }
        Box::pin(self.bring_up(i, ctx))
    }
}

/// Scales the shard to this many replicas.
struct Scale(usize);

impl Message for Scale {
    type Result = Result<(), ExecutorError>;
}

impl Handler<Scale> for ShardSupervisor {
    type Result = ResponseActFuture<Self, Result<(), ExecutorError>>;

    fn handle(&mut self, Scale(n): Scale, ctx: &mut Self::Context) -> Self::Result {
        if n == 0 {
            return Box::pin(actix::fut::ready(Err(ExecutorError::new(
                "a shard needs at least one replica",
            ))));
        }
        let current = self.active;
        if n >= current {
            // Up: start each new replica, and join it to the Raft group, one after another.
            let mut steps: Vec<_> = Vec::new();
            for i in current..n {
                self.ensure_replica(i);
                steps.push((i, self.spawn_replica(i, ctx.address().recipient())));
            }
            let raft = self.raft.clone();
            let dispatch = self.dispatch.clone();
            let fut = async move {
                for (i, rx) in steps {
                    let started = match rx.await {
                        Ok(Ok(started)) => started,
                        Ok(Err(e)) => return Err(e),
                        Err(_) => return Err(ExecutorError::new("the replica's thread stopped")),
                    };
                    if let Some(g) = raft.clone() {
                        let voters = (0..=i as u64).collect();
                        let a = started.addr.clone();
                        raft_group::runtime()
                            .spawn(async move { g.add_node(i as u64, a, voters).await })
                            .await
                            .map_err(|_| ExecutorError::new("the Raft runtime stopped"))?
                            .map_err(|e| ExecutorError::named("RaftError", e.to_string()))?;
                    }
                    dispatch.replica_up(i, started);
                }
                Ok(())
            };
            return Box::pin(fut.into_actor(self).map(move |r, act, _| {
                if r.is_ok() {
                    act.active = n;
                }
                r
            }));
        }
        // Down: leave the Raft group first, then stop the replicas.
        let raft = self.raft.clone();
        let fut = async move {
            if let Some(g) = raft {
                let voters = (0..n as u64).collect();
                raft_group::runtime()
                    .spawn(async move { g.remove_nodes(voters).await })
                    .await
                    .map_err(|_| ExecutorError::new("the Raft runtime stopped"))?
                    .map_err(|e| ExecutorError::named("RaftError", e.to_string()))?;
            }
            Ok(())
        };
        Box::pin(
            fut.into_actor(self)
                .map(move |r: Result<(), ExecutorError>, act, _| {
                    r?;
                    act.active = n;
                    for i in n..act.arbiters.len() {
                        if let Some(addr) = act.dispatch.retire(i) {
                            addr.do_send(Stop);
                        }
                    }
                    Ok(())
                }),
        )
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
