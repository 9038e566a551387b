//! Backpressure: a shard holds at most `replicas + queue_size` requests; past that, callers wait
//! (or get `Busy` when they ask not to wait), and nothing is lost.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{recorder, within};
use flotilla::actors::dispatch::DispatchError;
use flotilla::actors::request::Request;
use flotilla::{Deployment, Doc, DocList, Params};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_makes_callers_wait_not_grow() {
    let (f, log, _) = recorder();
    let dep = Deployment::new()
        .uses_factory("Recorder", f)
        .replicas(1)
        .queue_size(2)
        .start()
        .unwrap();
    let dispatch = dep.kernel().routers()[0].shards()[0].dispatch().clone();
    assert_eq!(dispatch.capacity(), 3);
    let mut params = Params::new();
    params.insert("ms".into(), serde_json::json!(150));
    let params = Arc::new(params);
    let dep = Arc::new(dep);
    let posts: Vec<_> = (0..8)
        .map(|i| {
            let dep = dep.clone();
            let mut req = Request::new("/hold", DocList::from(Doc::with_id(format!("r{i}"))));
            req.parameters = params.clone();
            tokio::spawn(async move { dep.call(req).await })
        })
        .collect();
    // While they drain, the shard never holds more than its capacity.
    let mut peak = 0;
    let watch = async {
        while log.lock().unwrap().len() < 8 {
            peak = peak.max(dispatch.in_flight());
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    within(60, watch).await;
    assert!(
        peak <= 3,
        "in flight peaked at {peak}, over the capacity of 3"
    );
    assert_eq!(peak, 3, "the queue filled up");
    for p in posts {
        assert_eq!(within(30, p).await.unwrap().unwrap().docs.len(), 1);
    }
    assert_eq!(log.lock().unwrap().len(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_call_is_refused_with_busy_when_full() {
    let (f, _log, _) = recorder();
    let dep = Deployment::new()
        .uses_factory("Recorder", f)
        .replicas(1)
        .queue_size(0)
        .start()
        .unwrap();
    let dispatch = dep.kernel().routers()[0].shards()[0].dispatch().clone();
    let mut params = Params::new();
    params.insert("ms".into(), serde_json::json!(300));
    let hold = Request::new("/hold", DocList::from(Doc::new())).with_parameters(params);
    let d2 = dispatch.clone();
    let held = tokio::spawn(async move { d2.call(hold).await });
    within(30, async {
        while dispatch.in_flight() < 1 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    let refused = dispatch
        .try_call(Request::new("/work", DocList::new()))
        .await;
    assert!(
        matches!(refused, Err(DispatchError::Busy { capacity: 1, .. })),
        "{refused:?}"
    );
    assert!(within(30, held).await.unwrap().is_ok());
    // Room again: accepted.
    assert!(
        dispatch
            .try_call(Request::new("/work", DocList::new()))
            .await
            .is_ok()
    );
}

/// Remembers the docs written to it; `/write` (a write endpoint) sleeps `ms` first.
struct Ledger {
    ids: Vec<String>,
}

impl flotilla::actors::prelude::Executor for Ledger {
    fn requests(r: &mut flotilla::actors::prelude::Requests<Self>) {
        use flotilla::actors::prelude::{Context, Request as Req};
        r.on("/write", |l: &mut Ledger, req: &mut Req, _: &Context| {
            let ms = req.parameter("ms").and_then(|v| v.as_u64()).unwrap_or(0);
            std::thread::sleep(Duration::from_millis(ms));
            l.ids.extend(req.docs.iter().map(|d| d.id().to_owned()));
        })
        .write();
        r.on(
            "/count",
            |l: &mut Ledger, _: &mut Req, _: &Context| serde_json::json!({ "count": l.ids.len() }),
        );
    }
}

/// A 3-replica stateful Deployment of `Ledger` named `ledger`, its log under `ws`.
fn ledger(ws: &std::path::Path) -> Deployment {
    Deployment::new()
        .name("ledger")
        .uses_factory(
            "Ledger",
            flotilla::actors::executor::factory(|_| Ok(Ledger { ids: Vec::new() })),
        )
        .replicas(3)
        .stateful(true)
        .workspace(ws)
}

/// A stateful shard's writes go through the Raft log however they are called, and take room
/// in the shard like any request: `try_call` of a write is logged (every replica applies it)
/// and is refused with `Busy` while the shard is full; `call` waits instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateful_writes_take_room_in_the_shard_and_are_logged_however_called() {
    let ws = tempfile::tempdir().unwrap();
    let dep = ledger(ws.path()).queue_size(0).start().unwrap();
    let dep = Arc::new(dep);
    let shard = || &dep.kernel().routers()[0].shards()[0];
    assert_eq!(shard().dispatch().capacity(), 3);
    let write = |id: &str, ms: u64| {
        let mut params = Params::new();
        params.insert("ms".into(), serde_json::json!(ms));
        Request::new("/write", DocList::from(Doc::with_id(id))).with_parameters(params)
    };
    within(60, shard().try_call(write("first", 0)))
        .await
        .expect("room: accepted");
    let count = |i: usize| {
        let dep = dep.clone();
        async move {
            let shard = &dep.kernel().routers()[0].shards()[0];
            shard.raft().unwrap().settle().await;
            let r = shard
                .call_replica(i, Request::new("/count", DocList::new()))
                .await
                .unwrap();
            r.results.values().next().unwrap()["count"]
                .as_u64()
                .unwrap()
        }
    };
    for i in 0..3 {
        assert_eq!(
            within(30, count(i)).await,
            1,
            "replica {i} applied the write"
        );
    }
    // Three slow writes fill the shard; a fourth is Busy, or waits its turn when called.
    let held: Vec<_> = (0..3)
        .map(|i| {
            let dep = dep.clone();
            let req = write(&format!("held{i}"), 150);
            tokio::spawn(async move { dep.kernel().routers()[0].shards()[0].call(req).await })
        })
        .collect();
    within(30, async {
        while shard().dispatch().in_flight() < 3 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    let refused = shard().try_call(write("refused", 0)).await;
    assert!(
        matches!(refused, Err(DispatchError::Busy { capacity: 3, .. })),
        "{refused:?}"
    );
    let waited = within(60, shard().call(write("waited", 0))).await;
    assert!(waited.is_ok(), "{waited:?}");
    for h in held {
        within(60, h).await.unwrap().expect("a held write");
    }
    assert_eq!(shard().dispatch().in_flight(), 0);
    for i in 0..3 {
        assert_eq!(
            within(30, count(i)).await,
            5,
            "replica {i}: first, three held, waited; never the refused one"
        );
    }
}

/// A write whose caller gives up (a client that hangs up) is still seen through by the Raft
/// group, and the shard then closes: nothing is left counted as under way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateful_shard_closes_after_a_write_whose_caller_gave_up() {
    let ws = tempfile::tempdir().unwrap();
    let dep = ledger(ws.path()).start().unwrap();
    let dep = Arc::new(dep);
    let mut params = Params::new();
    params.insert("ms".into(), serde_json::json!(300));
    let req =
        Request::new("/write", DocList::from(Doc::with_id("abandoned"))).with_parameters(params);
    let d = dep.clone();
    let caller = tokio::spawn(async move { d.call(req).await });
    tokio::time::sleep(Duration::from_millis(60)).await;
    caller.abort();
    let _ = caller.await;
    let dep = Arc::try_unwrap(dep).unwrap_or_else(|_| panic!("the Deployment is still shared"));
    // Closed on a thread of its own, so that a close that never ends fails the test.
    let (done, closed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        dep.close();
        let _ = done.send(());
    });
    closed
        .recv_timeout(Duration::from_secs(60))
        .expect("the shard closes: no write is left counted as under way");
}
