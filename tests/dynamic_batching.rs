//! Dynamic batching (Jina's `@dynamic_batching` / `uses_dynamic_batching`): requests that queue
//! for a replica are served by one handler call, each getting its own docs back; a lone request
//! is never held back; requests with other parameters are never merged; a batch whose output has
//! another length fails every request in it.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::within;
use flotilla::actors::executor::{SharedFactory, factory};
use flotilla::actors::prelude::*;
use flotilla::{Deployment, Error, PostOptions};

/// The handler calls seen: (endpoint, parameter `x`, docs in the call).
type Calls = Arc<Mutex<Vec<(String, i64, usize)>>>;

/// `/embed` is batched (4 docs), sleeps `ms` and tags each doc with the size of its call;
/// `/bad` (batched) drops a doc; `/count` (batched) answers with results; `/refuse` (batched)
/// tags each doc `seen` and fails; `/plain` is not batched; `/fussy` (batched, served alone
/// on error) fails batches and panics on a doc named `panic`.
struct Batcher {
    calls: Calls,
}

impl Executor for Batcher {
    fn requests(r: &mut Requests<Self>) {
        r.on("/embed", Batcher::embed)
            .dynamic_batching(DynamicBatching::new(4));
        r.on("/bad", Batcher::bad)
            .dynamic_batching(DynamicBatching::new(4));
        r.on("/count", Batcher::count)
            .dynamic_batching(DynamicBatching::new(4));
        r.on("/refuse", Batcher::refuse)
            .dynamic_batching(DynamicBatching::new(4));
        r.on("/plain", Batcher::embed);
        r.on("/fussy", Batcher::fussy)
            .dynamic_batching(DynamicBatching::new(4).alone_on_error());
    }
}

impl Batcher {
    fn note(&self, req: &Request) {
        let x = req.parameter("x").and_then(|v| v.as_i64()).unwrap_or(0);
        self.calls
            .lock()
            .unwrap()
            .push((req.endpoint.to_string(), x, req.docs.len()));
    }

    fn embed(&mut self, req: &mut Request, _: &Context) {
        self.note(req);
        let ms = req.parameter("ms").and_then(|v| v.as_u64()).unwrap_or(0);
        std::thread::sleep(Duration::from_millis(ms));
        let n = req.docs.len() as i64;
        for d in req.docs.iter_mut() {
            d.tags_mut().insert("call".into(), Value::from(n));
        }
    }

    fn bad(&mut self, req: &mut Request, _: &Context) -> DocList {
        self.note(req);
        let mut docs = std::mem::take(&mut req.docs);
        docs.pop();
        docs
    }

    fn refuse(&mut self, req: &mut Request, _: &Context) -> Result<(), ExecutorError> {
        self.note(req);
        for d in req.docs.iter_mut() {
            d.tags_mut().insert("seen".into(), Value::Bool(true));
        }
        Err(ExecutorError::named("ValueError", "refused"))
    }

    /// Fails any call of more than one doc, panics on a doc with id `panic`, else tags `ok`.
    fn fussy(&mut self, req: &mut Request, _: &Context) -> Result<(), ExecutorError> {
        self.note(req);
        if req.docs.len() > 1 {
            return Err(ExecutorError::named("ValueError", "one at a time"));
        }
        if req.docs.iter().any(|d| d.id() == "panic") {
            panic!("panic on purpose");
        }
        for d in req.docs.iter_mut() {
            d.tags_mut().insert("ok".into(), Value::Bool(true));
        }
        Ok(())
    }

    fn count(&mut self, req: &mut Request, _: &Context) -> Output {
        self.note(req);
        Output::Results(serde_json::json!({"n": req.docs.len()}))
    }
}

fn batcher() -> (SharedFactory, Calls) {
    let calls = Calls::default();
    let c = calls.clone();
    (factory(move |_| Ok(Batcher { calls: c.clone() })), calls)
}

