//! External Executors: replicas in other processes, reached over gRPC. A request goes to the
//! replica with the least in flight; what Jina would retry is retried on another replica, so a
//! replica killed mid-run loses no request.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{free_port, served_by, within};
use flotilla::actors::dispatch::{Dispatch, DispatchError};
use flotilla::actors::executor::ExecutorError;
use flotilla::actors::remote::{Done, RemoteError, RemoteReplica};
use flotilla::actors::request::Request;
use flotilla::config::yaml;
use flotilla::{Doc, DocList, Exec, Flow, PostOptions};

/// A remote replica that fails the first `fail` requests it gets (retryably), then echoes.
struct Fake {
    address: Arc<str>,
    fail: AtomicUsize,
    served: Arc<Mutex<Vec<String>>>,
    executor_error: bool,
}

impl RemoteReplica for Fake {
    fn address(&self) -> &Arc<str> {
        &self.address
    }

    fn send(&self, mut request: Request, done: Done) {
        let failing = self
            .fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let result = if self.executor_error {
            Err(RemoteError {
                error: DispatchError::executor(
                    self.address.clone(),
                    ExecutorError::named("ValueError", "no"),
                ),
                retry: false,
                request: None,
            })
        } else if failing {
            Err(RemoteError {
                error: DispatchError::Unavailable {
                    replica: self.address.clone(),
                    message: "Unavailable: connection refused".into(),
                },
                retry: true,
                request: Some(Box::new(request)),
            })
        } else {
            self.served.lock().unwrap().push(request.id.clone());
            request.routes.push(self.address.clone());
            Ok(request)
        };
        std::thread::spawn(move || done(result));
    }
}

