//! A replica: one Executor instance, served by an actix actor on an Arbiter (a thread) of its own.
//!
//! The replica runs one request at a time. When it finishes one it takes the next from its
//! shard's queue itself ([`Dispatch::next`]), so a busy shard moves requests without waking any
//! other thread. Every handler call runs under `catch_unwind`: a panic fails that one request
//! with an error naming the replica, and the replica stops so that its shard supervisor starts a
//! fresh one (actix itself does not restart actors on panic).
//!
//! A stateful shard's Raft state machine also sends requests straight to a replica ([`Apply`]):
//! committed writes, applied in log order, and snapshots of the Executor's state.
//!
//! An endpoint served in batches (Jina's dynamic batching, [`DynamicBatching`]): the replica
//! that takes a request for it also takes the compatible requests queued behind it (same
//! endpoint, equal parameters, up to the preferred size in docs), calls the handler once over
//! all their docs, and hands each request its own docs back.
//!
//! An Executor that opted in to inline serving ([`crate::inline`]) sits behind a lock that the
//! shard's callers may take too: its replica's thread then serves only what callers leave to
//! it (slow handlers, batches, requests queued behind a busy replica).

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;

use actix::prelude::*;
use futures::FutureExt;
use tokio::sync::oneshot;
use tracing::Instrument;

use crate::dispatch::{Dispatch, DispatchError, Job, Join};
use crate::doc::DocList;
use crate::executor::{
    Context as ExecContext, DynExecutor, DynamicBatching, ExecutorError, HandlerResult, Output,
    Route,
};
use crate::inline::Inline;
use crate::request::Request;

/// A job for the replica (sent only while the replica is idle).
pub(crate) struct Run(pub(crate) Job);

impl Message for Run {
    type Result = ();
}

/// A request that does not come through the shard's dispatch table: a committed Raft write, or
/// a linearizable read sent to the leader's replica. Answered on `reply`.
pub(crate) struct Apply {
    pub request: Request,
    pub reply: oneshot::Sender<Result<Request, DispatchError>>,
    /// Whether the result is wanted; when not, it is dropped on this thread and the answer is
    /// an empty request (see `raft::awaited`).
    pub answer: bool,
}

impl Message for Apply {
    type Result = ();
}

/// A committed Raft write as it was logged (a postcard-encoded [`Request`]): decoded on the
/// replica's own thread, then applied like [`Apply`].
pub(crate) struct ApplyEncoded {
    pub request: bytes::Bytes,
    pub reply: oneshot::Sender<Result<Request, DispatchError>>,
    /// As [`Apply::answer`].
    pub answer: bool,
}

impl Message for ApplyEncoded {
    type Result = ();
}

/// Writes the Executor's state into a directory (`Executor::snapshot`).
#[derive(Message)]
#[rtype(result = "Result<(), ExecutorError>")]
pub(crate) struct Snapshot(pub PathBuf);

/// Replaces the Executor's state with a snapshot's (`Executor::restore`).
#[derive(Message)]
#[rtype(result = "Result<(), ExecutorError>")]
pub(crate) struct Restore(pub PathBuf);

/// Sent to the shard supervisor when a replica's handler panicked and the replica stopped.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct ReplicaFailed {
    pub index: usize,
    pub reason: String,
}

/// Where a served request's answer goes.
// A `Reply` lives on the stack for one call; boxing the job would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
enum Reply {
    /// A job from the dispatch table: answered, then the replica takes the next queued one.
    Job(Job),
    /// A direct request (Raft): answered, nothing else.
    Direct(oneshot::Sender<Result<Request, DispatchError>>),
    /// A Raft write whose result nobody waits for: the result is dropped here, where it was
    /// made, and the answer is an empty request; an error is answered as it is.
    Applied(oneshot::Sender<Result<Request, DispatchError>>),
    /// The jobs of a batch, each with its request (docs taken out) and how many docs it sent,
    /// in the order their docs were joined.
    Batch(Vec<(Job, Request, usize)>),
}

