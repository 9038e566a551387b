//! A replica: one Executor instance, served by an actix actor on an Arbiter (a thread) of its own.
//!
//! The replica runs one request at a time. When it finishes one it takes the next from its
//! shard's queue itself ([`Dispatch::next`]), so a busy shard moves requests without waking any
//! other thread. Every handler call runs under `catch_unwind`: a panic fails that one request
//! with an error naming the replica, and the replica stops so that its shard supervisor starts a
//! fresh one (actix itself does not restart actors on panic).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use actix::prelude::*;
use futures::FutureExt;
use tracing::Instrument;

use crate::dispatch::{Dispatch, DispatchError, Job};
use crate::executor::{Context as ExecContext, DynExecutor, HandlerResult, Output, Route};
use crate::request::Request;

/// A job for the replica (sent only while the replica is idle).
pub(crate) struct Run(pub(crate) Job);

impl Message for Run {
    type Result = ();
}

/// Sent to the shard supervisor when a replica's handler panicked and the replica stopped.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct ReplicaFailed {
    pub index: usize,
    pub reason: String,
}

/// How many jobs a replica serves in one go before letting its mailbox be read.
const BATCH: usize = 64;

pub struct ReplicaActor {
    index: usize,
    exec: Option<Box<dyn DynExecutor>>,
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
    ) -> Self {
        let span = tracing::info_span!("replica", name = %ctx.runtime_name);
        ReplicaActor {
            index,
            exec: Some(exec),
            ctx,
            dispatch,
            supervisor,
            span,
            failed: false,
        }
    }

    /// Serves `job`, then whatever the queue holds, up to [`BATCH`] jobs.
    fn serve(&mut self, mut job: Job, ctx: &mut Context<Self>) {
        for _ in 0..BATCH {
            let mut req = job.take_request();
            let Some(exec) = self.exec.as_mut() else {
                // Only while an async handler holds the Executor, which blocks the mailbox.
                job.reply(Err(DispatchError::Closed {
                    shard: self.dispatch.name().clone(),
                }));
                return;
            };
            match exec.route(&req.endpoint) {
                Route::PassThrough => job.reply(Ok(req)),
                Route::Sync(h) => {
                    let ectx = &self.ctx;
                    let result = self.span.in_scope(|| {
                        std::panic::catch_unwind(AssertUnwindSafe(|| {
                            exec.call_sync(h, &mut req, ectx)
                        }))
                    });
                    if !self.finish(req, result.map_err(panic_message), job, ctx) {
                        return;
                    }
                }
                Route::Async(h) => {
                    self.serve_async(h, req, job, ctx);
                    return;
                }
            }
            match self.dispatch.next(self.index) {
                Some(next) => job = next,
                None => return,
            }
        }
        // Let other messages in; the shard still counts this replica busy.
        if let Some(next) = self.dispatch.next(self.index) {
            ctx.notify(Run(next));
        }
    }

    /// Runs an async handler. The Executor moves into the future and comes back when it is done;
    /// the actor's mailbox waits meanwhile, so the replica still serves one request at a time.
    fn serve_async(&mut self, h: usize, mut req: Request, job: Job, ctx: &mut Context<Self>) {
        let Some(mut exec) = self.exec.take() else {
            job.reply(Err(DispatchError::Closed {
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
                    if act.finish(req, result, job, ctx)
                        && let Some(next) = act.dispatch.next(act.index)
                    {
                        act.serve(next, ctx);
                    }
                }),
        );
    }

    /// Answers the job. Returns false when the handler panicked and the replica is stopping.
    fn finish(
        &mut self,
        mut req: Request,
        result: Result<HandlerResult, String>,
        job: Job,
        ctx: &mut Context<Self>,
    ) -> bool {
        let replica = &self.ctx.runtime_name;
        match result {
            Ok(Ok(output)) => {
                match output {
                    Output::Keep => {}
                    Output::Docs(docs) => req.docs = docs,
                    Output::Results(v) => {
                        req.results.insert(replica.to_string(), v);
                    }
                }
                req.routes.push(replica.clone());
                job.reply(Ok(req));
                true
            }
            Ok(Err(error)) => {
                job.reply(Err(DispatchError::Executor {
                    replica: replica.clone(),
                    error,
                }));
                true
            }
            Err(message) => {
                tracing::error!(replica = %replica, "handler panicked: {message}; restarting the replica");
                self.dispatch.replica_down(self.index);
                job.reply(Err(DispatchError::Panicked {
                    replica: replica.clone(),
                    message: message.clone(),
                }));
                self.failed = true;
                let _ = self.supervisor.try_send(ReplicaFailed {
                    index: self.index,
                    reason: message,
                });
                ctx.stop();
                false
            }
        }
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
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
        tracing::debug!("replica started");
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
