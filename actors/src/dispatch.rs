//! Idle-first dispatch of requests to the replicas of one shard.
//!
//! The table is shared by the callers, the replicas and the shard supervisor, so a request costs
//! one lock and one message to a replica, with no hop through a supervisor's mailbox:
//!
//! - a request goes to the replica with the fewest requests in flight: an idle one whenever
//!   there is one, never a busy one while another is idle. Of equally loaded replicas, the one
//!   freed last wins (its thread is likely still awake and its caches warm, so handing it work
//!   costs no wake-up of a parked thread);
//! - a local replica (an actor) serves one request at a time; a remote replica (an external
//!   Executor) up to its capacity;
//! - a replica that has answered and finds the queue empty may stay awake a moment for the
//!   next request ([`crate::linger`]); such a replica is idle and is handed work first, through
//!   the queue, with no message and no wake-up of a parked thread;
//! - a caller whose request goes to an idle, parked replica of a quick Executor that opted in
//!   runs the handler on its own thread ([`crate::inline`]), with the replica counted busy;
//! - when every replica is full a request waits in one FIFO queue shared by the shard, and the
//!   first replica to free up takes it: a slow request never holds up others behind it while
//!   another replica could serve them;
//! - the queue is bounded: past `capacity` accepted requests, callers wait for room
//!   (backpressure), or get [`DispatchError::Busy`] from [`Dispatch::try_call`];
//! - a job that is dropped unanswered (its replica stopped before taking it) goes back to the
//!   front of the queue, and a remote failure that Jina would retry (unreachable, deadline,
//!   "not the leader") is retried on another replica: an accepted request is answered exactly
//!   once.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix::Addr;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, oneshot};

use crate::doc::DocList;
use crate::executor::ExecutorError;
use crate::inline::{self, Inline, Served};
use crate::linger;
use crate::remote::{RemoteError, RemoteReplica};
use crate::replica::{InlinePanicked, ReplicaActor, Run, Started, panicked};
use crate::request::Request;

/// How many queued requests [`Dispatch::take_batch`] looks at, at most.
const BATCH_SCAN: usize = 256;

/// Whether a queued request joins a batch ([`Dispatch::take_batch`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Join {
    Yes,
    /// Not this one; look further.
    No,
    /// The batch is full: stop looking.
    Full,
}

/// How the requests of a shard reached its local replicas so far ([`Dispatch::hand_offs`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HandOffs {
    /// Sent to an idle replica as a message, waking its thread if it was parked.
    pub sent: u64,
    /// Taken from the queue by a replica as it finished its previous request, or joined to
    /// a batch a replica was starting (dynamic batching).
    pub queued: u64,
    /// Taken by a replica that had found the queue empty and stayed awake for it.
    pub lingered: u64,
    /// Run on the caller's thread ([`crate::inline`]), the requests a caller served from the
    /// queue after its own included.
    pub inline: u64,
}

/// Why a request was not served.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DispatchError {
    /// The Executor's handler returned an error.
    #[error("{replica}: {error}")]
    Executor {
        replica: Arc<str>,
        error: ExecutorError,
        /// The Executor's class, when a remote Executor named it (`ExceptionProto.executor`);
        /// a local one's is in the graph.
        class: Option<Arc<str>>,
        /// The request's docs as the failing handler left them: Jina answers an Executor error
        /// with the request, docs included. `None` when the failure kept none (a batch whose
        /// output could not be split back).
        docs: Option<Arc<DocList>>,
    },
    /// The Executor's handler panicked; the replica is being restarted.
    #[error("{replica} panicked: {message}")]
    Panicked {
        replica: Arc<str>,
        message: String,
        /// As for [`DispatchError::Executor`].
        docs: Option<Arc<DocList>>,
    },
    /// Every replica of the shard is down for good.
    #[error("{shard}: no replica is running")]
    NoReplica { shard: Arc<str> },
    /// The shard's queue is full and the caller asked not to wait.
    #[error("{shard} is busy: {capacity} requests are already in flight or queued")]
    Busy { shard: Arc<str>, capacity: usize },
    /// The Deployment is stopping or stopped.
    #[error("{shard} is closed")]
    Closed { shard: Arc<str> },
    /// A remote replica could not serve the request (after the retries it allows).
    #[error("{replica}: {message}")]
    Unavailable { replica: Arc<str>, message: String },
    /// The request itself is wrong (a `target_executor` that is not a regex): no Executor saw it.
    #[error("invalid request: {message}")]
    BadRequest { message: String },
}

