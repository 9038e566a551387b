//! Wire compatibility with stock Jina 3.34 / docarray 0.41, checked with Jina's own Python code.
//!
//! - A stock `jina.Client` talks to a flotilla gateway served in this process (a Flow of Rust
//!   Executors defined below): docs with text, tags and 128-d embeddings, `request_size`
//!   batching, parameters and `__results__`, `return_type`, an Executor error surfacing as
//!   Jina's `BadServer`, `is_flow_ready()`.
//! - A stock `jina.Flow` uses the `flotilla executor` binary as an external Executor.
//!
//! The Python side lives in `tests/interop/*.py` and prints one `INTEROP <json>` line per
//! scenario; the assertions are here. Python is `$FLOTILLA_PYTHON`, else `.venv/bin/python`
//! (created by `.ci/run`, see `tests/interop/requirements.txt`). Without either the tests fail
//! and say how to create the venv, unless `FLOTILLA_SKIP_INTEROP=1`.
//!
//! Every subprocess is started in its own process group and the whole group is killed when the
//! test ends (Jina Flows start processes of their own); every wait is bounded (a hang guard,
//! not a performance assertion).

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::free_port;
use flotilla::actors::executor::factory;
use flotilla::grpc::server::{ServeOptions, Server};
use flotilla::grpc::service::Role;
use flotilla::grpc::tls::ServerTls;
use flotilla::{
    Context, Doc, Exec, Executor, ExecutorError, Flow, NdArray, Request, Requests, Value,
};
use serde_json::{Value as Json, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

// ---------------------------------------------------------------------------------------------
// The Executors of the Flow the stock client talks to.

/// Uppercases `text`; tags each doc with `upper`, `batch` (the docs in its request) and the
/// `tag_value` / `k` parameters as `param` / `k`.
struct Upper;

impl Executor for Upper {
    fn requests(r: &mut Requests<Self>) {
        r.default(Upper::upper);
    }
}

impl Upper {
    fn upper(&mut self, req: &mut Request, _: &Context) {
        let batch = Value::Int(req.docs.len() as i64);
        let param = req.parameter("tag_value").map(Value::from);
        let k = req.parameter("k").map(Value::from);
        for d in req.docs.iter_mut() {
            if let Some(t) = d.text().map(str::to_uppercase) {
                d.set_text(t);
            }
            let tags = d.tags_mut();
            tags.insert("upper".into(), Value::Bool(true));
            tags.insert("batch".into(), batch.clone());
            if let Some(p) = &param {
                tags.insert("param".into(), p.clone());
            }
            if let Some(k) = &k {
                tags.insert("k".into(), k.clone());
            }
        }
    }
}

/// Only `/fail`, which fails like a Python `raise ValueError('bad doc')`; every other endpoint
/// passes through it.
struct Picky;

impl Executor for Picky {
    fn requests(r: &mut Requests<Self>) {
        r.on(
            "/fail",
            |_: &mut Picky, _: &mut Request, _: &Context| -> Result<(), ExecutorError> {
                Err(ExecutorError::named("ValueError", "bad doc"))
            },
        );
    }
}

/// Checks that embeddings are 128-d floats and doubles them, tags `emb_sum`, and adds two scored
/// matches per doc. `/stats` returns a result object (`__results__`) instead.
struct Scorer;

impl Executor for Scorer {
    fn requests(r: &mut Requests<Self>) {
        r.on("/stats", Scorer::stats);
        r.default(Scorer::score);
    }
}

impl Scorer {
    fn score(&mut self, req: &mut Request, _: &Context) -> Result<(), ExecutorError> {
        for (i, d) in req.docs.iter_mut().enumerate() {
            let Some(e) = d.embedding() else { continue };
            if e.shape != [128] {
                return Err(ExecutorError::named(
                    "ValueError",
                    format!("docs[{i}].embedding has shape {:?}, not [128]", e.shape),
                ));
            }
            let doubled: Vec<f32> = e
                .to_f32()
                .ok_or_else(|| {
                    ExecutorError::named(
                        "TypeError",
                        format!("docs[{i}].embedding is {}", e.data.dtype()),
                    )
                })?
                .iter()
                .map(|x| x * 2.0)
                .collect();
            let sum: f64 = doubled.iter().map(|&x| f64::from(x)).sum();
            d.set_embedding(NdArray::from_f32(doubled));
            d.tags_mut().insert("emb_sum".into(), Value::Float(sum));
            let (id, text) = (d.id().to_owned(), d.text().unwrap_or("").to_owned());
            for k in 0..2u32 {
                // `with_score` stores a plain number, which a stock client decodes into
                // `LegacyDocumentJina.scores: Dict[str, Any]`.
                d.matches_mut().push(
                    Doc::with_id(format!("{id}-m{k}"))
                        .with_text(format!("match {k} of {text}"))
                        .with_score("cosine", 1.0 / f64::from(k + 1)),
                );
            }
        }
        Ok(())
    }

    fn stats(&mut self, req: &mut Request, ctx: &Context) -> Json {
        json!({
            "docs": req.docs.len(),
            "k": req.parameter("k").cloned(),
            "by": ctx.runtime_name.to_string(),
        })
    }
}

/// gateway → upper (2 replicas) → picky → scorer.
fn client_flow() -> Flow {
    Flow::new()
        .register("Upper", factory(|_| Ok(Upper)))
        .register("Picky", factory(|_| Ok(Picky)))
        .register("Scorer", factory(|_| Ok(Scorer)))
        .add(Exec::new().name("upper").uses("Upper").replicas(2))
        .add(Exec::new().name("picky").uses("Picky"))
        .add(Exec::new().name("scorer").uses("Scorer"))
}

async fn serve_gateway(flow: Flow) -> Server {
    let running = Arc::new(flow.start().expect("the test Flow is valid"));
    Server::start(
        running,
        "127.0.0.1:0".parse().unwrap(),
        ServeOptions::new(Role::Gateway),
    )
    .await
    .expect("the gateway binds")
}

// ---------------------------------------------------------------------------------------------
// Python and subprocesses.

const HOW_TO_GET_PYTHON: &str = "\
The interop tests need a Python with stock Jina (tests/interop/requirements.txt).
Create it (this is what .ci/run does) from the repository root:
    python3 -m venv .venv
    .venv/bin/pip install --upgrade pip
    .venv/bin/pip install -r tests/interop/requirements.txt
or point FLOTILLA_PYTHON at a python that has jina==3.34.0 and docarray==0.41.0,
or set FLOTILLA_SKIP_INTEROP=1 to skip these tests.";

/// The Python with stock Jina, or `None` when the interop tests are to be skipped.
fn python() -> Option<PathBuf> {
    if std::env::var("FLOTILLA_SKIP_INTEROP").as_deref() == Ok("1") {
        eprintln!("FLOTILLA_SKIP_INTEROP=1: skipping an interop test");
        return None;
    }
    if let Some(p) = std::env::var_os("FLOTILLA_PYTHON") {
        let p = PathBuf::from(p);
        assert!(
            p.exists(),
            "FLOTILLA_PYTHON={} does not exist.\n{HOW_TO_GET_PYTHON}",
            p.display()
        );
        return Some(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        p.exists(),
        "{} does not exist.\n{HOW_TO_GET_PYTHON}",
        p.display()
    );
    Some(p)
}

/// Kills a child's whole process group (it was started as the group's leader) on drop.
struct Group {
    child: Child,
}

impl Drop for Group {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.start_kill();
    }
}

fn spawn(mut cmd: Command) -> Group {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    cmd.process_group(0);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    Group { child }
}

/// Collects a pipe's lines in the background.
fn drain(pipe: Option<impl AsyncRead + Unpin + Send + 'static>) -> Arc<Mutex<Vec<String>>> {
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    if let Some(pipe) = pipe {
        let l = lines.clone();
        tokio::spawn(async move {
            let mut r = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = r.next_line().await {
                l.lock().unwrap().push(line);
            }
        });
    }
    lines
}

fn tail(lines: &Mutex<Vec<String>>, n: usize) -> String {
    let l = lines.lock().unwrap();
    l[l.len().saturating_sub(n)..].join("\n")
}

/// What a script printed: its `INTEROP` lines by scenario.
struct Output {
    lines: Vec<Json>,
    stderr: String,
}

impl Output {
    /// The result of `scenario`; fails the test if the scenario is missing or raised.
    fn scenario(&self, name: &str) -> &Json {
        let found = self
            .lines
            .iter()
            .find(|l| l["scenario"] == name)
            .unwrap_or_else(|| {
                panic!(
                    "the script printed no result for `{name}`; stderr:\n{}",
                    self.stderr
                )
            });
        if let Some(e) = found.get("error") {
            panic!(
                "scenario `{name}` raised in Python:\n{}\nstderr:\n{}",
                e.as_str().unwrap_or_default(),
                self.stderr
            );
        }
        found
    }
}

/// Runs `tests/interop/<script> args…` with `python`, within `secs` seconds.
async fn run_script(python: &Path, script: &str, args: &[String], secs: u64) -> Output {
    run_script_with(python, script, args, &[], secs).await
}

/// [`run_script`] with extra environment variables.
async fn run_script_with(
    python: &Path,
    script: &str,
    args: &[String],
    env: &[(&str, &std::ffi::OsStr)],
    secs: u64,
) -> Output {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(script);
    let mut cmd = Command::new(python);
    cmd.arg(&path)
        .args(args)
        .envs(env.iter().copied())
        .env("JINA_LOG_LEVEL", "ERROR")
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let mut group = spawn(cmd);
    let stdout = drain(group.child.stdout.take());
    let stderr = drain(group.child.stderr.take());
    let status = tokio::time::timeout(Duration::from_secs(secs), group.child.wait()).await;
    let status = match status {
        Ok(s) => s.expect("waiting for the script"),
        Err(_) => panic!(
            "{script} did not finish within {secs} s (hang guard)\nstdout:\n{}\nstderr:\n{}",
            tail(&stdout, 40),
            tail(&stderr, 60)
        ),
    };
    // The pipes close when the process group is gone; give the readers a moment to finish.
    drop(group);
    for _ in 0..100 {
        if Arc::strong_count(&stdout) == 1 && Arc::strong_count(&stderr) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stderr = tail(&stderr, 80);
    let hint = if stderr.contains("ModuleNotFoundError") {
        HOW_TO_GET_PYTHON
    } else {
        ""
    };
    assert!(
        status.success(),
        "{script} exited with {status}\nstdout:\n{}\nstderr:\n{stderr}\n{hint}",
        tail(&stdout, 40)
    );
    let lines = stdout
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| l.strip_prefix("INTEROP "))
        .map(|l| serde_json::from_str(l).expect("an INTEROP line is JSON"))
        .collect();
    Output { lines, stderr }
}

async fn run_client(python: &Path, server: &Server, scenarios: &[&str]) -> Output {
    let mut args = vec![server.local_addr().port().to_string()];
    args.extend(scenarios.iter().map(|s| s.to_string()));
    run_script(python, "client.py", &args, 180).await
}

// ---------------------------------------------------------------------------------------------
// Checks on what Python saw.

fn as_f64(v: &Json) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("{v} is not a number"))
}