impl Reply {
    /// Answers; a batch gets its docs back request by request (see [`Reply::split`]), or every
    /// request the same error.
    fn send(self, result: Result<Request, DispatchError>) {
        match self {
            Reply::Job(job) => job.reply(result),
            Reply::Direct(tx) => {
                let _ = tx.send(result);
            }
            Reply::Applied(tx) => {
                let _ = tx.send(result.map(|_| Request::default()));
            }
            Reply::Batch(parts) => match result {
                Ok(req) => Reply::split(parts, req),
                Err(e) => Reply::fail(parts, e),
            },
        }
    }

    /// Hands each request of a batch its share of the served docs, in order, and the batch's
    /// new route. Output of another length than the input fails every request, as in Jina.
    fn split(parts: Vec<(Job, Request, usize)>, mut served: Request) {
        let sent: usize = parts.iter().map(|(_, _, n)| n).sum();
        if served.docs.len() != sent {
            let replica = served.routes.last().cloned().unwrap_or_default();
            let error = ExecutorError::named(
                "ValueError",
                format!(
                    "Dynamic Batching requires input size to equal output size. Expected output \
                     size {sent}, but got {}",
                    served.docs.len()
                ),
            );
            for (job, _, _) in parts {
                job.reply(Err(DispatchError::executor(replica.clone(), error.clone())));
            }
            return;
        }
        let route = served.routes.last().cloned();
        let mut docs = std::mem::take(&mut served.docs).into_vec().into_iter();
        for (job, mut req, n) in parts {
            req.docs = docs.by_ref().take(n).collect();
            req.routes.extend(route.clone());
            job.reply(Ok(req));
        }
    }

    /// Fails every request of a batch with `e`, each with its own share of the docs the
    /// error carries (when they still add up to what the requests sent).
    fn fail(parts: Vec<(Job, Request, usize)>, mut e: DispatchError) {
        let sent: usize = parts.iter().map(|(_, _, n)| n).sum();
        let mut docs = e
            .docs_slot()
            .and_then(Option::take)
            .filter(|d| d.len() == sent)
            .map(|d| Arc::unwrap_or_clone(d).into_vec().into_iter());
        for (job, _, n) in parts {
            let mine = e.clone();
            job.reply(Err(match docs.as_mut() {
                Some(d) => mine.with_docs(d.by_ref().take(n).collect()),
                None => mine,
            }));
        }
    }

    /// The reply to a Raft write: its result, or only that it applied.
    fn applied(tx: oneshot::Sender<Result<Request, DispatchError>>, answer: bool) -> Reply {
        if answer {
            Reply::Direct(tx)
        } else {
            Reply::Applied(tx)
        }
    }

    fn is_job(&self) -> bool {
        matches!(self, Reply::Job(_) | Reply::Batch(_))
    }
}

/// How many jobs a replica serves in one go before letting its mailbox be read.
const BATCH: usize = 64;

pub struct ReplicaActor {
    index: usize,
    /// The Executor, unless callers may run it too (then it is in `inline`); `None` while an
    /// async handler holds it.
    exec: Option<Box<dyn DynExecutor>>,
    inline: Option<Arc<Inline>>,
    /// The endpoints served in batches, by the endpoint their handler is bound to.
    batching: Arc<BTreeMap<String, DynamicBatching>>,
    ctx: Arc<ExecContext>,
    dispatch: Arc<Dispatch>,
    supervisor: Recipient<ReplicaFailed>,
    span: tracing::Span,
    failed: bool,
}

