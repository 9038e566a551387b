//! Idle-first dispatch of requests to the replicas of one shard.
//!
//! The table is shared by the callers, the replicas and the shard supervisor, so a request costs
//! one lock and one message to a replica, with no hop through a supervisor's mailbox:
//!
//! - a request goes to a replica that is idle, never to a busy one while another is idle; of
//!   the idle ones, the one that went idle last (its thread is likely still awake and its caches
//!   warm, so handing it work costs no wake-up of a parked thread);
//! - when every replica is busy it waits in one FIFO queue shared by the shard, and the first
//!   replica to finish takes it: a slow request never holds up others behind it while another
//!   replica could serve them;
//! - the queue is bounded: past `replicas + queue` accepted requests, callers wait for room
//!   (backpressure), or get [`DispatchError::Busy`] from [`Dispatch::try_call`];
//! - a job that is dropped unanswered (its replica stopped before taking it) goes back to the
//!   front of the queue, so an accepted request is answered exactly once.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use actix::Addr;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, oneshot};

use crate::executor::ExecutorError;
use crate::replica::{ReplicaActor, Run};
use crate::request::Request;

/// Why a request was not served.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DispatchError {
    /// The Executor's handler returned an error.
    #[error("{replica}: {error}")]
    Executor {
        replica: Arc<str>,
        error: ExecutorError,
    },
    /// The Executor's handler panicked; the replica is being restarted.
    #[error("{replica} panicked: {message}")]
    Panicked { replica: Arc<str>, message: String },
    /// Every replica of the shard is down for good.
    #[error("{shard}: no replica is running")]
    NoReplica { shard: Arc<str> },
    /// The shard's queue is full and the caller asked not to wait.
    #[error("{shard} is busy: {capacity} requests are already in flight or queued")]
    Busy { shard: Arc<str>, capacity: usize },
    /// The Deployment is stopping or stopped.
    #[error("{shard} is closed")]
    Closed { shard: Arc<str> },
    /// A remote replica could not be reached (used by external Executors).
    #[error("{replica}: {message}")]
    Unavailable { replica: Arc<str>, message: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlotState {
    /// Not started yet, or being restarted.
    Down,
    Idle,
    Busy,
    /// Stopped for good (restart limit reached).
    Dead,
}

struct Slot {
    addr: Option<Addr<ReplicaActor>>,
    state: SlotState,
}

struct State {
    slots: Vec<Slot>,
    idle: VecDeque<usize>,
    queue: VecDeque<Job>,
    closed: bool,
}

impl State {
    fn live(&self) -> bool {
        self.slots.iter().any(|s| s.state != SlotState::Dead)
    }
}

/// The dispatch table of one shard.
pub struct Dispatch {
    name: Arc<str>,
    state: Mutex<State>,
    permits: Arc<Semaphore>,
    capacity: usize,
    inflight: AtomicUsize,
    closing: AtomicBool,
    drained: Condvar,
}

/// An accepted request on its way to a replica.
pub struct Job {
    request: Option<Request>,
    reply: Option<oneshot::Sender<Result<Request, DispatchError>>>,
    dispatch: Arc<Dispatch>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Job {
    /// The request, taken out to be served. From here on the replica must [`Job::reply`].
    pub(crate) fn take_request(&mut self) -> Request {
        self.request.take().unwrap_or_default()
    }

    /// Answers the caller.
    pub(crate) fn reply(mut self, result: Result<Request, DispatchError>) {
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
            };
            self.dispatch.requeue(job);
            return;
        }
        drop(self.permit.take());
        let before = self.dispatch.inflight.fetch_sub(1, Ordering::AcqRel);
        if before == 1 && self.dispatch.closing.load(Ordering::Acquire) {
            let _guard = self.dispatch.lock();
            self.dispatch.drained.notify_all();
        }
    }
}

impl Dispatch {
    /// A table for `replicas` replicas (all down until [`Dispatch::replica_up`]) with room for
    /// `queue` waiting requests.
    pub fn new(name: impl Into<Arc<str>>, replicas: usize, queue: usize) -> Arc<Self> {
        let capacity = replicas + queue;
        Arc::new(Dispatch {
            name: name.into(),
            state: Mutex::new(State {
                slots: (0..replicas)
                    .map(|_| Slot {
                        addr: None,
                        state: SlotState::Down,
                    })
                    .collect(),
                idle: VecDeque::with_capacity(replicas),
                queue: VecDeque::with_capacity(queue.min(1024)),
                closed: false,
            }),
            permits: Arc::new(Semaphore::new(capacity)),
            capacity,
            inflight: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            drained: Condvar::new(),
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
        let permit =
            self.permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| DispatchError::Closed {
                    shard: self.name.clone(),
                })?;
        self.call_with(permit, request).await
    }

    /// Serves `request`, or fails at once with [`DispatchError::Busy`] when the shard is saturated.
    pub async fn try_call(self: &Arc<Self>, request: Request) -> Result<Request, DispatchError> {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(TryAcquireError::NoPermits) => {
                return Err(DispatchError::Busy {
                    shard: self.name.clone(),
                    capacity: self.capacity,
                });
            }
            Err(TryAcquireError::Closed) => {
                return Err(DispatchError::Closed {
                    shard: self.name.clone(),
                });
            }
        };
        self.call_with(permit, request).await
    }