/// A 1-replica Deployment of `Batcher` as it declares itself, and its log of calls.
fn started() -> (flotilla::Running, Calls) {
    let (f, calls) = batcher();
    let dep = Deployment::new()
        .uses_factory("Batcher", f)
        .start()
        .unwrap();
    (dep, calls)
}

fn opts(params: serde_json::Value) -> PostOptions {
    PostOptions {
        parameters: params.as_object().cloned().unwrap_or_default(),
        ..PostOptions::default()
    }
}

fn sizes(calls: &Calls, endpoint: &str) -> Vec<usize> {
    calls
        .lock()
        .unwrap()
        .iter()
        .filter(|c| c.0 == endpoint)
        .map(|c| c.2)
        .collect()
}

/// Holds the one replica busy on `/embed` for 400 ms, sends `burst` while it is held, and
/// returns the burst's answers once the hold is over.
async fn behind_a_hold<F, T>(dep: &flotilla::Running, burst: F) -> T
where
    F: std::future::Future<Output = T>,
{
    let hold_opts = opts(serde_json::json!({"ms": 400}));
    let hold = dep.post_with("/embed", Doc::with_id("hold"), &hold_opts);
    let later = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        burst.await
    };
    let (held, out) = within(30, futures::future::join(hold, later)).await;
    held.expect("the hold is served");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_requests_are_served_in_batches_each_getting_its_own_docs() {
    let (dep, calls) = started();
    let one = opts(serde_json::json!({}));
    let answers = behind_a_hold(
        &dep,
        futures::future::join_all(
            (0..12).map(|i| dep.post_with("/embed", Doc::with_id(format!("d{i}")), &one)),
        ),
    )
    .await;
    for (i, a) in answers.into_iter().enumerate() {
        let docs = a.expect("served");
        assert_eq!(
            docs.ids(),
            vec![format!("d{i}")],
            "each request gets its own doc"
        );
        assert_eq!(docs[0].tag("call").and_then(|v| v.as_f64()), Some(4.0));
    }
    // The hold alone, then the 12 queued requests in three calls of 4.
    assert_eq!(sizes(&calls, "/embed"), vec![1, 4, 4, 4]);
    dep.close();
}