impl DispatchError {
    /// An Executor error raised by `replica`, with no class or docs attached.
    pub fn executor(replica: impl Into<Arc<str>>, error: ExecutorError) -> Self {
        DispatchError::Executor {
            replica: replica.into(),
            error,
            class: None,
            docs: None,
        }
    }

    /// The same error carrying `docs` (for the errors that can: Executor errors and panics).
    pub fn with_docs(mut self, new: DocList) -> Self {
        if let Some(docs) = self.docs_slot() {
            *docs = Some(Arc::new(new));
        }
        self
    }

    /// The failed request's docs, when the error carries them.
    pub fn docs(&self) -> Option<&DocList> {
        match self {
            DispatchError::Executor { docs, .. } | DispatchError::Panicked { docs, .. } => {
                docs.as_deref()
            }
            _ => None,
        }
    }

    /// Where the error keeps docs, for the errors that can.
    pub(crate) fn docs_slot(&mut self) -> Option<&mut Option<Arc<DocList>>> {
        match self {
            DispatchError::Executor { docs, .. } | DispatchError::Panicked { docs, .. } => {
                Some(docs)
            }
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlotState {
    /// Not started yet, or being restarted.
    Down,
    Up,
    /// Stopped for good (restart limit reached, or shut down).
    Dead,
}

#[derive(Clone)]
enum Target {
    None,
    Local(Addr<ReplicaActor>),
    Remote(Arc<dyn RemoteReplica>),
}

struct Slot {
    target: Target,
    state: SlotState,
    outstanding: usize,
    capacity: usize,
    /// When the slot last freed up (a counter): the most recently freed wins ties.
    freed: u64,
    /// The replica has answered its job, found the queue empty and is still awake, waiting
    /// a moment for the next one ([`Dispatch::next`]): idle, and the cheapest to hand work to.
    lingering: bool,
    /// The replica's Executor, when callers may run it ([`crate::inline`]).
    inline: Option<Arc<Inline>>,
    /// Bumped whenever the slot's replica is taken out, replaced or retired: a caller running
    /// the replica's Executor ([`Dispatch::serve_inline`]) touches the slot afterwards only if
    /// it is still the one it claimed.
    generation: u64,
    /// Consecutive failures of a remote replica, and until when it cools down: it is then
    /// used only when no other replica has room, so a dead replica does not attract requests.
    failures: u32,
    cool_until: Option<Instant>,
}

impl Slot {
    /// A slot for a local replica, down until it has started.
    fn local() -> Slot {
        Slot {
            target: Target::None,
            state: SlotState::Down,
            outstanding: 0,
            capacity: 1,
            freed: 0,
            lingering: false,
            inline: None,
            generation: 0,
            failures: 0,
            cool_until: None,
        }
    }
}

impl Slot {
    /// The slot's replica is gone (taken out, stopped or dead): nobody runs its Executor any
    /// more, and a caller that claimed the slot before leaves it alone ([`Dispatch::serve_inline`]).
    fn vacate(&mut self) {
        self.inline = None;
        self.generation += 1;
    }

    /// Out of rotation until its replica is up again (restarting, or its actor is gone).
    fn take_down(&mut self) {
        if self.state != SlotState::Dead {
            self.state = SlotState::Down;
        }
        self.outstanding = 0;
        self.lingering = false;
        self.vacate();
    }
}

/// How long a remote replica that failed is avoided: doubling from 250 ms up to 8 s.
fn cool_down(failures: u32) -> Duration {
    Duration::from_millis(250u64 << failures.saturating_sub(1).min(5))
}

struct State {
    slots: Vec<Slot>,
    queue: VecDeque<Job>,
    closed: bool,
    clock: u64,
}

impl State {
    fn live(&self) -> bool {
        self.slots.iter().any(|s| s.state != SlotState::Dead)
    }

    /// The slot to serve `job` now: up, with room, fewest in flight, freed last; a replica the
    /// job already failed on only when no other has room.
    fn pick(&self, job: &Job) -> Option<usize> {
        let now = self
            .slots
            .iter()
            .any(|s| s.cool_until.is_some())
            .then(Instant::now);
        let mut best: Option<(bool, bool, usize, bool, std::cmp::Reverse<u64>, usize)> = None;
        for (i, s) in self.slots.iter().enumerate() {
            if s.state != SlotState::Up || (s.outstanding >= s.capacity && !s.lingering) {
                continue;
            }
            let cooling = matches!((s.cool_until, now), (Some(t), Some(now)) if t > now);
            let key = (
                cooling,
                job.tried.contains(&i),
                s.outstanding.saturating_sub(usize::from(s.lingering)),
                !s.lingering,
                std::cmp::Reverse(s.freed),
                i,
            );
            if best.is_none_or(|b| key < b) {
                best = Some(key);
            }
        }
        best.map(|(_, _, _, _, _, i)| i)
    }

    fn free(&mut self, i: usize) {
        self.clock += 1;
        let s = &mut self.slots[i];
        s.outstanding = s.outstanding.saturating_sub(1);
        s.freed = self.clock;
    }
}

/// The dispatch table of one shard.
pub struct Dispatch {
    name: Arc<str>,
    state: Mutex<State>,
    permits: Arc<Semaphore>,
    capacity: AtomicUsize,
    /// How often a request may be tried on remote replicas in all.
    max_tries: usize,
    inflight: AtomicUsize,
    closing: AtomicBool,
    drained: Condvar,
    /// News for a lingering replica, which watches it without the lock: bumped when a job is
    /// queued, and when a replica has a message waiting ([`Dispatch::nudge`]).
    news: AtomicU64,
    sent: AtomicU64,
    taken_queued: AtomicU64,
    taken_lingering: AtomicU64,
    served_inline: AtomicU64,
}

/// An accepted request on its way to a replica.
pub struct Job {
    request: Option<Request>,
    reply: Option<oneshot::Sender<Result<Request, DispatchError>>>,
    dispatch: Arc<Dispatch>,
    permit: Option<OwnedSemaphorePermit>,
    /// The remote replicas this request already failed on.
    tried: Vec<usize>,
}

impl Job {
    /// The request, taken out to be served. From here on the replica must [`Job::reply`].
    pub(crate) fn take_request(&mut self) -> Request {
        self.request.take().unwrap_or_default()
    }

    /// Hands `request` back unserved: the job goes back to the front of the queue, for the
    /// next replica that frees up.
    pub(crate) fn put_back(mut self, request: Request) {
        self.request = Some(request);
        // Dropping a job that holds its request and its caller requeues it.
    }

    /// Answers the caller. The job's room in the shard is given back first, so a caller that
    /// has its answer can always send again.
    pub(crate) fn reply(mut self, result: Result<Request, DispatchError>) {
        self.release();
        if let Some(tx) = self.reply.take() {
            // The caller may have given up waiting; the request was still served.
            let _ = tx.send(result);
        }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if self.request.is_some() && self.reply.is_some() {
            // Dropped before a replica took it: put it back rather than lose it.
            let job = Job {
                request: self.request.take(),
                reply: self.reply.take(),
                dispatch: self.dispatch.clone(),
                permit: self.permit.take(),
                tried: std::mem::take(&mut self.tried),
            };
            self.dispatch.requeue(job);
            return;
        }
        self.release();
    }
}

impl Job {
    /// Gives the job's room in the shard back and stops counting it in flight (once).
    fn release(&mut self) {
        if let Some(permit) = self.permit.take() {
            self.dispatch.release(permit);
        }
    }
}

/// Room in a shard held by a request served outside its replica queue (a stateful shard's
/// Raft write or linearizable read): it counts toward the shard's bound and in flight, so
/// such requests wait (or are `Busy`) like any other and a closing shard waits for them,
/// until this is dropped.
pub struct Admission {
    dispatch: Arc<Dispatch>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            self.dispatch.release(permit);
        }
    }
}

impl Dispatch {
    /// A table for `replicas` local replicas (all down until [`Dispatch::replica_up`]) with room
    /// for `queue` waiting requests.
    pub fn new(name: impl Into<Arc<str>>, replicas: usize, queue: usize) -> Arc<Self> {
        let slots = (0..replicas).map(|_| Slot::local()).collect();
        Dispatch::with_slots(name.into(), slots, replicas + queue, 1)
    }

