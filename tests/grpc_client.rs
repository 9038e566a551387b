//! The Rust client against an in-process gateway: batching over one `Call`, completion order vs
//! `results_in_order`, parameters and `__results__`, Executor errors as typed client errors,
//! prefetch, timeouts, readiness and health, and `flotilla ping`.

mod common;

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::within;
use flotilla::actors::executor::{SharedFactory, factory};
use flotilla::actors::prelude::*;
use flotilla::grpc::client::{Client, ClientError, ClientPost, Compression};
use flotilla::grpc::codec;
use flotilla::grpc::pb::jina::DataRequestProto;
use flotilla::grpc::pb::jina::jina_rpc_client::JinaRpcClient;
use flotilla::grpc::server::{ServeOptions, Server};
use flotilla::grpc::service::Role;
use flotilla::{Deployment, Running};
use futures::StreamExt;
use serde_json::json;

// ---------------------------------------------------------------------------------------------
// Servers and addresses.

async fn serve(running: Running) -> Server {
    Server::start(
        Arc::new(running),
        "127.0.0.1:0".parse().unwrap(),
        ServeOptions::new(Role::Gateway),
    )
    .await
    .unwrap()
}

fn url(server: &Server) -> String {
    format!("grpc://{}", server.local_addr())
}

/// An address where nothing listens (a port that was free a moment ago).
fn closed_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn docs(n: usize) -> DocList {
    (0..n)
        .map(|i| Doc::with_id(format!("d{i:04}")).with_text(format!("doc {i}")))
        .collect()
}

fn ids(docs: &DocList) -> Vec<String> {
    docs.iter().map(|d| d.id().to_owned()).collect()
}

// ---------------------------------------------------------------------------------------------
// Test Executors.

/// What a `Probe` saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    id: String,
    docs: usize,
    params: Params,
}

type Seens = Arc<Mutex<Vec<Seen>>>;

/// Records every request; `/results` returns a result object instead of docs; `/fail` raises a
/// `ValueError` on docs tagged `bad`.
struct Probe {
    seen: Seens,
}

impl Probe {
    fn record(&mut self, req: &Request) {
        self.seen.lock().unwrap().push(Seen {
            id: req.id.clone(),
            docs: req.docs.len(),
            params: (*req.parameters).clone(),
        });
    }
}

impl Executor for Probe {
    fn requests(r: &mut Requests<Self>) {
        r.on(
            "/results",
            |p: &mut Probe, req: &mut Request, _: &Context| {
                p.record(req);
                json!({ "docs": req.docs.len() })
            },
        );
        r.on(
            "/fail",
            |p: &mut Probe, req: &mut Request, _: &Context| -> Result<(), ExecutorError> {
                p.record(req);
                match req.docs.iter().find(|d| d.tag("bad").is_some()) {
                    Some(d) => Err(ExecutorError::named(
                        "ValueError",
                        format!("bad doc {}", d.id()),
                    )),
                    None => Ok(()),
                }
            },
        );
        r.default(|p: &mut Probe, req: &mut Request, _: &Context| p.record(req));
    }
}

fn probe() -> (SharedFactory, Seens) {
    let seen: Seens = Arc::default();
    let s = seen.clone();
    (factory(move |_| Ok(Probe { seen: s.clone() })), seen)
}

async fn probe_server(replicas: i64) -> (Server, Seens) {
    let (f, seen) = probe();
    let dep = Deployment::new()
        .name("probe")
        .uses_factory("Probe", f)
        .replicas(replicas)
        .start()
        .unwrap();
    (serve(dep).await, seen)
}

/// A gate requests tagged `hold` wait at until the test opens it (or 30 s pass, so that a broken
/// test fails instead of hanging). Records the docs each request finished with.
#[derive(Default)]
struct Gate {
    state: Mutex<(bool, Vec<String>)>,
    cv: Condvar,
}

