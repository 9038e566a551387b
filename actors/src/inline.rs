//! Inline serving: when a request's replica is idle and its Executor's handlers are quick, the
//! caller's thread runs the handler itself instead of handing the request to the replica's
//! thread and waiting for the answer to come back.
//!
//! Why: for a handler of a few microseconds the hand-over costs more than the handler. Waking
//! the replica's thread, and waking the caller's task with the answer, are two context switches
//! per request, and on a VM two interrupts. Measured on 2 cores (`flotilla bench noop`, gRPC,
//! 16 clients): the gateway went from about 0.72× the bare tonic echo's posts/s to about 0.9×.
//!
//! When, all of:
//! - The Executor opted in ([`crate::executor::Requests::inline`]): it is `Send`, has no
//!   `async` handler, and does not rely on its replica's thread.
//! - The shard is not stateful (a stateful replica's Executor is driven by its Raft log).
//! - The request goes to a sync handler whose endpoint is not served in batches.
//! - The replica the dispatch table chooses for a caller's request is idle and parked (the
//!   choice is the table's own: idle first, the most recently freed first; inline serving
//!   never changes which replica serves a request, only which thread runs it).
//! - The replica's handlers took at most `FLOTILLA_INLINE_US` (default 20 µs; 0 turns inline
//!   serving off) on average, as measured on every call on either kind of thread (an
//!   exponential moving average). Until a first call has been measured, requests go to the
//!   replica's thread, and the average is checked again before every request a caller runs,
//!   so a slow Executor blocks a caller's thread (a gRPC gateway's worker) for one of its
//!   calls at most before it stops being run inline.
//!
//! What is promised: a replica still serves one request at a time (its Executor sits behind a
//! lock, which its own thread takes as well, and the dispatch table counts the replica busy
//! while a caller runs it). A caller that finds requests queued when its handler returns (they
//! queued because the replicas were busy) serves them too, up to [`DRAIN`] requests in all,
//! its own included, then leaves the rest to the replica's thread. A handler that panics on a
//! caller's thread fails its request with the same error, takes its replica out of rotation
//! and gets it restarted, as on the replica's own thread; the broken Executor is dropped on the
//! caller's thread (a panic in its `Drop` is caught). A replica stopped, restarted or scaled
//! away takes its Executor with it: callers only ever run the Executor of the replica now in
//! the slot.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, TryLockError};
use std::time::{Duration, Instant};

use crate::dispatch::DispatchError;
use crate::executor::{Context, DynExecutor, DynamicBatching, Route};
use crate::request::Request;

/// The environment variable that sets the most a handler may take, on average, to be run on a
/// caller's thread, in microseconds (0: never).
pub const LIMIT_ENV: &str = "FLOTILLA_INLINE_US";
/// The limit when none is set.
const DEFAULT_US: u64 = 20;
/// Requests a caller serves in all, its own included, before it leaves the rest queued for the
/// replica's thread.
pub(crate) const DRAIN: usize = 16;
/// Not measured yet.
const UNKNOWN: u64 = u64::MAX;

fn limit() -> Duration {
    static LIMIT: OnceLock<Duration> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        let us = match std::env::var(LIMIT_ENV) {
            Err(_) => DEFAULT_US,
            Ok(v) => v.trim().parse::<u64>().unwrap_or_else(|_| {
                tracing::warn!(
                    "{LIMIT_ENV}={v:?} is not a number of microseconds; using {DEFAULT_US}"
                );
                DEFAULT_US
            }),
        };
        Duration::from_micros(us)
    })
}

/// The Executor of a replica that callers may run: shared by the replica's actor and the
/// shard's dispatch table.
pub struct Inline {
    /// `None` once a handler panicked (the replica is being replaced).
    exec: Mutex<Option<Box<dyn DynExecutor + Send>>>,
    ctx: std::sync::Arc<Context>,
    span: tracing::Span,
    batching: std::sync::Arc<BTreeMap<String, DynamicBatching>>,
    /// The handlers' average time, in nanoseconds ([`UNKNOWN`] before the first call).
    cost_ns: AtomicU64,
}

/// What came of offering a request to a caller's thread.
pub(crate) enum Served {
    /// Run here: the answer, as the replica's thread would have given it.
    Answered(Result<Request, DispatchError>),
    /// The handler panicked here: the request (docs as the handler left them) and why. The
    /// replica must be taken out of rotation and replaced.
    Panicked(Request, String),
    /// Not for this thread (see the module docs): the request, untouched.
    Declined(Request),
}

impl Inline {
    pub(crate) fn new(
        exec: Box<dyn DynExecutor + Send>,
        ctx: std::sync::Arc<Context>,
        span: tracing::Span,
        batching: std::sync::Arc<BTreeMap<String, DynamicBatching>>,
    ) -> Self {
        Inline {
            exec: Mutex::new(Some(exec)),
            ctx,
            span,
            batching,
            cost_ns: AtomicU64::new(UNKNOWN),
        }
    }

    /// The Executor, for its replica's own thread.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Option<Box<dyn DynExecutor + Send>>> {
        // A handler's panic is caught inside the lock, so it is never poisoned by one.
        self.exec.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the handlers have been quick enough to run on a caller's thread.
    pub(crate) fn quick(&self) -> bool {
        let limit = limit();
        !limit.is_zero() && u128::from(self.cost_ns.load(Ordering::Relaxed)) <= limit.as_nanos()
    }

    /// Counts one handler call of `took` into the average.
    pub(crate) fn record(&self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX - 1);
        let old = self.cost_ns.load(Ordering::Relaxed);
        let new = if old == UNKNOWN {
            ns
        } else {
            old - old / 8 + ns / 8
        };
        self.cost_ns.store(new, Ordering::Relaxed);
    }

    /// Runs `req` on this thread if it may be (see the module docs). The caller has the
    /// replica counted busy.
    pub(crate) fn serve(&self, mut req: Request) -> Served {
        let mut guard = match self.exec.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return Served::Declined(req),
        };
        let Some(exec) = guard.as_mut() else {
            return Served::Declined(req);
        };
        let h = match exec.route(&req.endpoint) {
            Route::Sync(h) => h,
            // Answered as the replica answers it: unchanged, with no route added.
            Route::PassThrough => return Served::Answered(Ok(req)),
            Route::Async(_) => return Served::Declined(req),
        };
        if crate::replica::batching_of(&self.batching, exec.as_ref(), &req.endpoint).is_some() {
            return Served::Declined(req);
        }
        let started = Instant::now();
        let ctx = &self.ctx;
        let result = self.span.in_scope(|| {
            std::panic::catch_unwind(AssertUnwindSafe(|| exec.call_sync(h, &mut req, ctx)))
        });
        self.record(started.elapsed());
        match result {
            Ok(handled) => {
                Served::Answered(crate::replica::answer(&ctx.runtime_name, req, handled))
            }
            Err(payload) => {
                // The Executor's state is unknown now: nobody runs it again. Dropping it may
                // panic too; that is caught and the Executor leaked instead.
                let broken = guard.take();
                let _ = std::panic::catch_unwind(AssertUnwindSafe(move || drop(broken)));
                Served::Panicked(req, crate::replica::panic_message(payload))
            }
        }
    }

    /// The replica's runtime name (`indexer/rep-0`), as its answers and errors carry it.
    pub(crate) fn replica(&self) -> &std::sync::Arc<str> {
        &self.ctx.runtime_name
    }
}