fn strs(v: &Json) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("{v} is not a list"))
        .iter()
        .map(|s| s.as_str().expect("a string").to_owned())
        .collect()
}

/// Doc `i` of the client's `in_docs(n)` after upper → scorer: `hello i` uppercased, the original
/// tags plus the Executors' ones, the embedding `0.5 j + i` doubled, two scored matches.
fn check_scored_doc(d: &Json, i: usize, batch: usize, param: Option<&str>, typed: bool) {
    let id = format!("d{i}");
    assert_eq!(d["id"], id, "{d}");
    assert_eq!(d["text"], format!("HELLO {i}"));
    let tags = &d["tags"];
    assert_eq!(
        as_f64(&tags["i"]),
        i as f64,
        "the client's tags survive: {tags}"
    );
    assert_eq!(tags["src"], "py");
    assert_eq!(tags["nested"], json!({"l": [1, "x", true]}));
    assert_eq!(tags["upper"], true);
    assert_eq!(as_f64(&tags["batch"]), batch as f64);
    match param {
        Some(p) => assert_eq!(tags["param"], p),
        None => assert!(tags.get("param").is_none(), "{tags}"),
    }
    // sum over j < 128 of 2 (0.5 j + i) = 8128 + 256 i
    assert_eq!(as_f64(&tags["emb_sum"]), 8128.0 + 256.0 * i as f64);
    assert_eq!(d["shape"], json!([128]));
    assert_eq!(d["dtype"], "float32");
    let emb: Vec<f64> = d["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(as_f64)
        .collect();
    let want: Vec<f64> = (0..128).map(|j| j as f64 + 2.0 * i as f64).collect();
    assert_eq!(emb, want, "the embedding of {id} comes back doubled");
    let matches = d["matches"].as_array().unwrap();
    assert_eq!(matches.len(), 2, "{d}");
    for (k, m) in matches.iter().enumerate() {
        assert_eq!(m["id"], format!("{id}-m{k}"));
        assert_eq!(m["text"], format!("match {k} of HELLO {i}"));
        if typed {
            assert_eq!(m["class"], "TextDoc");
        } else {
            assert_eq!(
                as_f64(&m["scores"]["cosine"]),
                1.0 / (k as f64 + 1.0),
                "{m}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The tests.

/// A stock client posts docs with text, tags and 128-d embeddings through a two-Executor Flow
/// (plus a pass-through one) and gets them back as the Flow defines, untyped (AnyDoc) and typed;
/// `return_type=DocList[TextDoc]`; `is_flow_ready()`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_client_round_trips_docs_through_a_flotilla_flow() {
    let Some(py) = python() else { return };
    let server = serve_gateway(client_flow()).await;
    let out = run_client(&py, &server, &["ready", "roundtrip", "return_type"]).await;

    assert_eq!(out.scenario("ready")["ready"], true);

    let rt = out.scenario("roundtrip");
    let docs = rt["docs"].as_array().unwrap();
    assert_eq!(docs.len(), 5);
    for (i, d) in docs.iter().enumerate() {
        check_scored_doc(d, i, 5, Some("rt"), false);
    }
    let typed = rt["typed"].as_array().unwrap();
    assert_eq!(typed.len(), 5);
    for (i, d) in typed.iter().enumerate() {
        assert_eq!(d["class"], "OutDoc");
        check_scored_doc(d, i, 5, None, true);
    }

    let rt = out.scenario("return_type");
    assert_eq!(rt["list_doc_type"], "TextDoc");
    let docs = rt["docs"].as_array().unwrap();
    assert_eq!(docs.len(), 3);
    for (i, d) in docs.iter().enumerate() {
        assert_eq!(d["class"], "TextDoc");
        assert_eq!(d["id"], format!("t{i}"));
        assert_eq!(d["text"], format!("ABC {i}"));
        assert_eq!(d["shape"], json!([128]));
        let emb = d["embedding"].as_array().unwrap();
        assert!(
            emb.iter().all(|x| as_f64(x) == 2.0 * i as f64),
            "embedding of t{i}: {emb:?}"
        );
        assert_eq!(d["matches"], json!([]), "TextDoc has no matches field");
    }
    server.stop().await;
}

/// Jina's client with `tls=True` against a gateway serving a certificate for localhost (Jina's
/// `ssl_certfile`/`ssl_keyfile`); the client trusts its CA through gRPC's
/// `GRPC_DEFAULT_SSL_ROOTS_FILE_PATH`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_client_posts_over_tls_to_a_flotilla_gateway() {
    let Some(py) = python() else { return };
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .expect("rcgen makes a certificate");
    let (cert, key) = (cert.cert.pem(), cert.signing_key.serialize_pem());
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &cert).unwrap();
    let mut opts = ServeOptions::new(Role::Gateway);
    opts.tls = Some(ServerTls::from_pem(cert, key).expect("PEM blocks"));
    let running = Arc::new(client_flow().start().expect("the test Flow is valid"));
    let server = Server::start(running, "127.0.0.1:0".parse().unwrap(), opts)
        .await
        .expect("the TLS gateway binds");
    let args = vec![
        server.local_addr().port().to_string(),
        "ready".into(),
        "roundtrip".into(),
    ];
    let env = [
        ("FLOTILLA_TLS", std::ffi::OsStr::new("1")),
        ("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", ca.as_os_str()),
    ];
    let out = run_script_with(&py, "client.py", &args, &env, 180).await;
    assert_eq!(out.scenario("ready")["ready"], true);
    let docs = out.scenario("roundtrip")["docs"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(docs.len(), 5);
    for (i, d) in docs.iter().enumerate() {
        check_scored_doc(d, i, 5, Some("rt"), false);
    }
    server.stop().await;
}

/// `request_size` batching over the stream (in order) and over unary calls (`stream=False`), and
/// parameters reaching the Executors; a result object comes back under `__results__`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_client_batches_requests_and_sends_parameters() {
    let Some(py) = python() else { return };
    let server = serve_gateway(client_flow()).await;
    let out = run_client(&py, &server, &["batching", "parameters"]).await;

    let b = out.scenario("batching");
    let want: Vec<String> = (0..250).map(|i| format!("b{i}")).collect();
    assert_eq!(
        strs(&b["ids"]),
        want,
        "250 docs in requests of 10 come back, in order"
    );
    assert_eq!(
        b["batches"],
        json!([10]),
        "each request the Executor saw held 10 docs"
    );
    assert_eq!(b["texts_upper"], true);
    let mut unary = strs(&b["unary_ids"]);
    unary.sort_by_key(|id| id[1..].parse::<usize>().unwrap());
    let want: Vec<String> = (0..60).map(|i| format!("u{i}")).collect();
    assert_eq!(unary, want, "stream=False: 60 docs in 3 unary requests");
    assert_eq!(b["unary_batches"], json!([10, 25]));

    let p = out.scenario("parameters");
    let tags = p["tags"].as_array().unwrap();
    assert_eq!(tags.len(), 2);
    for t in tags {
        assert_eq!(t["param"], "from python", "{t}");
        assert_eq!(
            as_f64(&t["k"]),
            3.0,
            "numbers travel as doubles, as in Jina: {t}"
        );
    }
    let responses = p["responses"].as_array().unwrap();
    assert_eq!(responses.len(), 1, "{responses:?}");
    let r = &responses[0];
    assert_eq!(strs(&r["ids"]), ["s0", "s1", "s2"]);
    let params = &r["parameters"];
    assert_eq!(as_f64(&params["k"]), 1.0, "{params}");
    let results = params["__results__"]
        .as_object()
        .unwrap_or_else(|| panic!("no __results__ in {params}"));
    assert_eq!(results.len(), 1, "{results:?}");
    let (by, stats) = results.iter().next().unwrap();
    assert!(by.starts_with("scorer"), "{results:?}");
    assert_eq!(as_f64(&stats["docs"]), 3.0);
    assert_eq!(as_f64(&stats["k"]), 1.0);
    assert_eq!(stats["by"], by.as_str());
    server.stop().await;
}

/// `Client.post(target_executor=…)` runs only the nodes the regex names; a parameter
/// `upper__tag_value` reaches `upper` as `tag_value`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_client_targets_executors_and_their_own_parameters() {
    let Some(py) = python() else { return };
    let server = serve_gateway(client_flow()).await;
    let out = run_client(&py, &server, &["targeted"]).await;
    let t = out.scenario("targeted");
    // `upper` alone: uppercased and tagged by it, no scorer's `emb_sum`.
    assert_eq!(
        t["upper_only"],
        json!([
            {"text": "HELLO 0", "tags": ["batch", "i", "nested", "src", "upper"]},
            {"text": "HELLO 1", "tags": ["batch", "i", "nested", "src", "upper"]},
        ])
    );
    // `scorer` alone: `upper` passed the docs on untouched.
    assert_eq!(
        t["scorer_only"],
        json!([
            {"text": "hello 0", "tags": ["emb_sum", "i", "nested", "src"]},
            {"text": "hello 1", "tags": ["emb_sum", "i", "nested", "src"]},
        ])
    );
    for tags in t["specific"].as_array().unwrap() {
        assert_eq!(tags["param"], "only upper", "{tags}");
        assert_eq!(as_f64(&tags["k"]), 2.0, "{tags}");
    }
    server.stop().await;
}

/// An Executor's `Err(ExecutorError::named("ValueError", "bad doc"))` reaches the stock client as
/// `BadServer` carrying Jina's error header; the Flow keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executor_error_is_bad_server_in_the_stock_client() {
    let Some(py) = python() else { return };
    let server = serve_gateway(client_flow()).await;
    let out = run_client(&py, &server, &["error"]).await;

    let e = out.scenario("error");
    assert_eq!(e["raised"], "BadServer", "{e}");
    assert_eq!(e["code"], 1, "StatusProto.ERROR: {e}");
    assert_eq!(e["is_error"], true);
    assert_eq!(e["name"], "ValueError");
    assert_eq!(e["args"], json!(["bad doc"]));
    assert_eq!(e["description"], "ValueError('bad doc')");
    assert_eq!(
        e["executor"], "Picky",
        "the error names the failing Executor's class, as Jina's does: {e}"
    );
    assert_eq!(e["request_id"].as_str().map(str::len), Some(32), "{e}");
    assert_eq!(
        strs(&e["after"]),
        ["HELLO 0", "HELLO 1", "HELLO 2"],
        "the Flow serves after the error"
    );
    // With continue_on_error the client keeps the failed request's docs, as `upper` left them
    // before `picky` failed (`scorer`, after it, never saw them).
    let tags = json!(["batch", "i", "nested", "src", "upper"]);
    assert_eq!(
        e["kept"],
        json!([
            {"id": "k0", "text": "HELLO 0", "tags": tags},
            {"id": "k1", "text": "HELLO 1", "tags": tags},
        ]),
        "{e}"
    );
    server.stop().await;
}