impl ReplicaActor {
    pub(crate) fn new(
        index: usize,
        exec: Box<dyn DynExecutor>,
        ctx: Arc<ExecContext>,
        dispatch: Arc<Dispatch>,
        supervisor: Recipient<ReplicaFailed>,
        batching: Arc<BTreeMap<String, DynamicBatching>>,
        inline_ok: bool,
    ) -> Self {
        let span = tracing::info_span!("replica", name = %ctx.runtime_name);
        let (exec, inline) = if inline_ok {
            match exec.into_inline() {
                Ok(shared) => {
                    let inline = Inline::new(shared, ctx.clone(), span.clone(), batching.clone());
                    (None, Some(Arc::new(inline)))
                }
                Err(own) => (Some(own), None),
            }
        } else {
            (Some(exec), None)
        };
        ReplicaActor {
            index,
            exec,
            inline,
            batching,
            ctx,
            dispatch,
            supervisor,
            span,
            failed: false,
        }
    }

    /// The Executor as callers may run it, if it opted in ([`crate::inline`]).
    pub(crate) fn inline(&self) -> Option<Arc<Inline>> {
        self.inline.clone()
    }

    /// Serves `job`, then whatever the queue holds, up to [`BATCH`] jobs.
    fn serve(&mut self, mut job: Job, ctx: &mut Context<Self>) {
        for _ in 0..BATCH {
            let req = job.take_request();
            let (req, reply) = self.batch(req, job);
            if !self.run(req, reply, ctx) {
                return; // async handler under way, or the replica is stopping
            }
            match self.dispatch.next(self.index) {
                Some(next) => job = next,
                None => return,
            }
        }
        // Let other messages in, then serve the job taken; the shard still counts this
        // replica busy.
        ctx.notify(Run(job));
    }

    /// `req` (of `job`) alone, or merged with the compatible requests queued behind it when its
    /// endpoint is served in batches.
    fn batch(&self, req: Request, job: Job) -> (Request, Reply) {
        let Some(max) = self.batch_size(&req) else {
            return (req, Reply::Job(job));
        };
        let mut docs = req.docs.len();
        // A batch of one still answers as a batch: a batched endpoint keeps Jina's rules on
        // its output (same length, no results) whether or not others joined.
        let more = if docs >= max {
            Vec::new()
        } else {
            self.dispatch.take_batch(|r| {
                if r.endpoint != req.endpoint
                    || !r.docs_matrix.is_empty()
                    || !(Arc::ptr_eq(&r.parameters, &req.parameters)
                        || r.parameters == req.parameters)
                {
                    Join::No
                } else if docs + r.docs.len() <= max {
                    docs += r.docs.len();
                    Join::Yes
                } else {
                    // The next compatible request would take the batch past its size: the batch
                    // is full (later ones wait their turn, in order).
                    Join::Full
                }
            })
        };
        let mut merged = req.with_docs(DocList::with_capacity(docs));
        let mut parts = Vec::with_capacity(more.len() + 1);
        let mut add = |job: Job, mut r: Request| {
            let n = r.docs.len();
            merged.docs.extend(std::mem::take(&mut r.docs).into_vec());
            parts.push((job, r, n));
        };
        add(job, req);
        for mut job in more {
            let r = job.take_request();
            add(job, r);
        }
        (merged, Reply::Batch(parts))
    }

    /// The most docs a batch of `req`'s endpoint takes, when it is served in batches (a
    /// multi-part request is not, as in Jina).
    fn batch_size(&self, req: &Request) -> Option<usize> {
        self.batching_of(req).map(|b| b.max_docs())
    }

    /// How `req`'s endpoint is batched, if it is (a multi-part request never is).
    fn batching_of(&self, req: &Request) -> Option<DynamicBatching> {
        if self.batching.is_empty() || !req.docs_matrix.is_empty() {
            return None;
        }
        self.with_exec(|exec| batching_of(&self.batching, exec, &req.endpoint))
            .flatten()
    }