    /// A table for remote replicas, each taking up to `per_replica` requests at once, with
    /// room for `queue` waiting requests. A request is tried on up to `max(3, replicas) + 1`
    /// replicas, as Jina's default `retries` does.
    pub fn remote(
        name: impl Into<Arc<str>>,
        replicas: Vec<Arc<dyn RemoteReplica>>,
        per_replica: usize,
        queue: usize,
    ) -> Arc<Self> {
        let n = replicas.len();
        let per_replica = per_replica.max(1);
        let slots = replicas
            .into_iter()
            .map(|r| Slot {
                target: Target::Remote(r),
                state: SlotState::Up,
                capacity: per_replica,
                ..Slot::local()
            })
            .collect();
        Dispatch::with_slots(name.into(), slots, n * per_replica + queue, n.max(3) + 1)
    }

    fn with_slots(
        name: Arc<str>,
        slots: Vec<Slot>,
        capacity: usize,
        max_tries: usize,
    ) -> Arc<Self> {
        Arc::new(Dispatch {
            name,
            state: Mutex::new(State {
                slots,
                queue: VecDeque::new(),
                closed: false,
                clock: 0,
            }),
            permits: Arc::new(Semaphore::new(capacity)),
            capacity: AtomicUsize::new(capacity),
            max_tries,
            inflight: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            drained: Condvar::new(),
            news: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            taken_queued: AtomicU64::new(0),
            taken_lingering: AtomicU64::new(0),
            served_inline: AtomicU64::new(0),
        })
    }

