//! The actix System that every flotilla runtime in the process shares.
//!
//! Replicas live on Arbiters, and an Arbiter can only be created where an actix System runs. So
//! that an app can start a Flow from anywhere (plain `main`, a tokio task, a test), flotilla runs
//! one System on a thread of its own, `flotilla-system`, started on first use. The supervisors
//! live there; every replica gets an Arbiter (a thread) of its own.

use std::sync::OnceLock;
use std::sync::mpsc;

use actix_rt::{Arbiter, System};

/// A handle on the shared System's own arbiter.
pub(crate) struct SystemHandle {
    arbiter: actix_rt::ArbiterHandle,
}

static SYSTEM: OnceLock<SystemHandle> = OnceLock::new();

/// The shared System, started on first use.
pub(crate) fn system() -> &'static SystemHandle {
    SYSTEM.get_or_init(|| {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("flotilla-system".into())
            .spawn(move || {
                let runner = System::new();
                // The System's arbiter runs on this thread; hand its handle out, then serve.
                let _ = tx.send(Arbiter::current());
                if let Err(e) = runner.run() {
                    tracing::error!("flotilla-system stopped: {e}");
                }
            })
            .expect("spawning the flotilla-system thread");
        let arbiter = rx.recv().expect("flotilla-system thread started");
        SystemHandle { arbiter }
    })
}

impl SystemHandle {
    /// Runs `f` on the System's thread and returns what it returns (blocking the caller).
    pub(crate) fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        let sent = self.arbiter.spawn_fn(move || {
            let _ = tx.send(f());
        });
        assert!(sent, "the flotilla-system arbiter is gone");
        rx.recv().expect("flotilla-system ran the closure")
    }
}
