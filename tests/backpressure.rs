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