    /// The shard's name, as errors show it.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock would be a bug in this module, not in user code (no
        // user code runs under it); recover the state rather than poison every later request.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serves `request` on an idle replica, waiting for room when the shard is saturated.
    pub async fn call(self: &Arc<Self>, request: Request) -> Result<Request, DispatchError> {
        let permit = self.permit().await?;
        self.call_with(permit, request).await
    }

    /// Serves `request`, or fails at once with [`DispatchError::Busy`] when the shard is saturated.
    pub async fn try_call(self: &Arc<Self>, request: Request) -> Result<Request, DispatchError> {
        let permit = self.try_permit()?;
        self.call_with(permit, request).await
    }

    /// Room for a request served outside the replica queue, waiting for it when the shard is
    /// saturated.
    pub async fn admit(self: &Arc<Self>) -> Result<Admission, DispatchError> {
        let permit = self.permit().await?;
        self.admission(permit)
    }

    /// Room for a request served outside the replica queue, or [`DispatchError::Busy`] at once.
    pub fn try_admit(self: &Arc<Self>) -> Result<Admission, DispatchError> {
        let permit = self.try_permit()?;
        self.admission(permit)
    }

    fn admission(
        self: &Arc<Self>,
        permit: OwnedSemaphorePermit,
    ) -> Result<Admission, DispatchError> {
        let st = self.lock();
        if st.closed {
            return Err(DispatchError::Closed {
                shard: self.name.clone(),
            });
        }
        self.inflight.fetch_add(1, Ordering::AcqRel);
        drop(st);
        Ok(Admission {
            dispatch: self.clone(),
            permit: Some(permit),
        })
    }

