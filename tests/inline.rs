//! Inline serving (`flotilla_actors::inline`): a caller runs a quick, opted-in Executor's
//! handler on its own thread when the replica chosen for its request is idle; a slow handler, an
//! Executor with an async handler, and the first call (not measured yet) are served on the
//! replica's thread. Either way a replica serves one request at a time, every request is
//! answered once with its own docs, and a panic on a caller's thread restarts the replica.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::within;
use flotilla::actors::dispatch::{DispatchError, HandOffs};
use flotilla::actors::executor::factory;
use flotilla::actors::prelude::*;
use flotilla::{Deployment, Error, Running};

/// Whether a handler runs inline depends on how long its calls took: the tests of this file
/// run one at a time, so that none stalls another's handlers.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn thread() -> String {
    format!("{:?}", std::thread::current().id())
}

/// Marks every doc with the thread its handler ran on (`/where`, `/slow` after sleeping) or
/// with the number of its instance (`/who`); `/boom` panics, naming its thread. Fails a request
/// if another call of the same instance is under way; counts its instances dropped.
struct Probe {
    busy: AtomicBool,
    instance: usize,
    dropped: Arc<AtomicUsize>,
}

impl Probe {
    fn mark(&mut self, req: &mut Request, text: String) -> Result<(), ExecutorError> {
        if self.busy.swap(true, Ordering::SeqCst) {
            return Err(ExecutorError::new("two calls at once on one replica"));
        }
        // A moment inside the handler, so that overlapping calls would meet here.
        std::hint::black_box((0..20).sum::<u64>());
        for d in req.docs.iter_mut() {
            d.set_text(text.clone());
        }
        self.busy.store(false, Ordering::SeqCst);
        Ok(())
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

impl Executor for Probe {
    fn requests(r: &mut Requests<Self>) {
        r.on("/where", |p: &mut Probe, req: &mut Request, _: &Context| {
            p.mark(req, thread())
        });
        r.on("/who", |p: &mut Probe, req: &mut Request, _: &Context| {
            let me = p.instance.to_string();
            p.mark(req, me)
        });
        r.on("/slow", |p: &mut Probe, req: &mut Request, _: &Context| {
            std::thread::sleep(Duration::from_millis(2));
            p.mark(req, thread())
        });
        r.on(
            "/boom",
            |_: &mut Probe, _: &mut Request, _: &Context| -> () { panic!("boom on {}", thread()) },
        );
        r.inline();
    }
}

/// Like [`Probe`]'s `/where`, but async: it never runs on a caller's thread, opted in or not.
struct AsyncProbe;

impl Executor for AsyncProbe {
    fn requests(r: &mut Requests<Self>) {
        r.on_async(
            "/where",
            async |_: &mut AsyncProbe, req: &mut Request, _: &Context| {
                for d in req.docs.iter_mut() {
                    d.set_text(thread());
                }
            },
        );
        r.inline();
    }
}

/// A Deployment of `replicas` Probes; the count of Probe instances dropped so far.
fn start(name: &str, replicas: usize) -> (Running, Arc<AtomicUsize>) {
    let dropped = Arc::new(AtomicUsize::new(0));
    let built = Arc::new(AtomicUsize::new(0));
    let counter = dropped.clone();
    let dep = Deployment::new()
        .name(name)
        .uses_factory(
            "Probe",
            factory(move |_| {
                Ok(Probe {
                    busy: AtomicBool::new(false),
                    instance: built.fetch_add(1, Ordering::SeqCst) + 1,
                    dropped: counter.clone(),
                })
            }),
        )
        .replicas(replicas as i64)
        .start()
        .unwrap();
    (dep, dropped)
}

/// Calls `/where` until a call runs on this thread (the Executor is then known to be quick);
/// how many calls that took.
async fn until_inline(dep: &Running) -> u64 {
    let me = thread();
    for i in 0..2000 {
        let (ran_on, _) = within(30, call(dep, "/where", &format!("warm{i}"))).await;
        if ran_on == me {
            return i + 1;
        }
    }
    panic!("no call ran on the caller's thread");
}

fn hand_offs(dep: &Running) -> HandOffs {
    dep.kernel().routers()[0].shards()[0].dispatch().hand_offs()
}

/// Calls `endpoint` with one doc; the thread its handler ran on, and the replica that served.
async fn call(dep: &Running, endpoint: &str, id: &str) -> (String, Vec<String>) {
    let req = Request::new(endpoint, DocList::from(vec![Doc::with_id(id)]));
    let out = dep.call(req).await.expect("served");
    assert_eq!(out.docs.len(), 1);
    assert_eq!(out.docs[0].id(), id, "an answer carries its own doc");
    let ran_on = out.docs[0].text().expect("marked").to_owned();
    (ran_on, out.routes.iter().map(|r| r.to_string()).collect())
}

// A current-thread runtime: every call is made from this test's thread.
#[tokio::test]
async fn a_quick_handler_runs_on_the_callers_thread_once_measured() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (dep, _) = start("probe", 1);
    let me = thread();
    // Not measured yet: the replica's own thread serves the first call.
    let (first, routes) = within(30, call(&dep, "/where", "d0")).await;
    assert_ne!(
        first, me,
        "the first call is served on the replica's thread"
    );
    assert_eq!(routes, ["probe/rep-0"]);
    // The next calls run here once the handler's average is under the limit (20 µs): at once
    // for a handler of a microsecond, later when tests beside this one stall it.
    let (mut here, mut calls) = (0u64, 1u64);
    while calls < 2000 && (here < 50 || calls < 200) {
        let (ran_on, routes) = within(30, call(&dep, "/where", &format!("d{calls}"))).await;
        calls += 1;
        assert_eq!(
            routes,
            ["probe/rep-0"],
            "the same replica serves, whichever thread"
        );
        if ran_on == me {
            here += 1;
        } else {
            assert_eq!(ran_on, first, "off this thread means on the replica's");
        }
    }
    assert!(
        here >= 50,
        "only {here} of {calls} calls ran on the caller's thread"
    );
    let h = hand_offs(&dep);
    assert_eq!(h.inline, here, "{h:?}");
    assert_eq!(h.sent + h.queued + h.lingered + h.inline, calls, "{h:?}");
    dep.close();
}

#[tokio::test]
async fn a_slow_handler_stays_on_its_replicas_thread() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (dep, _) = start("slow", 1);
    let me = thread();
    for i in 0..20 {
        let (ran_on, _) = within(30, call(&dep, "/slow", &format!("s{i}"))).await;
        assert_ne!(ran_on, me, "a 2 ms handler never runs on a caller's thread");
    }
    // Its average is far over the limit now: quick calls go to the replica too, until their
    // own times bring the average down.
    let (ran_on, _) = within(30, call(&dep, "/where", "w0")).await;
    assert_ne!(ran_on, me);
    let mut here = 0u64;
    for i in 1..2000 {
        let (ran_on, _) = within(30, call(&dep, "/where", &format!("w{i}"))).await;
        here += u64::from(ran_on == me);
        if here == 10 {
            break;
        }
    }
    assert_eq!(
        here, 10,
        "quick calls never came back to the caller's thread"
    );
    assert_eq!(hand_offs(&dep).inline, here);
    dep.close();
}