    async fn call_with(
        self: &Arc<Self>,
        permit: OwnedSemaphorePermit,
        request: Request,
    ) -> Result<Request, DispatchError> {
        let (tx, rx) = oneshot::channel();
        {
            let st = self.lock();
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
            };
            self.place(st, job, false);
        }
        rx.await.unwrap_or_else(|_| {
            Err(DispatchError::Closed {
                shard: self.name.clone(),
            })
        })
    }

    /// Sends the job to the most recently idle replica, or queues it (at the front when it is being
    /// given back after a failed hand-over).
    fn place(&self, mut st: MutexGuard<'_, State>, job: Job, front: bool) {
        if !st.live() {
            drop(st);
            job.reply(Err(DispatchError::NoReplica {
                shard: self.name.clone(),
            }));
            return;
        }
        let Some(i) = st.idle.pop_back() else {
            if front {
                st.queue.push_front(job);
            } else {
                st.queue.push_back(job);
            }
            return;
        };
        st.slots[i].state = SlotState::Busy;
        let addr = st.slots[i].addr.clone();
        drop(st);
        self.hand_over(i, addr, job);
    }

    fn hand_over(&self, i: usize, addr: Option<Addr<ReplicaActor>>, job: Job) {
        let Some(addr) = addr else {
            self.mark_down(i);
            self.place(self.lock(), job, true);
            return;
        };
        if let Err(e) = addr.try_send(Run(job)) {
            // The actor stopped (or its mailbox is full, which idle-only hand-over rules out):
            // take the replica out of rotation and give the job to another.
            let Run(job) = e.into_inner();
            self.mark_down(i);
            self.place(self.lock(), job, true);
        }
    }

    fn mark_down(&self, i: usize) {
        let mut st = self.lock();
        if st.slots[i].state != SlotState::Dead {
            st.slots[i].state = SlotState::Down;
        }
        st.idle.retain(|&j| j != i);
    }

    fn requeue(&self, job: Job) {
        self.place(self.lock(), job, true);
    }

    /// Called by replica `i` when it has answered a job: the next queued job for it, if any;
    /// otherwise the replica is marked idle.
    pub(crate) fn next(&self, i: usize) -> Option<Job> {
        let mut st = self.lock();
        if let Some(job) = st.queue.pop_front() {
            return Some(job);
        }
        if st.slots[i].state == SlotState::Busy {
            st.slots[i].state = SlotState::Idle;
            st.idle.push_back(i);
        }
        None
    }

    /// Replica `i` is out of rotation (its handler panicked; it is being restarted).
    pub(crate) fn replica_down(&self, i: usize) {
        self.mark_down(i);
    }

    /// Replica `i` (re)started at `addr`: it takes the oldest queued job, or becomes idle.
    pub(crate) fn replica_up(&self, i: usize, addr: Addr<ReplicaActor>) {
        let mut st = self.lock();
        st.slots[i].addr = Some(addr.clone());
        if let Some(job) = st.queue.pop_front() {
            st.slots[i].state = SlotState::Busy;
            drop(st);
            self.hand_over(i, Some(addr), job);
        } else {
            st.slots[i].state = SlotState::Idle;
            st.idle.push_back(i);
        }
    }

    /// Replica `i` is gone for good. When it was the last one, every queued job fails.
    pub(crate) fn replica_dead(&self, i: usize) {
        let mut st = self.lock();
        st.slots[i].state = SlotState::Dead;
        st.slots[i].addr = None;
        st.idle.retain(|&j| j != i);
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

    /// Takes replica `i` out for good at shutdown, returning its address so it can be stopped.
    pub(crate) fn retire(&self, i: usize) -> Option<Addr<ReplicaActor>> {
        let mut st = self.lock();
        st.slots[i].state = SlotState::Dead;
        st.idle.retain(|&j| j != i);
        st.slots[i].addr.take()
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

    /// The replicas currently able to take requests (idle or busy).
    pub fn running_replicas(&self) -> usize {
        let st = self.lock();
        st.slots
            .iter()
            .filter(|s| matches!(s.state, SlotState::Idle | SlotState::Busy))
            .count()
    }

    /// How many requests the shard holds at most (replicas plus queue).
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}