    async fn permit(&self) -> Result<OwnedSemaphorePermit, DispatchError> {
        self.permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| DispatchError::Closed {
                shard: self.name.clone(),
            })
    }

    fn try_permit(&self) -> Result<OwnedSemaphorePermit, DispatchError> {
        self.permits
            .clone()
            .try_acquire_owned()
            .map_err(|e| match e {
                TryAcquireError::NoPermits => DispatchError::Busy {
                    shard: self.name.clone(),
                    capacity: self.capacity(),
                },
                TryAcquireError::Closed => DispatchError::Closed {
                    shard: self.name.clone(),
                },
            })
    }

    /// Gives a request's room back and stops counting it in flight.
    fn release(&self, permit: OwnedSemaphorePermit) {
        // Uncount first, then free the room: a caller let in by the permit counts itself.
        let before = self.inflight.fetch_sub(1, Ordering::AcqRel);
        drop(permit);
        if before == 1 && self.closing.load(Ordering::Acquire) {
            let _guard = self.lock();
            self.drained.notify_all();
        }
    }

    async fn call_with(
        self: &Arc<Self>,
        permit: OwnedSemaphorePermit,
        request: Request,
    ) -> Result<Request, DispatchError> {
        let (tx, rx) = oneshot::channel();
        {
            let mut st = self.lock();
            if st.closed {
                return Err(DispatchError::Closed {
                    shard: self.name.clone(),
                });
            }
            self.inflight.fetch_add(1, Ordering::AcqRel);
            let job = Job {
                request: Some(request),
                reply: Some(tx),
                dispatch: self.clone(),
                permit: Some(permit),
                tried: Vec::new(),
            };
            match Self::inline_slot(&mut st, &job) {
                Some((i, inline, generation)) => {
                    drop(st);
                    self.serve_inline(i, &inline, generation, job);
                }
                None => self.place(st, job, false),
            }
        }
        rx.await.unwrap_or_else(|_| {
            Err(DispatchError::Closed {
                shard: self.name.clone(),
            })
        })
    }

    /// Sends the job to the best replica with room, or queues it (at the front when it is being
    /// given back after a failed hand-over or retried).
    fn place(&self, mut st: MutexGuard<'_, State>, job: Job, front: bool) {
        if !st.live() {
            drop(st);
            job.reply(Err(DispatchError::NoReplica {
                shard: self.name.clone(),
            }));
            return;
        }
        let Some(i) = st.pick(&job) else {
            Self::enqueue(&mut st, job, front);
            self.news.fetch_add(1, Ordering::Release);
            return;
        };
        if st.slots[i].lingering {
            // Awake and waiting: it takes the job from the queue, with no message and no
            // wake-up (a job already there was left for another lingering replica).
            st.slots[i].lingering = false;
            Self::enqueue(&mut st, job, front);
            self.news.fetch_add(1, Ordering::Release);
            return;
        }
        st.slots[i].outstanding += 1;
        let target = st.slots[i].target.clone();
        drop(st);
        self.hand_over(i, target, job);
    }

    /// The replica whose Executor the caller of `job` may run itself, now counted busy, with the
    /// slot's generation: the one [`State::pick`] chooses, when it is idle and parked (not
    /// lingering) and its Executor is quick and opted in ([`crate::inline`]).
    fn inline_slot(st: &mut State, job: &Job) -> Option<(usize, Arc<Inline>, u64)> {
        if !st.live() {
            return None;
        }
        let i = st.pick(job)?;
        let s = &mut st.slots[i];
        let inline = s.inline.as_ref().filter(|x| x.quick())?.clone();
        if s.lingering || s.outstanding != 0 || !matches!(s.target, Target::Local(_)) {
            return None;
        }
        s.outstanding += 1;
        Some((i, inline, s.generation))
    }