#[tokio::test]
async fn an_async_executor_is_never_run_inline() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dep = Deployment::new()
        .name("async")
        .uses_factory("AsyncProbe", factory(|_| Ok(AsyncProbe)))
        .start()
        .unwrap();
    let me = thread();
    for i in 0..50 {
        let (ran_on, _) = within(30, call(&dep, "/where", &format!("a{i}"))).await;
        assert_ne!(ran_on, me);
    }
    assert_eq!(hand_offs(&dep).inline, 0);
    dep.close();
}

#[tokio::test]
async fn a_panic_on_the_callers_thread_restarts_the_replica() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (dep, dropped) = start("crashy", 1);
    let me = thread();
    let dispatch = dep.kernel().routers()[0].shards()[0].dispatch().clone();
    // The panic runs here when the Executor is still quick after the last call that did; a
    // stall in between sends it to the replica's thread instead, which restarts the replica
    // too: then try again, with the next instance.
    let mut panics = 0;
    loop {
        until_inline(&dep).await;
        let (before, _) = within(30, call(&dep, "/who", "who")).await;
        let boom = Request::new("/boom", DocList::from(vec![Doc::with_id("b")]));
        let message = match within(30, dep.call(boom)).await {
            Err(Error::Request(DispatchError::Panicked {
                replica,
                message,
                docs,
            })) => {
                assert_eq!(&*replica, "crashy/rep-0");
                assert_eq!(docs.as_deref().map(DocList::ids), Some(vec!["b"]));
                message
            }
            other => panic!("expected the panic, got {other:?}"),
        };
        panics += 1;
        // The replica is replaced by a fresh instance, which serves; the broken one is gone.
        within(30, async {
            while dispatch.running_replicas() != 1 || dropped.load(Ordering::SeqCst) < panics {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        let (after, routes) = within(30, call(&dep, "/who", "who")).await;
        assert_eq!(routes, ["crashy/rep-0"]);
        assert_ne!(after, before, "a fresh instance serves after the panic");
        if message == format!("boom on {me}") {
            break; // it panicked on this thread
        }
        assert!(
            panics < 5,
            "the panic never ran on the caller's thread: {message}"
        );
    }
    dep.close();
}

#[tokio::test]
async fn a_stopped_replica_takes_its_executor_with_it() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (dep, dropped) = start("stopped", 1);
    until_inline(&dep).await;
    let shard = &dep.kernel().routers()[0].shards()[0];
    shard.stop_replica(0);
    // Callers no longer hold the Executor: it is dropped with its replica.
    within(30, async {
        while dropped.load(Ordering::SeqCst) < 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    shard.restart_replica(0).expect("restarted");
    until_inline(&dep).await;
    let (who, _) = within(30, call(&dep, "/who", "who")).await;
    assert_eq!(who, "2", "the restarted replica's own Executor serves");
    dep.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_share_replicas_one_request_at_a_time() {
    let _serial = ONE_AT_A_TIME.lock().await;
    for replicas in [1, 3] {
        let dep = Arc::new(start(&format!("busy{replicas}"), replicas).0);
        let warm = until_inline(&dep).await;
        let tasks: Vec<_> = (0..8)
            .map(|c| {
                let dep = dep.clone();
                tokio::spawn(async move {
                    for i in 0..300 {
                        // `call` fails the test on an error: "two calls at once" included.
                        call(&dep, "/where", &format!("c{c}-{i}")).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            within(60, t).await.expect("a caller");
        }
        let h = hand_offs(&dep);
        assert_eq!(
            h.sent + h.queued + h.lingered + h.inline,
            warm + 8 * 300,
            "{h:?}"
        );
        assert!(
            h.inline > 1,
            "no caller ran a replica's Executor under load: {h:?}"
        );
        Arc::try_unwrap(dep).ok().expect("the last handle").close();
    }
}