    /// Runs `f` on the Executor, wherever it is kept; `None` when it is away (an async handler
    /// holds it, or a handler panicked on a caller's thread).
    fn with_exec<T>(&self, f: impl FnOnce(&(dyn DynExecutor + 'static)) -> T) -> Option<T> {
        match &self.inline {
            Some(inline) => {
                let guard = inline.lock();
                let exec: &(dyn DynExecutor + 'static) = guard.as_deref()?;
                Some(f(exec))
            }
            None => self.exec.as_deref().map(f),
        }
    }

    /// Serves each request of a batch that failed alone (the endpoint is declared
    /// [`DynamicBatching::alone_on_error`]): its docs, untouched by the failed call, go back to
    /// their requests. Returns what [`Self::run`] returns.
    fn alone(
        &mut self,
        mut merged: Request,
        parts: Vec<(Job, Request, usize)>,
        ctx: &mut Context<Self>,
    ) -> bool {
        let mut docs = std::mem::take(&mut merged.docs).into_vec().into_iter();
        let mut parts = parts.into_iter();
        while let Some((job, req, n)) = parts.next() {
            // A batch of one, so that the endpoint's rules on batched output still hold.
            let one = req.with_docs(docs.by_ref().take(n).collect());
            if !self.run(one, Reply::Batch(vec![(job, req, n)]), ctx) {
                // The replica is stopping (a handler panicked): the requests not yet served
                // go back to the queue, with their docs, for another replica.
                for (job, req, n) in parts {
                    job.put_back(req.with_docs(docs.by_ref().take(n).collect()));
                }
                return false;
            }
        }
        true
    }

    /// Runs one request. Returns true when it was answered synchronously and the replica goes on;
    /// false when an async handler took over (it answers, and for a job takes the next one,
    /// when it is done) or the replica is stopping.
    fn run(&mut self, mut req: Request, reply: Reply, ctx: &mut Context<Self>) -> bool {
        let Some(route) = self.with_exec(|e| e.route(&req.endpoint)) else {
            // Only while an async handler holds the Executor (which blocks the mailbox), or
            // after a handler panicked on a caller's thread (this replica is being replaced).
            reply.send(Err(DispatchError::Closed {
                shard: self.dispatch.name().clone(),
            }));
            return true;
        };
        match route {
            Route::PassThrough => {
                reply.send(Ok(req));
                true
            }
            Route::Sync(h) => {
                let started = self.inline.is_some().then(std::time::Instant::now);
                let (span, ectx) = (&self.span, &self.ctx);
                let result = exec_mut(&mut self.exec, &self.inline, |exec| {
                    span.in_scope(|| {
                        std::panic::catch_unwind(AssertUnwindSafe(|| {
                            exec.call_sync(h, &mut req, ectx)
                        }))
                    })
                })
                .unwrap_or_else(|| Ok(Err(ExecutorError::new("the replica's Executor is gone"))));
                if let (Some(inline), Some(started)) = (&self.inline, started) {
                    inline.record(started.elapsed());
                }
                match reply {
                    Reply::Batch(parts)
                        if parts.len() > 1
                            && matches!(result, Ok(Err(_)))
                            && self.batching_of(&req).is_some_and(|b| b.alone_on_error) =>
                    {
                        self.alone(req, parts, ctx)
                    }
                    reply => self.finish(req, result.map_err(panic_message), reply, ctx),
                }
            }
            Route::Async(h) => {
                self.run_async(h, req, reply, ctx);
                false
            }
        }
    }

    /// Runs an async handler. The Executor moves into the future and comes back when it is done;
    /// the actor's mailbox waits meanwhile, so the replica still serves one request at a time.
    fn run_async(&mut self, h: usize, mut req: Request, reply: Reply, ctx: &mut Context<Self>) {
        let Some(mut exec) = self.exec.take() else {
            reply.send(Err(DispatchError::Closed {
                shard: self.dispatch.name().clone(),
            }));
            return;
        };
        let ectx = self.ctx.clone();
        let fut = async move {
            let result = AssertUnwindSafe(exec.call_async(h, &mut req, &ectx))
                .catch_unwind()
                .await
                .map_err(panic_message);
            (exec, req, result)
        }
        .instrument(self.span.clone());
        ctx.wait(
            fut.into_actor(self)
                .map(move |(exec, req, result), act, ctx| {
                    act.exec = Some(exec);
                    let from_job = reply.is_job();
                    if act.finish(req, result, reply, ctx)
                        && from_job
                        && let Some(next) = act.dispatch.next(act.index)
                    {
                        act.serve(next, ctx);
                    }
                }),
        );
    }

    /// Answers. Returns false when the handler panicked and the replica is stopping.
    fn finish(
        &mut self,
        req: Request,
        result: Result<HandlerResult, String>,
        reply: Reply,
        ctx: &mut Context<Self>,
    ) -> bool {
        let replica = &self.ctx.runtime_name;
        match result {
            Ok(Ok(Output::Results(_))) if matches!(reply, Reply::Batch(_)) => {
                let error = ExecutorError::named(
                    "TypeError",
                    "The return type must be DocList / `None` when using dynamic batching",
                );
                reply.send(Err(
                    DispatchError::executor(replica.clone(), error).with_docs(req.docs)
                ));
                true
            }
            Ok(handled) => {
                reply.send(answer(replica, req, handled));
                true
            }
            Err(message) => {
                self.dispatch.replica_down(self.index);
                // Nobody runs the Executor again: its state is unknown. It is dropped after the
                // answer and the supervisor's notice, where a panic in its `Drop` cannot stop
                // them (then it is leaked), as an owned Executor is dropped with its actor.
                let broken = self.inline.as_ref().and_then(|x| x.lock().take());
                reply.send(Err(panicked(replica, message.clone(), req.docs)));
                self.failed = true;
                let _ = self.supervisor.try_send(ReplicaFailed {
                    index: self.index,
                    reason: message,
                });
                ctx.stop();
                let _ = std::panic::catch_unwind(AssertUnwindSafe(move || drop(broken)));
                false
            }
        }
    }

    fn with_executor<T>(
        &mut self,
        what: &str,
        f: impl FnOnce(&mut dyn DynExecutor) -> Result<T, ExecutorError>,
    ) -> Result<T, ExecutorError> {
        let span = &self.span;
        exec_mut(&mut self.exec, &self.inline, |exec| {
            span.in_scope(|| std::panic::catch_unwind(AssertUnwindSafe(|| f(exec))))
                .unwrap_or_else(|p| {
                    Err(ExecutorError::named(
                        "Panic",
                        format!("{what}: {}", panic_message(p)),
                    ))
                })
        })
        .unwrap_or_else(|| Err(ExecutorError::new(format!("{what}: the Executor is busy"))))
    }
}

/// How `endpoint` is batched on `exec`, if it is: declared for the endpoint itself, or for the
/// handler it reaches (`/default` included).
pub(crate) fn batching_of(
    batching: &BTreeMap<String, DynamicBatching>,
    exec: &dyn DynExecutor,
    endpoint: &str,
) -> Option<DynamicBatching> {
    if batching.is_empty() {
        return None;
    }
    let handler = match exec.route(endpoint) {
        Route::Sync(h) | Route::Async(h) => h,
        Route::PassThrough => return None,
    };
    batching
        .get(endpoint)
        .or_else(|| batching.get(exec.endpoint_of(handler)))
        .copied()
}

/// The error of a request whose handler panicked on `replica` (on its thread or a caller's),
/// logged: the replica is being restarted.
pub(crate) fn panicked(replica: &Arc<str>, message: String, docs: DocList) -> DispatchError {
    tracing::error!(replica = %replica, "handler panicked: {message}; restarting the replica");
    DispatchError::Panicked {
        replica: replica.clone(),
        message,
        docs: Some(Arc::new(docs)),
    }
}

/// Runs `f` on a replica's Executor mutably, wherever it is kept (`exec`, or behind `inline`'s
/// lock); `None` when it is away. The replica's fields are passed apart so that `f` may borrow
/// the others.
fn exec_mut<T>(
    exec: &mut Option<Box<dyn DynExecutor>>,
    inline: &Option<Arc<Inline>>,
    f: impl FnOnce(&mut (dyn DynExecutor + 'static)) -> T,
) -> Option<T> {
    match inline {
        Some(inline) => {
            let mut guard = inline.lock();
            let exec: &mut (dyn DynExecutor + 'static) = guard.as_deref_mut()?;
            Some(f(exec))
        }
        None => exec.as_deref_mut().map(f),
    }
}

/// The answer to a request whose handler returned `handled` on replica `replica`.
pub(crate) fn answer(
    replica: &Arc<str>,
    mut req: Request,
    handled: HandlerResult,
) -> Result<Request, DispatchError> {
    match handled {
        Ok(output) => {
            match output {
                Output::Keep => {}
                Output::Docs(docs) => req.docs = docs,
                Output::Results(v) => {
                    req.results.insert(replica.to_string(), v);
                }
            }
            req.routes.push(replica.clone());
            Ok(req)
        }
        Err(error) => Err(DispatchError::executor(replica.clone(), error).with_docs(req.docs)),
    }
}

pub(crate) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

impl Actor for ReplicaActor {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        let _e = self.span.enter();
        tracing::debug!(inline = self.inline.is_some(), "replica started");
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        let _e = self.span.enter();
        tracing::debug!(failed = self.failed, "replica stopped");
    }
}

impl Handler<Run> for ReplicaActor {
    type Result = ();

    fn handle(&mut self, Run(job): Run, ctx: &mut Self::Context) {
        self.serve(job, ctx);
    }
}

impl Handler<Apply> for ReplicaActor {
    type Result = ();

    fn handle(&mut self, msg: Apply, ctx: &mut Self::Context) {
        let reply = Reply::applied(msg.reply, msg.answer);
        self.run(msg.request, reply, ctx);
    }
}

impl Handler<ApplyEncoded> for ReplicaActor {
    type Result = ();

    fn handle(&mut self, msg: ApplyEncoded, ctx: &mut Self::Context) {
        match postcard::from_bytes::<Request>(&msg.request) {
            Ok(request) => {
                let reply = Reply::applied(msg.reply, msg.answer);
                self.run(request, reply, ctx);
            }
            // The same bytes fail the same way on every replica: the entry counts as applied,
            // with this error, everywhere.
            Err(e) => {
                let _ = msg.reply.send(Err(DispatchError::executor(
                    self.ctx.runtime_name.clone(),
                    ExecutorError::named(
                        "RaftError",
                        format!("a logged write could not be decoded: {e}"),
                    ),
                )));
            }
        }
    }
}

impl Handler<Snapshot> for ReplicaActor {
    type Result = Result<(), ExecutorError>;

    fn handle(&mut self, Snapshot(dir): Snapshot, _: &mut Self::Context) -> Self::Result {
        self.with_executor("snapshot", |e| e.snapshot(&dir))
    }
}

impl Handler<Restore> for ReplicaActor {
    type Result = Result<(), ExecutorError>;

    fn handle(&mut self, Restore(dir): Restore, _: &mut Self::Context) -> Self::Result {
        self.with_executor("restore", |e| e.restore(&dir))
    }
}

/// A handler of this replica panicked on a caller's thread ([`crate::inline`]): the replica
/// is out of rotation already; it stops, and its supervisor starts a fresh one.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct InlinePanicked(pub String);

impl Handler<InlinePanicked> for ReplicaActor {
    type Result = ();

    fn handle(&mut self, InlinePanicked(reason): InlinePanicked, ctx: &mut Self::Context) {
        self.failed = true;
        let _ = self.supervisor.try_send(ReplicaFailed {
            index: self.index,
            reason,
        });
        ctx.stop();
    }
}

/// A replica just started: its actor, and its Executor when callers may run it
/// ([`crate::inline`]). The shard's dispatch table takes both at once
/// ([`Dispatch::replica_up`]).
pub(crate) struct Started {
    pub addr: Addr<ReplicaActor>,
    pub inline: Option<Arc<Inline>>,
}

/// Stops the replica after the job it is serving.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Stop;

impl Handler<Stop> for ReplicaActor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
