//! Lingering: a replica that has answered its request and finds its shard's queue empty stays
//! awake for a moment, watching the queue, before its thread parks.
//!
//! Why: handing a request to a parked replica thread costs a wake-up (an eventfd write, and on
//! a VM an interrupt to a halted vCPU), and with several replicas on few cores nearly every
//! request paid it. Under concurrent load the next request usually comes within microseconds:
//! a replica that is still awake takes it from the queue with no message and no wake-up, and
//! the dispatcher prefers such a replica over a parked one (it is idle, so idle-first holds).
//! Measured on 2 cores (`flotilla bench noop`, gRPC, 3 replicas, 16 and 64 clients): from about
//! 0.53× the bare tonic echo's posts/s to about 0.75×.
//!
//! When: only while some other call is under way in the process ([`InFlight`]). A lone
//! sequential caller is answered fastest by a replica that parks at once (the caller's thread
//! then runs on the core it frees instead of waking another), and an idle process spins
//! nothing. At most two replicas per core linger at a time (they yield the core between checks;
//! on 2 cores, capping them at one per core cost 3 replicas a tenth of their posts/s), and none
//! on a single core, where spinning only delays the thread that brings the work.
//!
//! `FLOTILLA_LINGER_US` sets the window (default 50 µs, at most 1 ms; 0 turns lingering off),
//! read once. A replica has messages besides requests: a stateful shard's Raft group nudges the
//! shard ([`crate::dispatch::Dispatch::nudge`]) before each of its own (a write to apply, a read
//! sent to the leader's replica, a snapshot to take or restore), so that a lingering replica
//! goes back to its mailbox at once. The shard supervisor's messages (stop, restart, scale) are
//! not nudged: they wait at most one window.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The window when none is set.
const DEFAULT_US: u64 = 50;
/// The longest window taken: a lingering replica reads no actor message meanwhile.
const MAX_US: u64 = 1000;

/// The environment variable that sets the window, in microseconds.
pub const WINDOW_ENV: &str = "FLOTILLA_LINGER_US";

struct Policy {
    window: Duration,
    /// How many replicas of the process may linger at once.
    most: usize,
}

fn policy() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let us = match std::env::var(WINDOW_ENV) {
            Err(_) => DEFAULT_US,
            Ok(v) => match v.trim().parse::<u64>() {
                Ok(us) if us <= MAX_US => us,
                Ok(_) => {
                    tracing::warn!("{WINDOW_ENV}={v:?} is over {MAX_US} µs; using {MAX_US}");
                    MAX_US
                }
                Err(_) => {
                    tracing::warn!(
                        "{WINDOW_ENV}={v:?} is not a number of microseconds; using {DEFAULT_US}"
                    );
                    DEFAULT_US
                }
            },
        };
        Policy {
            window: if cores < 2 {
                Duration::ZERO
            } else {
                Duration::from_micros(us)
            },
            most: 2 * cores,
        }
    })
}

/// Calls under way in this process: Flow and Deployment calls from any caller, and, counted
/// apart, requests a server has received and not yet answered (being decoded, run or encoded).
static CALLS: AtomicUsize = AtomicUsize::new(0);
static RECEIVED: AtomicUsize = AtomicUsize::new(0);
/// Replicas lingering now.
static LINGERING: AtomicUsize = AtomicUsize::new(0);

/// Counts one call, or one received request, as under way while it lives.
pub struct InFlight(&'static AtomicUsize);

impl InFlight {
    /// A Flow or Deployment call.
    pub(crate) fn call() -> InFlight {
        CALLS.fetch_add(1, Ordering::Relaxed);
        InFlight(&CALLS)
    }

    /// A request a server (a gRPC gateway) has received, from its arrival until its answer is
    /// ready: work it will hand to replicas, which a lingering replica can wait for.
    pub fn received() -> InFlight {
        RECEIVED.fetch_add(1, Ordering::Relaxed);
        InFlight(&RECEIVED)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether a call other than the one just answered is under way, so that more work is likely
/// soon. The answered call still counts until its caller has taken the answer, so one call
/// (or one received request) is the replica's own.
fn others_in_flight() -> bool {
    CALLS.load(Ordering::Relaxed) > 1 || RECEIVED.load(Ordering::Relaxed) > 1
}

/// A replica's place among the lingering ones, given back when dropped.
pub(crate) struct Lingering {
    window: Duration,
}

impl Lingering {
    /// A place to linger in, when lingering is on, worth it now and a place is free.
    pub(crate) fn begin() -> Option<Lingering> {
        let p = policy();
        if p.window.is_zero() || !others_in_flight() {
            return None;
        }
        LINGERING
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < p.most).then_some(n + 1)
            })
            .ok()?;
        Some(Lingering { window: p.window })
    }

    /// Waits until `counter` moves from `seen` or the window passes. Spins briefly between
    /// checks and yields the core between rounds, so that a thread that has work (the caller,
    /// a gateway thread) is not kept off the core.
    pub(crate) fn wait_for_change(self, counter: &AtomicU64, seen: u64) {
        let until = Instant::now() + self.window;
        loop {
            for _ in 0..8 {
                if counter.load(Ordering::Acquire) != seen {
                    return;
                }
                std::hint::spin_loop();
            }
            if Instant::now() >= until {
                return;
            }
            std::thread::yield_now();
        }
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        LINGERING.fetch_sub(1, Ordering::AcqRel);
    }
}