/// A batch that fails fails each of its requests, and each error carries that request's own docs
/// as the handler left them (Jina answers an Executor error with the request).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_hands_each_request_its_own_docs_with_the_error() {
    let (dep, calls) = started();
    let one = opts(serde_json::json!({}));
    let answers = behind_a_hold(
        &dep,
        futures::future::join_all((0..4).map(|i| {
            let docs: DocList = (0..=i).map(|j| Doc::with_id(format!("r{i}d{j}"))).collect();
            dep.post_with("/refuse", docs, &one)
        })),
    )
    .await;
    for (i, a) in answers.into_iter().enumerate() {
        let Err(Error::Request(e)) = a else {
            panic!("request {i} is not an Executor error: {a:?}");
        };
        assert!(e.to_string().contains("ValueError: refused"), "{e}");
        let docs = e.docs().expect("the error carries the request's docs");
        let want: Vec<String> = (0..=i).map(|j| format!("r{i}d{j}")).collect();
        assert_eq!(docs.ids(), want, "request {i} gets its own docs");
        assert!(docs.iter().all(|d| d.tag("seen").is_some()));
    }
    // One call for the first two (1 + 2 docs; the third would take it past 4), then one each.
    assert_eq!(sizes(&calls, "/refuse"), vec![3, 3, 4]);
    dep.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_never_split_and_batches_keep_to_their_size() {
    let (dep, calls) = started();
    let one = opts(serde_json::json!({}));
    // Requests of 3, 1, 2, 5 and 1 docs, in that order, behind the hold.
    let counts = [3usize, 1, 2, 5, 1];
    let answers = behind_a_hold(
        &dep,
        futures::future::join_all(counts.iter().enumerate().map(|(r, &n)| {
            let docs: DocList = (0..n).map(|i| Doc::with_id(format!("r{r}-{i}"))).collect();
            let dep = &dep;
            let one = &one;
            async move {
                // Keep the order of arrival.
                tokio::time::sleep(Duration::from_millis(10 * r as u64)).await;
                dep.post_with("/embed", docs, one).await
            }
        })),
    )
    .await;
    for (r, (a, &n)) in answers.into_iter().zip(&counts).enumerate() {
        let docs = a.expect("served");
        let want: Vec<String> = (0..n).map(|i| format!("r{r}-{i}")).collect();
        assert_eq!(docs.ids(), want, "request {r} gets its own docs, in order");
    }
    // 3 + 1 fill a batch of 4; 2 cannot join the 5 after it (4 at most); 5 is served alone;
    // then the last 1.
    assert_eq!(sizes(&calls, "/embed"), vec![1, 4, 2, 5, 1]);
    dep.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_request_is_never_held_back_for_its_batch_to_fill() {
    let (f, calls) = batcher();
    // Jina would wait up to the timeout (10 s here) for 4 docs before calling the handler.
    let dep = Deployment::new()
        .uses_factory("Batcher", f)
        .uses_dynamic_batching(
            serde_json::json!({"/embed": {"preferred_batch_size": 4, "timeout": 10000}}),
        )
        .start()
        .unwrap();
    within(5, async {
        for i in 0..5 {
            let docs = dep
                .post("/embed", Doc::with_id(format!("s{i}")))
                .await
                .unwrap();
            assert_eq!(docs.ids(), vec![format!("s{i}")]);
        }
    })
    .await;
    assert_eq!(sizes(&calls, "/embed"), vec![1; 5]);
    dep.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_with_other_parameters_are_never_merged() {
    let (dep, calls) = started();
    let p: Vec<PostOptions> = (0..8)
        .map(|i| opts(serde_json::json!({"x": 1 + i % 2})))
        .collect();
    let answers = behind_a_hold(
        &dep,
        futures::future::join_all(
            p.iter()
                .enumerate()
                .map(|(i, o)| dep.post_with("/embed", Doc::with_id(format!("p{i}")), o)),
        ),
    )
    .await;
    assert!(answers.iter().all(|a| a.is_ok()));
    let mut seen: Vec<(i64, usize)> = calls
        .lock()
        .unwrap()
        .iter()
        .skip(1)
        .map(|c| (c.1, c.2))
        .collect();
    seen.sort();
    assert_eq!(seen, vec![(1, 4), (2, 4)]);
    dep.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_output_has_another_length_fails_every_request_in_it() {
    let (dep, calls) = started();
    let none = opts(serde_json::json!({}));
    let (bad, counted) = behind_a_hold(&dep, async {
        let bad = futures::future::join_all(
            (0..3).map(|i| dep.post_with("/bad", Doc::with_id(format!("b{i}")), &none)),
        );
        let counted = futures::future::join_all(
            (0..2).map(|i| dep.post_with("/count", Doc::with_id(format!("c{i}")), &none)),
        );
        futures::future::join(bad, counted).await
    })
    .await;
    assert_eq!(sizes(&calls, "/bad"), vec![3]);
    for r in bad {
        let err = r.expect_err("a batch of 3 came back with 2 docs");
        let msg = err.to_string();
        assert!(
            msg.contains("ValueError")
                && msg.contains(
                    "Dynamic Batching requires input size to equal output size. Expected output size 3, but got 2"
                ),
            "{msg}"
        );
    }
    assert_eq!(sizes(&calls, "/count"), vec![2]);
    for r in counted {
        let msg = r.expect_err("results cannot be split").to_string();
        assert!(
            msg.contains("TypeError") && msg.contains("dynamic batching"),
            "{msg}"
        );
    }
    dep.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batched_endpoint_keeps_its_rules_for_a_lone_request_too() {
    let (dep, _) = started();
    // Nothing else is queued: each request is a batch of one, and fails as a batch would.
    let msg = within(10, dep.post("/bad", Doc::with_id("alone")))
        .await
        .expect_err("1 doc in, none out")
        .to_string();
    assert!(msg.contains("Expected output size 1, but got 0"), "{msg}");
    let msg = within(10, dep.post("/count", Doc::with_id("alone")))
        .await
        .expect_err("results cannot be split")
        .to_string();
    assert!(msg.contains("TypeError"), "{msg}");
    dep.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uses_dynamic_batching_overrides_the_executors_declaration() {
    let (f, calls) = batcher();
    let dep = Deployment::new()
        .uses_factory("Batcher", f)
        .dynamic_batching("/embed", 2)
        .dynamic_batching("/plain", 3)
        .start()
        .unwrap();
    let none = opts(serde_json::json!({}));
    behind_a_hold(&dep, async {
        let embed = futures::future::join_all(
            (0..6).map(|i| dep.post_with("/embed", Doc::with_id(format!("e{i}")), &none)),
        );
        let plain = futures::future::join_all(
            (0..3).map(|i| dep.post_with("/plain", Doc::with_id(format!("p{i}")), &none)),
        );
        let (e, p) = futures::future::join(embed, plain).await;
        assert!(e.iter().chain(&p).all(|a| a.is_ok()));
    })
    .await;
    assert_eq!(sizes(&calls, "/embed"), vec![1, 2, 2, 2]);
    assert_eq!(sizes(&calls, "/plain"), vec![3]);
    dep.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_without_batching_serves_queued_requests_one_by_one() {
    let (dep, calls) = started();
    let none = opts(serde_json::json!({}));
    behind_a_hold(
        &dep,
        futures::future::join_all(
            (0..3).map(|i| dep.post_with("/plain", Doc::with_id(format!("q{i}")), &none)),
        ),
    )
    .await;
    assert_eq!(sizes(&calls, "/plain"), vec![1, 1, 1]);
    dep.close();
}

fn config_error(dep: Deployment) -> String {
    match dep.start() {
        Err(Error::Config(e)) => e.to_string(),
        Err(e) => panic!("expected a config error, got {e}"),
        Ok(_) => panic!("expected a config error"),
    }
}

#[test]
fn bad_uses_dynamic_batching_is_rejected_naming_the_key() {
    let with = |v: serde_json::Value| {
        let (f, _) = batcher();
        config_error(
            Deployment::new()
                .name("b")
                .uses_factory("Batcher", f)
                .uses_dynamic_batching(v),
        )
    };
    let e = with(serde_json::json!({"/nope": {"preferred_batch_size": 2}}));
    assert!(
        e.contains("executor 'b', key 'uses_dynamic_batching': /nope: Executor 'Batcher' has no such endpoint"),
        "{e}"
    );
    let e = with(serde_json::json!({"/embed": {"preferred_batch_size": 0}}));
    assert!(
        e.contains("/embed: preferred_batch_size must be a whole number of docs >= 1, got 0"),
        "{e}"
    );
    let e = with(serde_json::json!({"/embed": {"prefered_batch_size": 2}}));
    assert!(
        e.contains("/embed: unknown key 'prefered_batch_size'"),
        "{e}"
    );
    let e = with(serde_json::json!({"/embed": {"timeout": "soon"}}));
    assert!(
        e.contains("/embed: timeout must be a number of milliseconds >= 0"),
        "{e}"
    );
    let e = with(serde_json::json!(["/embed"]));
    assert!(e.contains("expected a map from endpoint to"), "{e}");
}

#[test]
fn a_stateful_write_endpoint_cannot_be_batched() {
    let e = config_error(
        Deployment::new()
            .name("idx")
            .uses("ExactNNIndexer")
            .uses_with(serde_json::json!({"dim": 4}))
            .replicas(3)
            .stateful(true)
            .workspace(std::env::temp_dir().join("flotilla-batching-never-started"))
            .dynamic_batching("/index", 8),
    );
    assert!(
        e.contains("key 'uses_dynamic_batching': /index: a write endpoint of a stateful Executor"),
        "{e}"
    );
}

/// `flotilla executor --uses-dynamic-batching JSON` (Jina's worker flag) goes through the same
/// checks, before anything is served.
#[test]
fn the_executor_flag_is_checked_before_anything_starts() {
    let run = |json: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_flotilla"))
            .args(["executor", "--uses", "ExactNNIndexer"])
            .args(["--uses-with", r#"{"dim": 4}"#, "--port", "0"])
            .args(["--uses-dynamic-batching", json])
            .output()
            .expect("the flotilla binary runs");
        assert!(!out.status.success(), "{json} must be refused");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(r#"{"/search": {"preferred_batch_size": 0}}"#);
    assert!(
        err.contains("key 'uses_dynamic_batching': /search: preferred_batch_size must be"),
        "{err}"
    );
    let err = run(r#"{"/nowhere": {"preferred_batch_size": 8}}"#);
    assert!(
        err.contains("/nowhere: Executor 'ExactNNIndexer' has no such endpoint"),
        "{err}"
    );
    let err = run("{not json");
    assert!(err.contains("--uses-dynamic-batching:"), "{err}");
}

/// The built-in `ExactNNIndexer` declares `/search` batched: queries that queue behind a search
/// are searched together (fewer handler calls than queries), and each gets the matches it gets
/// alone and with batching turned off, scores included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactnn_answers_queued_searches_as_it_answers_lone_ones() {
    let dim = 8;
    let row = |i: usize| -> Vec<f32> {
        (0..dim)
            .map(|j| (((i * 31 + j * 7) % 97) as f32 / 97.0) - 0.4)
            .collect()
    };
    let searches = search_log();
    let base = |name: &str| {
        Deployment::new()
            .name(name)
            .uses("ExactNNIndexer")
            .uses_with(serde_json::json!({"dim": dim, "limit": 5}))
    };
    // As shipped, and with batching turned off.
    let batched = base("nn-shipped").start().unwrap();
    let unbatched = base("nn-unbatched")
        .dynamic_batching("/search", 1)
        .start()
        .unwrap();
    for dep in [&batched, &unbatched] {
        let docs: DocList = (0..3_000)
            .map(|i| {
                let mut d = Doc::with_id(format!("d{i}"));
                d.set_embedding(NdArray::from_f32(row(i)));
                d
            })
            .collect();
        within(60, dep.post("/index", docs)).await.unwrap();
    }
    let query = |q: usize| {
        let mut d = Doc::with_id(format!("q{q}"));
        d.set_embedding(NdArray::from_f32(row(q * 13 + 5)));
        d
    };
    let matches = |docs: &DocList| -> Vec<(String, String)> {
        docs.iter()
            .flat_map(|q| {
                q.matches().into_iter().flatten().map(|m| {
                    let score = m.score("cosine").map(|s| s.to_bits());
                    (m.id().to_owned(), format!("{score:?}"))
                })
            })
            .collect()
    };
    // Behind a large /index, 48 lone queries queue and are searched in batches.
    let more: DocList = (3_000..60_000)
        .map(|i| {
            let mut d = Doc::with_id(format!("d{i}"));
            d.set_embedding(NdArray::from_f32(row(i)));
            d
        })
        .collect();
    let hold = batched.post("/index", more.clone());
    let burst = futures::future::join_all((0..48).map(|q| batched.post("/search", query(q))));
    let (held, answers) = within(120, futures::future::join(hold, burst)).await;
    held.unwrap();
    // The 48 queued queries were searched in batches: fewer handler calls than queries.
    let calls = searches("nn-shipped/rep-0");
    assert!(
        (3..48).contains(&calls),
        "48 queued queries took {calls} /search calls"
    );
    within(120, unbatched.post("/index", more)).await.unwrap();
    for (q, answer) in answers.into_iter().enumerate() {
        let got = matches(&answer.expect("every query is answered"));
        assert_eq!(got.len(), 5, "query {q} gets its own 5 matches");
        let alone = within(30, batched.post("/search", query(q))).await.unwrap();
        assert_eq!(got, matches(&alone), "query {q}: batched vs alone");
        let off = within(30, unbatched.post("/search", query(q)))
            .await
            .unwrap();
        assert_eq!(got, matches(&off), "query {q}: batched vs batching off");
    }
    batched.close();
    unbatched.close();
}

/// Counts, from the log, the `/search` handler calls of a replica (`ExactNNIndexer` logs
/// "Searching Document …" once per call, inside the replica's span). Installs a process-wide
/// log subscriber writing into memory.
fn search_log() -> impl Fn(&str) -> usize {
    let log = captured_log();
    move |replica: &str| {
        log()
            .lines()
            .filter(|l| l.contains(replica) && l.contains("Searching Document"))
            .count()
    }
}

/// Everything this test binary has logged so far. Installs a process-wide log subscriber
/// writing into memory.
fn captured_log() -> impl Fn() -> String {
    use std::io::Write;
    static LOG: std::sync::OnceLock<Arc<Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    #[derive(Clone)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let log = LOG
        .get_or_init(|| {
            let buf = Arc::new(Mutex::new(Vec::new()));
            let sink = Sink(buf.clone());
            tracing_subscriber::fmt()
                .with_ansi(false)
                .with_writer(move || sink.clone())
                .try_init()
                .expect("no other log subscriber in this test binary");
            buf
        })
        .clone();
    move || String::from_utf8_lossy(&log.lock().unwrap()).into_owned()
}

/// Keeps the ids written to it; its `/write` is a write endpoint declared batched.
struct Ledger {
    ids: Vec<String>,
}

impl Executor for Ledger {
    fn requests(r: &mut Requests<Self>) {
        r.on(
            "/write",
            |l: &mut Ledger, req: &mut Request, _: &Context| {
                l.ids.extend(req.docs.iter().map(|d| d.id().to_owned()));
            },
        )
        .write()
        .dynamic_batching(DynamicBatching::new(8));
        r.on("/count", |l: &mut Ledger, _: &mut Request, _: &Context| {
            serde_json::json!({ "count": l.ids.len() })
        });
    }
}

/// An Executor's own `@dynamic_batching` on a write endpoint of a stateful Deployment is said
/// at start (writes are applied one log entry at a time), and the writes still reach every
/// replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_batch_on_a_stateful_write_is_said_not_applied() {
    let log = captured_log();
    let ws = tempfile::tempdir().unwrap();
    let dep = Deployment::new()
        .name("batched-ledger")
        .uses_factory("Ledger", factory(|_| Ok(Ledger { ids: Vec::new() })))
        .replicas(3)
        .stateful(true)
        .workspace(ws.path())
        .start()
        .unwrap();
    let said: Vec<String> = log()
        .lines()
        .filter(|l| {
            l.contains("WARN") && l.contains("batched-ledger") && l.contains("dynamic batching")
        })
        .map(str::to_owned)
        .collect();
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(
        said[0].contains("Executor 'Ledger' declares dynamic batching on /write, a write endpoint"),
        "{}",
        said[0]
    );
    let writes = (0..10).map(|i| dep.post("/write", Doc::with_id(format!("w{i}"))));
    for w in within(60, futures::future::join_all(writes)).await {
        w.unwrap();
    }
    let shard = &dep.kernel().routers()[0].shards()[0];
    within(60, shard.raft().unwrap().settle()).await;
    for replica in 0..3 {
        let req = Request::new("/count", DocList::new());
        let out = within(30, shard.call_replica(replica, req)).await.unwrap();
        let count = out
            .results
            .values()
            .next()
            .and_then(|v| v["count"].as_u64());
        assert_eq!(count, Some(10), "replica {replica}");
    }
    dep.close();
}

/// A failed batch of `ExactNNIndexer` searches is searched again request by request: only the
/// query at fault fails, the others batched with it get their matches (also when a Deployment
/// overrides the batch size).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_query_fails_alone_not_the_searches_batched_with_it() {
    let dim = 4;
    let row = |i: usize| -> Vec<f32> {
        (0..dim)
            .map(|j| ((i * 7 + j * 3) % 11) as f32 - 5.0)
            .collect()
    };
    let doc = |i: usize| {
        let mut d = Doc::with_id(format!("d{i}"));
        d.set_embedding(NdArray::from_f32(row(i)));
        d
    };
    for dep in [
        Deployment::new().name("nn-alone"),
        Deployment::new()
            .name("nn-alone-4")
            .dynamic_batching("/search", 4),
    ] {
        let dep = dep
            .uses("ExactNNIndexer")
            .uses_with(serde_json::json!({"dim": dim, "limit": 3}))
            .start()
            .unwrap();
        within(
            60,
            dep.post("/index", (0..500).map(doc).collect::<DocList>()),
        )
        .await
        .unwrap();
        // Behind a large /index, nine searches queue; the fifth has no embedding.
        let hold = dep.post("/index", (500..40_000).map(doc).collect::<DocList>());
        let burst = futures::future::join_all((0..9).map(|q| {
            let query = if q == 4 {
                Doc::with_id("no-embedding")
            } else {
                doc(q * 37)
            };
            dep.post("/search", query)
        }));
        let (held, answers) = within(120, futures::future::join(hold, burst)).await;
        held.unwrap();
        for (q, answer) in answers.into_iter().enumerate() {
            if q == 4 {
                let err = answer
                    .expect_err("the query without an embedding fails")
                    .to_string();
                assert!(err.contains("no-embedding"), "{err}");
                continue;
            }
            let got = answer.unwrap_or_else(|e| panic!("query {q} fails with the bad one: {e}"));
            let alone = within(30, dep.post("/search", doc(q * 37))).await.unwrap();
            let ids = |docs: &DocList| -> Vec<String> {
                docs[0]
                    .matches()
                    .into_iter()
                    .flatten()
                    .map(|m| m.id().to_owned())
                    .collect()
            };
            assert_eq!(ids(&got).len(), 3, "query {q}");
            assert_eq!(ids(&got), ids(&alone), "query {q}");
        }
        dep.close();
    }
}

/// A failed batch served again request by request, whose second request panics the replica:
/// the requests after it are not lost with the replica; they are served (by the replica started
/// in its place) and succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_after_a_panic_in_a_failed_batch_are_still_served() {
    let (dep, calls) = started();
    let ids = ["a", "panic", "c", "d"];
    let answers = behind_a_hold(
        &dep,
        futures::future::join_all(ids.iter().map(|id| dep.post("/fussy", Doc::with_id(*id)))),
    )
    .await;
    assert_eq!(
        sizes(&calls, "/fussy").first(),
        Some(&4),
        "the four queued requests were batched first"
    );
    for (id, answer) in ids.iter().zip(answers) {
        match *id {
            "panic" => {
                let err = answer.expect_err("the panicking request fails").to_string();
                assert!(err.contains("panic on purpose"), "{err}");
            }
            _ => {
                let docs = answer.unwrap_or_else(|e| panic!("request {id} is lost: {e}"));
                assert_eq!(docs[0].id(), *id);
                assert_eq!(docs[0].tag("ok"), Some(&Value::Bool(true)), "{id}");
            }
        }
    }
    dep.close();
}