fn fake(name: &str, fail: usize, served: &Arc<Mutex<Vec<String>>>) -> Arc<dyn RemoteReplica> {
    Arc::new(Fake {
        address: name.into(),
        fail: AtomicUsize::new(fail),
        served: served.clone(),
        executor_error: false,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_replica_is_retried_elsewhere_and_then_avoided() {
    let served = Arc::new(Mutex::new(Vec::new()));
    let d = Dispatch::remote(
        "ext",
        vec![fake("a", usize::MAX, &served), fake("b", 0, &served)],
        4,
        16,
    );
    for i in 0..50 {
        let r = within(
            10,
            d.call(Request::new(
                "/x",
                DocList::from(Doc::with_id(format!("{i}"))),
            )),
        )
        .await
        .unwrap();
        assert_eq!(r.routes.last().map(|s| &**s), Some("b"));
    }
    assert_eq!(
        served.lock().unwrap().len(),
        50,
        "every request served once, by b"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_replica_fails_the_error_names_one_and_nothing_hangs() {
    let served = Arc::new(Mutex::new(Vec::new()));
    let d = Dispatch::remote(
        "ext",
        vec![
            fake("a", usize::MAX, &served),
            fake("b", usize::MAX, &served),
        ],
        4,
        16,
    );
    let r = within(10, d.call(Request::new("/x", DocList::new()))).await;
    assert!(matches!(r, Err(DispatchError::Unavailable { .. })), "{r:?}");
    assert!(served.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executor_error_is_not_retried() {
    let a: Arc<dyn RemoteReplica> = Arc::new(Fake {
        address: "a".into(),
        fail: AtomicUsize::new(0),
        served: Arc::default(),
        executor_error: true,
    });
    let d = Dispatch::remote("ext", vec![a], 4, 16);
    let r = within(10, d.call(Request::new("/x", DocList::new()))).await;
    assert!(matches!(r, Err(DispatchError::Executor { .. })), "{r:?}");
}

#[test]
fn host_and_port_lists_make_replicas() {
    let f = yaml::parse(
        "jtype: Flow\nexecutors:\n  - name: ext\n    external: true\n    host: ['localhost:12345', '127.0.0.1:12346']\n  - name: ext2\n    external: true\n    host: localhost\n    port: [1, 2, 3]\n",
        Some("f.yml"),
    )
    .ok()
    .unwrap()
    .into_flow()
    .unwrap();
    let g = f.graph().unwrap();
    let addrs = |i: usize| -> Vec<String> {
        g.nodes[i]
            .deployment
            .remote
            .as_ref()
            .unwrap()
            .replicas
            .iter()
            .map(|r| r.address().to_string())
            .collect()
    };
    assert_eq!(addrs(0), ["localhost:12345", "127.0.0.1:12346"]);
    assert_eq!(addrs(1), ["localhost:1", "localhost:2", "localhost:3"]);
    assert_eq!(g.nodes[1].deployment.replicas, 3);
    let e = yaml::parse(
        "jtype: Flow\nexecutors:\n  - name: ext\n    external: true\n    host: [a, b, c]\n    port: [1, 2]\n",
        Some("f.yml"),
    )
    .ok()
    .unwrap()
    .into_flow()
    .unwrap()
    .graph()
    .unwrap_err();
    assert!(
        e.mentions("f.yml:5: executor 'ext', key 'host': 3 hosts and 2 ports cannot be paired"),
        "{e}"
    );
}

/// A `flotilla executor` process, killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn executor(name: &str, port: u16) -> Proc {
    let child = Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args([
            "executor",
            "--uses",
            "SlowFast",
            "--uses-with",
            r#"{"slow_ms": 20}"#,
        ])
        .args([
            "--name",
            name,
            "--port",
            &port.to_string(),
            "--host",
            "127.0.0.1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting flotilla executor");
    Proc(child)
}

async fn wait_listening(port: u16) {
    within(30, async {
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_an_external_replica_mid_run_loses_no_request() {
    let (pa, pb) = (free_port(), free_port());
    let mut a = Some(executor("a", pa));
    let _b = executor("b", pb);
    wait_listening(pa).await;
    wait_listening(pb).await;
    let flow = Flow::new()
        .add(Exec::new().name("prep").uses("Echo"))
        .add(
            Exec::new()
                .name("ext")
                .external_at(vec![format!("127.0.0.1:{pa}"), format!("127.0.0.1:{pb}")]),
        )
        .start()
        .unwrap();
    let docs: DocList = (0..300).map(|i| Doc::with_id(format!("d{i}"))).collect();
    let opts = PostOptions {
        request_size: 1,
        prefetch: 16,
        ..PostOptions::default()
    };
    let post = flow.post_with("/slow", docs, &opts);
    let kill = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        // kill -9: in-flight calls to `a` break and are retried on `b`.
        if let Some(mut p) = a.take() {
            let _ = p.0.kill();
        }
    };
    let (out, ()) = within(120, futures::future::join(post, kill)).await;
    let out = out.expect("every request is answered");
    assert_eq!(out.len(), 300);
    let ids: Vec<String> = out.ids().into_iter().map(str::to_owned).collect();
    let want: Vec<String> = (0..300).map(|i| format!("d{i}")).collect();
    assert_eq!(ids, want, "each doc once, in input order");
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for d in out.iter() {
        *by.entry(served_by(d)).or_default() += 1;
    }
    assert!(
        by.get("a/rep-0").is_some_and(|&n| n > 0),
        "a served before it was killed: {by:?}"
    );
    assert!(
        by.get("b/rep-0").is_some_and(|&n| n > 150),
        "b took over: {by:?}"
    );
    flow.close();
}

/// Tags each doc with how many parts its request carried and where they came from.
struct Parts;

impl flotilla::Executor for Parts {
    fn requests(r: &mut flotilla::Requests<Self>) {
        r.default(|_: &mut Parts, req: &mut Request, _: &flotilla::Context| {
            let from: Vec<String> = req.docs_matrix.iter().map(|p| p.from.to_string()).collect();
            for d in req.docs.iter_mut() {
                d.tags_mut()
                    .insert("parts".into(), flotilla::Value::Int(from.len() as i64));
                d.tags_mut()
                    .insert("from".into(), flotilla::Value::from(from.join(",")));
            }
        });
    }
}

async fn executor_server(dep: flotilla::Deployment) -> flotilla::grpc::server::Server {
    use flotilla::grpc::server::{ServeOptions, Server};
    use flotilla::grpc::service::Role;
    Server::start(
        Arc::new(dep.start().unwrap()),
        "127.0.0.1:0".parse().unwrap(),
        ServeOptions::new(Role::Executor),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_without_reduce_reaches_an_external_executor_as_every_part() {
    let server = executor_server(
        flotilla::Deployment::new()
            .name("joiner")
            .uses_factory("Parts", flotilla::factory(|_| Ok(Parts))),
    )
    .await;
    let flow = Flow::new()
        .add(Exec::new().name("a").uses("Echo").needs("gateway"))
        .add(Exec::new().name("b").uses("Echo").needs("gateway"))
        .needs(
            ["a", "b"],
            Exec::new()
                .name("join")
                .external_at(vec![server.local_addr().to_string()])
                .disable_reduce(true),
        )
        .start()
        .unwrap();
    let out = within(30, flow.post("/x", Doc::with_id("d")))
        .await
        .unwrap();
    // process_data: both parts arrive, named by the replica that made them.
    assert_eq!(out.ids(), vec!["d", "d"]);
    for d in out.iter() {
        assert_eq!(d.tag("parts"), Some(&flotilla::Value::Int(2)));
        assert_eq!(
            d.tag("from").and_then(|v| v.as_str()),
            Some("a/rep-0,b/rep-0")
        );
    }
    flow.close();
    server.stop().await;
}

/// Marks each doc `seen`, then refuses the request.
struct Refuser;

impl flotilla::Executor for Refuser {
    fn requests(r: &mut flotilla::Requests<Self>) {
        r.default(
            |_: &mut Refuser,
             req: &mut Request,
             _: &flotilla::Context|
             -> Result<(), ExecutorError> {
                for d in req.docs.iter_mut() {
                    d.tags_mut()
                        .insert("seen".into(), flotilla::Value::Bool(true));
                }
                Err(ExecutorError::named("ValueError", "refused"))
            },
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_executors_error_names_its_class_and_keeps_its_docs() {
    let server = executor_server(
        flotilla::Deployment::new()
            .name("far")
            .uses_factory("Refuser", flotilla::factory(|_| Ok(Refuser))),
    )
    .await;
    let addr = server.local_addr().to_string();
    let flow = Flow::new()
        .add(Exec::new().name("ext").external_at(vec![addr.clone()]))
        .start()
        .unwrap();
    let sent: DocList = vec![Doc::with_id("a"), Doc::with_id("b")].into();
    let err = within(30, flow.post("/x", sent)).await.unwrap_err();
    let flotilla::Error::Request(DispatchError::Executor {
        replica,
        error,
        class,
        docs,
    }) = err
    else {
        panic!("not an Executor error: {err:?}");
    };
    assert_eq!(
        &*replica,
        addr.as_str(),
        "the replica is the address called"
    );
    assert_eq!(
        (error.name.as_str(), error.message.as_str()),
        ("ValueError", "refused")
    );
    assert_eq!(
        class.as_deref(),
        Some("Refuser"),
        "the class the remote reported"
    );
    // The docs as the remote's handler left them, as Jina's error response carries them.
    let docs = docs.expect("the error carries the request's docs");
    assert_eq!(docs.ids(), vec!["a", "b"]);
    assert!(docs.iter().all(|d| d.tag("seen").is_some()));
    flow.close();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_send_is_the_deadline_of_a_call() {
    let server = executor_server(
        flotilla::Deployment::new()
            .uses("SlowFast")
            .uses_with(serde_json::json!({"slow_ms": 2000})),
    )
    .await;
    let flow = Flow::new()
        .add(
            Exec::new()
                .name("slow")
                .external_at(vec![server.local_addr().to_string()])
                .timeout_send(100),
        )
        .start()
        .unwrap();
    // /fast is within the deadline; /slow is not, and after the retries Jina allows it fails
    // with the deadline named.
    assert_eq!(
        within(30, flow.post("/fast", Doc::new()))
            .await
            .unwrap()
            .len(),
        1
    );
    let err = within(60, flow.post("/slow", Doc::new()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("DeadlineExceeded"), "{err}");
    flow.close();
    server.stop().await;
}