impl Gate {
    fn wait_open(&self) {
        let guard = self.state.lock().unwrap();
        let _ = self
            .cv
            .wait_timeout_while(guard, Duration::from_secs(30), |s| !s.0)
            .unwrap();
    }

    fn open(&self) {
        self.state.lock().unwrap().0 = true;
        self.cv.notify_all();
    }

    fn finished(&self) -> Vec<String> {
        self.state.lock().unwrap().1.clone()
    }

    /// Waits (without a clock: polling) until `id` has been handled.
    async fn handled(&self, id: &str) {
        within(30, async {
            while !self.finished().iter().any(|f| f == id) {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
    }
}

struct Held {
    gate: Arc<Gate>,
}

impl Executor for Held {
    fn requests(r: &mut Requests<Self>) {
        r.default(|h: &mut Held, req: &mut Request, _: &Context| {
            if req.docs.iter().any(|d| d.tag("hold").is_some()) {
                h.gate.wait_open();
            }
            let mut s = h.gate.state.lock().unwrap();
            s.1.extend(req.docs.iter().map(|d| d.id().to_owned()));
        });
    }
}

async fn held_server(replicas: i64) -> (Server, Arc<Gate>) {
    let gate = Arc::new(Gate::default());
    let g = gate.clone();
    let dep = Deployment::new()
        .name("held")
        .uses_factory("Held", factory(move |_| Ok(Held { gate: g.clone() })))
        .replicas(replicas)
        .start()
        .unwrap();
    (serve(dep).await, gate)
}

/// `first` (held at the gate) and `second`, one per request.
fn first_and_second() -> DocList {
    vec![
        Doc::with_id("first").with_tag("hold", true),
        Doc::with_id("second"),
    ]
    .into()
}

/// Counts requests being handled at once (the peak), sleeping a little in each; the sleep
/// varies by request so that they finish out of order.
struct Busy {
    now: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl Executor for Busy {
    fn requests(r: &mut Requests<Self>) {
        r.default(|b: &mut Busy, req: &mut Request, _: &Context| {
            let n = b.now.fetch_add(1, Ordering::SeqCst) + 1;
            b.peak.fetch_max(n, Ordering::SeqCst);
            let k: u64 = req
                .docs
                .first()
                .and_then(|d| d.id().trim_start_matches('d').parse().ok())
                .unwrap_or(0);
            std::thread::sleep(Duration::from_millis(k * 7 % 11));
            b.now.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

async fn busy_server(replicas: i64) -> (Server, Arc<AtomicUsize>) {
    let now = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (n, p) = (now, peak.clone());
    let dep = Deployment::new()
        .name("busy")
        .uses_factory(
            "Busy",
            factory(move |_| {
                Ok(Busy {
                    now: n.clone(),
                    peak: p.clone(),
                })
            }),
        )
        .replicas(replicas)
        .start()
        .unwrap();
    (serve(dep).await, peak)
}

// ---------------------------------------------------------------------------------------------
// Batching, order, parameters, results.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_docs_go_in_ten_requests_and_come_back_in_input_order() {
    let (server, seen) = probe_server(3).await;
    let client = Client::connect(&url(&server)).await.unwrap();
    let input = docs(1000);
    let opts = ClientPost {
        results_in_order: true,
        progress: true, // stderr is not a terminal under the test harness: hidden
        ..ClientPost::default()
    };
    let out = within(60, client.post_with("/index", input.clone(), &opts))
        .await
        .unwrap();
    assert_eq!(ids(&out), ids(&input));
    assert_eq!(out.texts(), input.texts());

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 10, "request_size 100: ten requests");
    assert!(seen.iter().all(|s| s.docs == 100));
    let mut req_ids: Vec<&str> = seen.iter().map(|s| s.id.as_str()).collect();
    assert!(
        req_ids
            .iter()
            .all(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())),
        "{req_ids:?}"
    );
    req_ids.sort_unstable();
    req_ids.dedup();
    assert_eq!(req_ids.len(), 10, "every request has its own id");
    // No parameters given: Jina's `{"__results__": {}}` went out, and the Executor sees none.
    assert!(seen.iter().all(|s| s.params.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_size_zero_sends_one_request_and_no_docs_still_sends_one() {
    let (server, seen) = probe_server(1).await;
    let client = Client::new(&url(&server)).unwrap();
    let opts = ClientPost {
        request_size: 0,
        ..ClientPost::default()
    };
    let out = within(30, client.post_with("/x", docs(250), &opts))
        .await
        .unwrap();
    assert_eq!(out.len(), 250);
    let out = within(30, client.post("/count", DocList::new()))
        .await
        .unwrap();
    assert!(out.is_empty());
    let sizes: Vec<usize> = seen.lock().unwrap().iter().map(|s| s.docs).collect();
    assert_eq!(sizes, [250, 0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_responses_come_in_completion_order() {
    let (server, gate) = held_server(2).await;
    let client = Client::connect(&url(&server)).await.unwrap();
    let opts = ClientPost {
        request_size: 1,
        ..ClientPost::default()
    };
    let mut responses = pin!(client.post_stream("/", first_and_second(), &opts));
    // `first` cannot finish before the gate opens, and the gate opens only once a response
    // has arrived: that response must be `second`'s, though it was sent after `first`.
    let r = within(30, responses.next()).await.unwrap().unwrap();
    assert_eq!(ids(&r.request.docs), ["second"]);
    gate.open();
    let r = within(30, responses.next()).await.unwrap().unwrap();
    assert_eq!(ids(&r.request.docs), ["first"]);
    assert!(within(30, responses.next()).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_in_order_holds_a_finished_response_until_the_earlier_ones() {
    let (server, gate) = held_server(2).await;
    let client = Client::connect(&url(&server)).await.unwrap();
    let opts = ClientPost {
        request_size: 1,
        results_in_order: true,
        ..ClientPost::default()
    };
    let g = gate.clone();
    let release = tokio::spawn(async move {
        g.handled("second").await;
        g.open();
    });
    let out = within(30, client.post_with("/", first_and_second(), &opts))
        .await
        .unwrap();
    assert_eq!(ids(&out), ["first", "second"]);
    assert_eq!(
        gate.finished(),
        ["second", "first"],
        "completed the other way"
    );
    release.await.unwrap();
}

/// The raw wire, without the client's own reordering: the gateway itself honours
/// `__results_in_order__`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_itself_answers_in_order_on_the_wire() {
    let (server, gate) = held_server(2).await;
    let mut rpc = JinaRpcClient::connect(format!("http://{}", server.local_addr()))
        .await
        .unwrap();
    let requests: Vec<DataRequestProto> = first_and_second()
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            let mut r = Request::new("/", DocList::from(d));
            r.id = format!("r{i}");
            codec::request_to_proto(&r)
        })
        .collect();
    let mut call = tonic::Request::new(futures::stream::iter(requests));
    call.metadata_mut()
        .insert("__results_in_order__", "true".parse().unwrap());
    let mut inbound = rpc.call(call).await.unwrap().into_inner();
    gate.handled("second").await;
    // `second` is done, `first` is held: nothing may come out yet.
    let early = tokio::time::timeout(Duration::from_millis(200), inbound.message()).await;
    assert!(
        early.is_err(),
        "a response overtook an earlier request: {early:?}"
    );
    gate.open();
    let mut order = Vec::new();
    while let Some(r) = within(30, inbound.message()).await.unwrap() {
        order.push(r.header.unwrap().request_id);
    }
    assert_eq!(order, ["r0", "r1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_varied_latencies_in_order_posts_never_reorder() {
    let (server, _) = busy_server(4).await;
    let client = Client::connect(&url(&server)).await.unwrap();
    let input = docs(300);
    let in_order = ClientPost {
        request_size: 3,
        results_in_order: true,
        ..ClientPost::default()
    };
    for _ in 0..3 {
        let out = within(60, client.post_with("/", input.clone(), &in_order))
            .await
            .unwrap();
        assert_eq!(ids(&out), ids(&input));
    }
    // Completion order: the same docs, whatever the order.
    let opts = ClientPost {
        request_size: 3,
        ..ClientPost::default()
    };
    let out = within(60, client.post_with("/", input.clone(), &opts))
        .await
        .unwrap();
    let mut got = ids(&out);
    got.sort();
    assert_eq!(got, ids(&input));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_bounds_the_requests_in_flight() {
    let (server, peak) = busy_server(4).await;
    let client = Client::connect(&url(&server)).await.unwrap();
    let opts = ClientPost {
        request_size: 1,
        prefetch: Some(2),
        ..ClientPost::default()
    };
    let out = within(60, client.post_with("/", docs(40), &opts))
        .await
        .unwrap();
    assert_eq!(out.len(), 40);
    let peak = peak.load(Ordering::SeqCst);
    assert!(
        (1..=2).contains(&peak),
        "{peak} requests ran at once with prefetch 2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_reach_the_executor_and_results_come_back() {
    let (server, seen) = probe_server(1).await;
    let client = Client::connect(&url(&server)).await.unwrap();
    let mut parameters = Params::new();
    parameters.insert("k".into(), json!("v"));
    parameters.insert("n".into(), json!(3));
    let opts = ClientPost {
        parameters: parameters.clone(),
        ..ClientPost::default()
    };
    within(30, client.post_with("/index", docs(2), &opts))
        .await
        .unwrap();
    let got = seen.lock().unwrap()[0].params.clone();
    // Numbers travel as doubles, as in Jina.
    assert_eq!(serde_json::Value::Object(got), json!({"k": "v", "n": 3.0}));

    let responses = within(30, client.post_responses("/results", docs(2), &opts))
        .await
        .unwrap();
    assert_eq!(responses.len(), 1);
    let r = &responses[0];
    assert!(r.error.is_none());
    assert_eq!(r.request.endpoint.as_ref(), "/results");
    assert_eq!(ids(&r.request.docs), ["d0000", "d0001"], "docs pass on");
    assert_eq!(
        serde_json::Value::Object(r.request.results.clone()),
        json!({"probe/rep-0": {"docs": 2.0}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_messages_and_gzip_pass() {
    let (server, _) = probe_server(1).await;
    let client = Client::builder(&url(&server))
        .compression(Compression::Gzip)
        .connect()
        .await
        .unwrap();
    // Over tonic's default 4 MiB limit, which Jina does not have.
    let big = Doc::with_id("big").with("blob", Value::Bytes(vec![7; 6 << 20]));
    let out = within(60, client.post("/", big)).await.unwrap();
    assert_eq!(out[0].get("blob").and_then(|v| v.len()), Some(6 << 20));
    let out = within(30, client.post("/", docs(10))).await.unwrap();
    assert_eq!(out.len(), 10);
}

// ---------------------------------------------------------------------------------------------
// Errors.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executor_error_is_a_typed_bad_server_error() {
    let (server, _) = probe_server(1).await;
    let client = Client::connect(&url(&server)).await.unwrap();
    let mut input = docs(3);
    input[1].tags_mut().insert("bad".into(), Value::Bool(true));
    let opts = ClientPost {
        request_size: 1,
        ..ClientPost::default()
    };
    let err = within(30, client.post_with("/fail", input.clone(), &opts))
        .await
        .unwrap_err();
    let ClientError::BadServer(e) = err else {
        panic!("not a BadServer error: {err:?}");
    };
    assert_eq!(e.name, "ValueError");
    assert_eq!(e.message, "bad doc d0001");
    assert_eq!(e.executor, "Probe", "the Executor's class, as Jina says");
    assert_eq!(e.request_id.len(), 32);
    assert!(e.to_string().contains("ValueError: bad doc d0001"), "{e}");

    // continue_on_error: every response, the failed one marked.
    let opts = ClientPost {
        request_size: 1,
        results_in_order: true,
        continue_on_error: true,
        ..ClientPost::default()
    };
    let responses = within(30, client.post_responses("/fail", input.clone(), &opts))
        .await
        .unwrap();
    assert_eq!(responses.len(), 3);
    let failed: Vec<bool> = responses.iter().map(|r| r.error.is_some()).collect();
    assert_eq!(failed, [false, true, false]);
    assert_eq!(
        responses[1].error.as_ref().map(|e| e.name.as_str()),
        Some("ValueError")
    );
    // As in Jina, the failed response is the request, docs included: with continue_on_error a
    // post returns every doc.
    assert_eq!(ids(&responses[1].request.docs), ["d0001"]);
    let out = within(30, client.post_with("/fail", input.clone(), &opts))
        .await
        .unwrap();
    assert_eq!(ids(&out), ids(&input));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_past_the_timeout_fails_with_timeout() {
    let (server, gate) = held_server(1).await;
    let client = Client::builder(&url(&server))
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let held = Doc::with_id("h").with_tag("hold", true);
    let err = within(30, client.post("/", held)).await.unwrap_err();
    gate.open();
    assert!(
        matches!(err, ClientError::Timeout(d) if d == Duration::from_millis(300)),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_an_error_not_a_hang() {
    let addr = format!("grpc://{}", closed_addr());
    let err = Client::connect(&addr).await.unwrap_err();
    assert!(matches!(err, ClientError::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains(&addr), "{err}");

    let lazy = Client::new(&addr).unwrap();
    assert!(!within(30, lazy.is_ready()).await);
    let err = within(30, lazy.health()).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Status(s) if s.code() == tonic::Code::Unavailable),
        "{err:?}"
    );
    let err = within(30, lazy.post("/", docs(1))).await.unwrap_err();
    assert!(matches!(err, ClientError::Status(_)), "{err:?}");

    // grpcs:// is TLS (tests/tls.rs); Jina's HTTP protocol is not spoken.
    let tls = Client::new("grpcs://localhost:443").unwrap();
    assert_eq!(tls.addr(), "grpcs://localhost:443");
    let err = Client::new("https://localhost:443").unwrap_err();
    assert!(err.to_string().contains("gRPC only"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Readiness, health and `flotilla ping`.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_gateway_is_ready_and_serving() {
    let (server, seen) = probe_server(2).await;
    let client = Client::new(&url(&server)).unwrap();
    assert!(within(30, client.is_ready()).await);
    within(30, client.dry_run()).await.unwrap();
    assert!(within(30, client.health()).await.unwrap());
    assert!(seen.lock().unwrap().is_empty(), "dry runs skip user code");
}

async fn flotilla(args: &[&str]) -> std::process::Output {
    let cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args(args)
        .kill_on_drop(true)
        .output();
    within(60, cmd).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flotilla_ping_answers_serving_or_fails() {
    let (server, _) = probe_server(1).await;
    let addr = url(&server);

    let out = flotilla(&["ping", &addr]).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "SERVING");

    let out = flotilla(&["ping", &addr, "--dry-run"]).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "READY");

    let closed = format!("grpc://{}", closed_addr());
    for extra in [&[][..], &["--dry-run"][..]] {
        let mut args = vec!["ping", closed.as_str(), "--timeout-ms", "2000"];
        args.extend_from_slice(extra);
        let out = flotilla(&args).await;
        assert!(!out.status.success(), "{out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&closed), "{stderr}");
    }

    // Over TLS to where nothing listens: the same failure, naming the grpcs:// address.
    let closed = format!("grpcs://localhost:{}", closed_addr().port());
    let out = flotilla(&["ping", &closed, "--timeout-ms", "2000"]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&closed), "{stderr}");
}
