//! Lingering replicas (`flotilla_actors::linger`): under concurrent load a replica that has
//! answered stays awake a moment and takes the next request from its shard's queue, without a
//! message that would wake its thread; with a lone sequential caller the replica never lingers
//! (it parks at once). Either way every request is answered once, with its own docs.
//!
//! One test in this file on purpose: whether a replica lingers depends on the calls in flight
//! in the whole process, so nothing else may run beside it. Its Executor does not opt in to
//! inline serving (`Echo` does: its callers would run it themselves, and no replica would
//! linger).

mod common;

use std::sync::Arc;

use common::within;
use flotilla::actors::dispatch::HandOffs;
use flotilla::actors::executor::{Context, Executor, Requests, factory};
use flotilla::{Deployment, Doc, DocList, Request, Running};

/// `Echo` served on its replica's thread: returns the docs it gets.
struct Parrot;

impl Executor for Parrot {
    fn requests(r: &mut Requests<Self>) {
        r.default(|_: &mut Parrot, _: &mut Request, _: &Context| {});
    }
}

fn parrots(name: &str, replicas: i64) -> Running {
    Deployment::new()
        .name(name)
        .uses_factory("Parrot", factory(|_| Ok(Parrot)))
        .replicas(replicas)
        .start()
        .unwrap()
}

fn hand_offs(dep: &Running) -> HandOffs {
    dep.kernel().routers()[0].shards()[0].dispatch().hand_offs()
}

/// `callers` tasks, each making `each` calls one after another; checks every answer is its own.
async fn closed_loop(dep: &Arc<Running>, callers: usize, each: usize) {
    let tasks: Vec<_> = (0..callers)
        .map(|c| {
            let dep = dep.clone();
            tokio::spawn(async move {
                for i in 0..each {
                    let id = format!("c{c}-{i}");
                    let req = Request::new("/", DocList::from(vec![Doc::with_id(id.clone())]));
                    let out = dep.call(req).await.expect("served");
                    let ids: Vec<&str> = out.docs.iter().map(|d| d.id()).collect();
                    assert_eq!(
                        ids,
                        [id.as_str()],
                        "an answer carries its own request's doc"
                    );
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("a caller");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_linger_only_under_concurrent_load_and_lose_nothing() {
    let lingering_on = std::env::var(flotilla::actors::linger::WINDOW_ENV).as_deref() != Ok("0")
        && std::thread::available_parallelism().map_or(1, |n| n.get()) > 1;

    // A lone caller: the replica never lingers. Each request is sent to it, or, when the
    // caller was quicker than the replica's return to its queue, taken from the queue there.
    let one = Arc::new(parrots("echo", 1));
    within(60, closed_loop(&one, 1, 300)).await;
    let h = hand_offs(&one);
    assert_eq!(
        (h.sent + h.queued, h.lingered),
        (300, 0),
        "a lone sequential caller never keeps a replica spinning: {h:?}"
    );

    // Concurrent callers: some requests are taken by a replica that stayed awake for them.
    within(60, closed_loop(&one, 4, 1000)).await;
    let h = hand_offs(&one);
    assert_eq!(
        h.sent + h.queued + h.lingered,
        300 + 4000,
        "every request reached the replica exactly once: {h:?}"
    );
    if lingering_on {
        assert!(
            h.lingered > 0,
            "no request was taken while lingering: {h:?}"
        );
    } else {
        assert_eq!(h.lingered, 0, "lingering is off: {h:?}");
    }
    Arc::try_unwrap(one).ok().expect("the last handle").close();

    // Three replicas: the replicas share the load, and still every request arrives once.
    let three = Arc::new(parrots("echo3", 3));
    within(60, closed_loop(&three, 8, 500)).await;
    let h = hand_offs(&three);
    assert_eq!(h.sent + h.queued + h.lingered, 4000, "{h:?}");
    Arc::try_unwrap(three)
        .ok()
        .expect("the last handle")
        .close();
}