    /// Runs `job` on this thread with replica `i`'s Executor (counted busy for it since
    /// generation `generation`), then requests queued meanwhile, up to [`inline::DRAIN`] in all
    /// and while the Executor stays quick; what is left, or what may not run here, goes to the
    /// replica's own thread. If the slot's replica was replaced meanwhile, the slot is left to
    /// the new one.
    fn serve_inline(&self, i: usize, inline: &Inline, generation: u64, mut job: Job) {
        let mut served = 0;
        loop {
            let request = job.take_request();
            match inline.serve(request) {
                Served::Answered(answer) => {
                    self.served_inline.fetch_add(1, Ordering::Relaxed);
                    job.reply(answer);
                }
                Served::Declined(request) => {
                    job.request = Some(request);
                    return self.to_replica(i, generation, job);
                }
                Served::Panicked(request, message) => {
                    let addr = {
                        let mut st = self.lock();
                        let s = &mut st.slots[i];
                        match &s.target {
                            Target::Local(addr) if s.generation == generation => {
                                let addr = addr.clone();
                                s.take_down();
                                Some(addr)
                            }
                            _ => None,
                        }
                    };
                    job.reply(Err(panicked(
                        inline.replica(),
                        message.clone(),
                        request.docs,
                    )));
                    if let Some(addr) = addr {
                        addr.do_send(InlinePanicked(message));
                    }
                    return;
                }
            }
            served += 1;
            let mut st = self.lock();
            let s = &st.slots[i];
            if s.generation != generation {
                return; // replaced meanwhile: the slot is the new replica's
            }
            let up = s.state == SlotState::Up;
            match st.queue.pop_front() {
                None => return st.free(i),
                Some(next) if !up => {
                    drop(st);
                    return self.requeue(next);
                }
                Some(next) if served < inline::DRAIN && inline.quick() => job = next,
                // Enough for one caller, or no longer quick: the rest is the replica's.
                Some(next) => {
                    drop(st);
                    return self.to_replica(i, generation, next);
                }
            }
        }
    }

    /// Hands `job` to replica `i`'s thread, the replica counted busy with it since `generation`;
    /// back to the queue if the replica was replaced meanwhile.
    fn to_replica(&self, i: usize, generation: u64, job: Job) {
        let st = self.lock();
        if st.slots[i].generation != generation {
            return self.place(st, job, true);
        }
        let target = st.slots[i].target.clone();
        drop(st);
        self.hand_over(i, target, job);
    }

    fn enqueue(st: &mut State, job: Job, front: bool) {
        if front {
            st.queue.push_front(job);
        } else {
            st.queue.push_back(job);
        }
    }

    fn hand_over(&self, i: usize, target: Target, mut job: Job) {
        match target {
            Target::Local(addr) => {
                if let Err(e) = addr.try_send(Run(job)) {
                    // The actor stopped (or its mailbox is full, which one-at-a-time hand-over
                    // rules out): take the replica out of rotation and give the job to another.
                    let Run(job) = e.into_inner();
                    self.mark_down(i);
                    self.place(self.lock(), job, true);
                } else {
                    self.sent.fetch_add(1, Ordering::Relaxed);
                }
            }
            Target::Remote(remote) => {
                let request = job.take_request();
                let dispatch = job.dispatch.clone();
                remote.send(
                    request,
                    Box::new(move |result| dispatch.remote_done(i, job, result)),
                );
            }
            Target::None => {
                self.mark_down(i);
                self.place(self.lock(), job, true);
            }
        }
    }

