//! Replicas: the seed's bottleneck demo, idle-first dispatch, restart on panic, batching.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use common::{recorder, served_by, within};
use flotilla::actors::dispatch::DispatchError;
use flotilla::{Deployment, Doc, DocList, Error, Params, PostOptions};

async fn slow_fast_wall(replicas: i64) -> Duration {
    let dep = Deployment::new()
        .uses("SlowFast")
        .uses_with(serde_json::json!({"slow_ms": 300}))
        .replicas(replicas)
        .start()
        .unwrap();
    let start = Instant::now();
    let posts = ["/slow", "/fast", "/slow", "/fast"].map(|ep| dep.post(ep, Doc::new()));
    let results = within(30, futures::future::join_all(posts)).await;
    let wall = start.elapsed();
    for r in results {
        assert_eq!(r.unwrap().len(), 1);
    }
    dep.close();
    wall
}

/// Seed: "calling scaled flow takes 6 seconds … calling normal flow takes 11 seconds".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_remove_the_bottleneck_of_a_slow_executor() {
    let one = slow_fast_wall(1).await;
    let two = slow_fast_wall(2).await;
    // One replica runs both slow calls back to back (~600 ms); two run them side by side
    // (~300 ms). A wide margin: the relation, not a time.
    assert!(
        one.as_secs_f64() > 1.5 * two.as_secs_f64(),
        "1 replica took {one:?}, 2 replicas took {two:?}"
    );
    assert!(
        one >= Duration::from_millis(600),
        "two slow calls cannot overlap on one replica: {one:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_replica_gets_nothing_while_others_are_idle() {
    let (f, log, _) = recorder();
    let dep = Deployment::new()
        .name("idle")
        .uses_factory("Recorder", f)
        .replicas(3)
        .start()
        .unwrap();
    // Hold one replica busy for a long time.
    let mut params = Params::new();
    params.insert("ms".into(), serde_json::json!(3000));
    let hold_opts = PostOptions {
        parameters: params,
        ..PostOptions::default()
    };
    let hold = dep.post_with("/hold", Doc::new(), &hold_opts);
    // Each burst request keeps its replica busy for 20 ms, so the 30 sent at once cannot all
    // be served by one replica freeing up in time: idle-first must use both idle replicas,
    // and finishes (about 300 ms) long before the held replica frees up.
    let mut short = Params::new();
    short.insert("ms".into(), serde_json::json!(20));
    let short_opts = PostOptions {
        parameters: short,
        ..PostOptions::default()
    };
    let burst = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let posts = (0..30).map(|_| dep.post_with("/hold", Doc::new(), &short_opts));
        futures::future::join_all(posts).await
    };
    let (held, burst) = within(30, futures::future::join(hold, burst)).await;
    let busy = served_by(&held.unwrap()[0]);
    let served: BTreeSet<String> = burst
        .into_iter()
        .map(|r| served_by(&r.unwrap()[0]))
        .collect();
    assert!(
        !served.contains(&busy),
        "{busy} was busy but served some of {served:?}"
    );
    assert_eq!(
        served.len(),
        2,
        "both idle replicas serve the burst: {served:?}"
    );
    assert_eq!(log.lock().unwrap().len(), 31);
    dep.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_restarts_its_replica_and_loses_nothing() {
    let (f, log, built) = recorder();
    let dep = Deployment::new()
        .name("crashy")
        .uses_factory("Recorder", f)
        .replicas(2)
        .start()
        .unwrap();
    assert_eq!(*built.lock().unwrap(), 2);
    let docs: Vec<Doc> = (0..100)
        .map(|i| {
            let d = Doc::with_id(format!("doc-{i}"));
            if i % 20 == 7 {
                d.with_tag("boom", true)
            } else {
                d
            }
        })
        .collect();
    let posts = docs.iter().cloned().map(|d| dep.post("/work", d));
    let results = within(60, futures::future::join_all(posts)).await;

    let mut ok = 0;
    for (d, r) in docs.iter().zip(results) {
        match r {
            Ok(out) => {
                assert!(d.tag("boom").is_none());
                assert_eq!(out.ids(), vec![d.id()]);
                ok += 1;
            }
            Err(Error::Request(DispatchError::Panicked {
                replica,
                message,
                docs,
            })) => {
                // The failed request's docs come back with the error, as in Jina.
                assert_eq!(docs.as_deref().map(DocList::ids), Some(vec![d.id()]));
                assert!(
                    d.tag("boom").is_some(),
                    "{} failed without a reason",
                    d.id()
                );
                assert!(
                    replica.starts_with("crashy/rep-"),
                    "the error names the replica: {replica}"
                );
                assert!(message.contains("boom on purpose"));
            }
            Err(e) => panic!("unexpected error for {}: {e}", d.id()),
        }
    }
    assert_eq!(ok, 95);
    // Each served doc was handled exactly once.
    let mut counts: HashMap<String, usize> = HashMap::new();
    for (id, _) in log.lock().unwrap().iter() {
        *counts.entry(id.clone()).or_default() += 1;
    }
    assert_eq!(counts.len(), 95);
    assert!(
        counts.values().all(|&c| c == 1),
        "a request was answered twice"
    );
    // Five panics, five restarts: fresh Executor instances (restarts finish in the background).
    let dispatch = dep.kernel().routers()[0].shards()[0].dispatch().clone();
    within(30, async {
        while dispatch.running_replicas() < 2 || *built.lock().unwrap() < 7 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(*built.lock().unwrap(), 2 + 5);
    // And the restarted replicas serve.
    let later = within(
        30,
        dep.post("/work", (0..10).map(|_| Doc::new()).collect::<DocList>()),
    )
    .await;
    assert_eq!(later.unwrap().len(), 10);
    assert_eq!(
        dep.kernel().routers()[0].shards()[0]
            .dispatch()
            .running_replicas(),
        2
    );
    dep.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_size_batches_come_back_in_input_order() {
    let (f, log, _) = recorder();
    let dep = Deployment::new()
        .uses_factory("Recorder", f)
        .replicas(3)
        .start()
        .unwrap();
    let docs: DocList = (0..1000).map(|i| Doc::with_id(format!("{i:04}"))).collect();
    let expected: Vec<String> = docs.ids().into_iter().map(str::to_owned).collect();
    let opts = PostOptions {
        request_size: 100,
        ..PostOptions::default()
    };
    let out = within(60, dep.post_with("/work", docs, &opts))
        .await
        .unwrap();
    assert_eq!(
        out.ids(),
        expected.iter().map(String::as_str).collect::<Vec<_>>()
    );
    // Ten requests of 100 docs, spread over the replicas.
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 1000);
    let replicas: BTreeSet<&str> = log.iter().map(|(_, r)| r.as_str()).collect();
    assert!(
        replicas.len() >= 2,
        "batches ran concurrently on several replicas: {replicas:?}"
    );
    drop(log);
    dep.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_lets_in_flight_requests_finish() {
    let dep = Deployment::new()
        .uses("SlowFast")
        .uses_with(serde_json::json!({"slow_ms": 200}))
        .replicas(2)
        .start()
        .unwrap();
    let dep = std::sync::Arc::new(dep);
    let posts: Vec<_> = (0..4)
        .map(|_| {
            let dep = dep.clone();
            tokio::spawn(async move { dep.post("/slow", Doc::new()).await.map(|d| d.len()) })
        })
        .collect();
    let dispatch = dep.kernel().routers()[0].shards()[0].dispatch().clone();
    within(30, async {
        while dispatch.in_flight() < 4 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    // Closing blocks until the accepted requests are answered.
    let closer = { tokio::task::spawn_blocking(move || dispatch.close()) };
    within(30, closer).await.unwrap();
    for p in posts {
        assert_eq!(within(30, p).await.unwrap().unwrap(), 1);
    }
    let refused = dep.post("/fast", Doc::new()).await;
    assert!(
        matches!(refused, Err(Error::Request(DispatchError::Closed { .. }))),
        "{refused:?}"
    );
}