/// `flotilla executor --uses Echo` as a subprocess, once it serves.
async fn flotilla_executor(port: u16) -> (Group, Arc<Mutex<Vec<String>>>) {
    flotilla_executor_with(port, &["--uses", "Echo", "--name", "rust_echo"]).await
}

/// `flotilla executor ARGS --host 127.0.0.1 --port PORT` as a subprocess, once it serves.
async fn flotilla_executor_with(port: u16, args: &[&str]) -> (Group, Arc<Mutex<Vec<String>>>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flotilla"));
    cmd.arg("executor")
        .args(args)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()]);
    let mut group = spawn(cmd);
    let stderr = drain(group.child.stderr.take());
    let stdout = group.child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let serving = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.starts_with("serving on grpc://") {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        matches!(serving, Ok(true)),
        "`flotilla executor` did not start serving on port {port}; stderr:\n{}",
        tail(&stderr, 40)
    );
    // Keep reading its stdout so that it never writes into a closed pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (group, stderr)
}

/// A stock `jina.Flow` with the `flotilla executor` binary as an external Executor: Jina's
/// gateway probes it (reflection, endpoint discovery), reports ready and gets the docs back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_jina_flow_uses_a_flotilla_executor() {
    let Some(py) = python() else { return };
    let port = free_port();
    let (_executor, executor_log) = flotilla_executor(port).await;
    let out = run_script(&py, "jina_flow.py", &[port.to_string()], 300).await;
    let context = || format!("flotilla executor log:\n{}", tail(&executor_log, 40));

    assert_eq!(
        out.scenario("jina_flow_ready")["ready"],
        true,
        "{}",
        context()
    );

    let docs = out.scenario("jina_flow_textdocs")["docs"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(docs.len(), 20, "{}", context());
    for (i, d) in docs.iter().enumerate() {
        assert_eq!(d["class"], "TextDoc");
        assert_eq!(d["id"], format!("x{i}"), "in order: {docs:?}");
        assert_eq!(d["text"], format!("text {i}"));
        assert_eq!(d["shape"], json!([128]));
        assert_eq!(d["embedding_first_last"], json!([i as f64, i as f64]));
    }

    let docs = out.scenario("jina_flow_tagged")["docs"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(docs.len(), 3, "{}", context());
    for (i, d) in docs.iter().enumerate() {
        assert_eq!(d["id"], format!("g{i}"));
        assert_eq!(d["text"], format!("tagged {i}"));
        assert_eq!(as_f64(&d["tags"]["i"]), i as f64, "{d}");
        assert_eq!(d["tags"]["name"], format!("n{i}"));
        assert_eq!(d["tags"]["l"], json!([1, "x"]));
        let want: Vec<f64> = (0..4).map(|j| (i + j) as f64).collect();
        assert_eq!(d["embedding"], json!(want));
    }
}

/// A stock `jina.Flow` of a failing `flotilla executor` and a Python Executor after it: Jina's
/// gateway reads flotilla's `is-error` trailer and stops the request there (the Python Executor
/// never sees it), the client gets `BadServer`, and the Flow serves the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_jina_flow_stops_at_a_flotilla_executor_error() {
    let Some(py) = python() else { return };
    let port = free_port();
    let args = ["--uses", "ExactNNIndexer", "--uses-with", r#"{"dim": 4}"#];
    let (_executor, executor_log) = flotilla_executor_with(port, &args).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let marks = dir.path().join("marks.txt");
    let script_args = [port.to_string(), marks.display().to_string()];
    let out = run_script(&py, "jina_flow_error.py", &script_args, 300).await;
    let context = || format!("flotilla executor log:\n{}", tail(&executor_log, 40));

    let good = out.scenario("good");
    assert_eq!(strs(&good["ids"]), ["good0", "good1"], "{}", context());
    assert_eq!(strs(&good["marks"]), ["good0", "good1"], "{}", context());

    let bad = out.scenario("bad");
    assert_eq!(bad["raised"], "BadServer", "{bad}");
    assert!(
        bad["message"]
            .as_str()
            .unwrap_or_default()
            .contains("dim 4"),
        "the error names the cause: {bad}"
    );
    assert_eq!(
        strs(&bad["marks"]),
        ["good0", "good1"],
        "the Executor after the failed one never saw the failed request"
    );

    let after = out.scenario("after");
    assert_eq!(strs(&after["ids"]), ["after0", "after1"]);
    assert_eq!(
        strs(&after["marks"]),
        ["good0", "good1", "after0", "after1"]
    );
}