    /// A remote replica answered (or failed) `job`: reply, or retry on another replica; then
    /// give the freed slot the next queued job.
    fn remote_done(&self, i: usize, mut job: Job, result: Result<Request, RemoteError>) {
        let mut st = self.lock();
        st.free(i);
        let slot = &mut st.slots[i];
        match &result {
            Err(RemoteError { retry: true, .. }) => {
                slot.failures += 1;
                slot.cool_until = Some(Instant::now() + cool_down(slot.failures));
            }
            _ => {
                slot.failures = 0;
                slot.cool_until = None;
            }
        }
        match result {
            Ok(r) => {
                drop(st);
                job.reply(Ok(r));
            }
            Err(RemoteError {
                error,
                retry: true,
                request: Some(request),
            }) if job.tried.len() + 1 < self.max_tries && !st.closed => {
                tracing::warn!(shard = %self.name, "{error}; retrying on another replica");
                job.tried.push(i);
                job.request = Some(*request);
                self.place(st, job, true);
            }
            Err(e) => {
                drop(st);
                job.reply(Err(e.error));
            }
        }
        self.feed(i);
    }

    /// Hands queued jobs to slot `i` while it has room.
    fn feed(&self, i: usize) {
        loop {
            let mut st = self.lock();
            let s = &st.slots[i];
            if s.state != SlotState::Up || s.outstanding >= s.capacity {
                return;
            }
            let Some(job) = st.queue.pop_front() else {
                return;
            };
            st.slots[i].outstanding += 1;
            let target = st.slots[i].target.clone();
            drop(st);
            self.hand_over(i, target, job);
        }
    }

    fn mark_down(&self, i: usize) {
        self.lock().slots[i].take_down();
    }

    fn requeue(&self, job: Job) {
        self.place(self.lock(), job, true);
    }

    /// Called by local replica `i` when it has answered a job: the next queued job for it, if
    /// any; otherwise the replica is free.
    ///
    /// With no job queued, the replica may first linger ([`crate::linger`]): it stays counted
    /// busy, so nobody sends it a message meanwhile, but [`State::pick`] sees it as idle and
    /// hands it work first, through the queue.
    pub(crate) fn next(&self, i: usize) -> Option<Job> {
        let mut st = self.lock();
        if let Some(job) = st.queue.pop_front() {
            self.taken_queued.fetch_add(1, Ordering::Relaxed);
            return Some(job);
        }
        let lingering = (!st.closed && st.slots[i].state == SlotState::Up)
            .then(linger::Lingering::begin)
            .flatten();
        let Some(lingering) = lingering else {
            st.free(i);
            return None;
        };
        st.slots[i].lingering = true;
        let seen = self.news.load(Ordering::Acquire);
        drop(st);
        lingering.wait_for_change(&self.news, seen);
        let mut st = self.lock();
        st.slots[i].lingering = false;
        if let Some(job) = st.queue.pop_front() {
            self.taken_lingering.fetch_add(1, Ordering::Relaxed);
            return Some(job);
        }
        st.free(i);
        None
    }

    /// Ends the lingering of this shard's replicas: one of them has a message in its mailbox
    /// (a Raft write to apply, a read sent to the leader's replica), which it reads only once
    /// it is back in its actor's loop. Call before sending it.
    pub(crate) fn nudge(&self) {
        self.news.fetch_add(1, Ordering::Release);
    }

    /// How this shard's requests have reached its local replicas so far.
    pub fn hand_offs(&self) -> HandOffs {
        HandOffs {
            sent: self.sent.load(Ordering::Relaxed),
            queued: self.taken_queued.load(Ordering::Relaxed),
            lingered: self.taken_lingering.load(Ordering::Relaxed),
            inline: self.served_inline.load(Ordering::Relaxed),
        }
    }

    /// Takes the queued jobs that `joins` accepts, oldest first, for a replica that serves them
    /// in one batch with the job it already holds (dynamic batching). Jobs turned down keep
    /// their place; the scan ends at the first [`Join::Full`].
    pub(crate) fn take_batch(&self, mut joins: impl FnMut(&Request) -> Join) -> Vec<Job> {
        let mut st = self.lock();
        let mut taken = Vec::new();
        let mut i = 0;
        // Look at the oldest few only: the scan runs under the shard's lock.
        let mut seen = 0;
        while i < st.queue.len() && seen < BATCH_SCAN {
            seen += 1;
            let verdict = st.queue[i].request.as_ref().map_or(Join::No, &mut joins);
            match verdict {
                Join::Yes => {
                    taken.extend(st.queue.remove(i));
                    self.taken_queued.fetch_add(1, Ordering::Relaxed);
                }
                Join::No => i += 1,
                Join::Full => break,
            }
        }
        taken
    }

    /// Replica `i` is out of rotation (its handler panicked; it is being restarted).
    pub(crate) fn replica_down(&self, i: usize) {
        self.mark_down(i);
    }

    /// Local replica `i` (re)started at `addr`: it takes the oldest queued job, or waits free.
    pub(crate) fn replica_up(&self, i: usize, started: Started) {
        {
            let mut st = self.lock();
            let s = &mut st.slots[i];
            s.target = Target::Local(started.addr);
            s.inline = started.inline;
            s.generation += 1;
            s.state = SlotState::Up;
            s.outstanding = 0;
            s.lingering = false;
        }
        self.feed(i);
    }

    /// Replica `i` is gone for good. When it was the last one, every queued job fails.
    pub(crate) fn replica_dead(&self, i: usize) {
        let mut st = self.lock();
        st.slots[i].state = SlotState::Dead;
        st.slots[i].target = Target::None;
        st.slots[i].vacate();
        if st.live() {
            return;
        }
        let queued: Vec<Job> = st.queue.drain(..).collect();
        drop(st);
        for job in queued {
            job.reply(Err(DispatchError::NoReplica {
                shard: self.name.clone(),
            }));
        }
    }

    /// Takes local replica `i` out for good at shutdown, returning its address so it can be
    /// stopped.
    pub(crate) fn retire(&self, i: usize) -> Option<Addr<ReplicaActor>> {
        let mut st = self.lock();
        st.slots[i].state = SlotState::Dead;
        st.slots[i].vacate();
        match std::mem::replace(&mut st.slots[i].target, Target::None) {
            Target::Local(addr) => Some(addr),
            _ => None,
        }
    }

    /// Stops accepting requests and waits until every accepted one has been answered.
    pub fn close(&self) {
        self.permits.close();
        let mut st = self.lock();
        st.closed = true;
        self.closing.store(true, Ordering::Release);
        while self.inflight.load(Ordering::Acquire) > 0 {
            st = self.drained.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Requests accepted and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.inflight.load(Ordering::Acquire)
    }

    /// The replicas currently able to take requests.
    pub fn running_replicas(&self) -> usize {
        let st = self.lock();
        st.slots.iter().filter(|s| s.state == SlotState::Up).count()
    }

    /// How many requests the shard holds at most (in flight plus queued).
    pub fn capacity(&self) -> usize {
        self.capacity.load(Ordering::Relaxed)
    }

    /// Local replica `i`'s actor, while it is in rotation or being brought up.
    pub(crate) fn local(&self, i: usize) -> Option<Addr<ReplicaActor>> {
        match &self.lock().slots.get(i)?.target {
            Target::Local(addr) => Some(addr.clone()),
            _ => None,
        }
    }

    /// Makes room for local replica `i` (a shard scaled up), down until [`Dispatch::replica_up`].
    /// The shard's capacity grows by one request per new slot.
    pub(crate) fn ensure_slot(&self, i: usize) {
        let mut st = self.lock();
        while st.slots.len() <= i {
            st.slots.push(Slot::local());
            self.permits.add_permits(1);
            self.capacity.fetch_add(1, Ordering::Relaxed);
        }
        if st.slots[i].state == SlotState::Dead {
            st.slots[i].state = SlotState::Down;
        }
    }
}
