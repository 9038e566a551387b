//! Requests aimed at some Executors (Jina's §4.7): `target_executor` runs a request through the
//! nodes whose name the regex matches from the start, the others hand it on; a parameter
//! `"<executor>__<key>"` reaches only that Executor (as `<key>`), and an object named after an
//! Executor is merged into its parameters. In-process and through the gRPC gateway.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::within;
use flotilla::actors::executor::{factory, factory_with};
use flotilla::actors::prelude::*;
use flotilla::grpc::client::{Client, ClientError, ClientPost};
use flotilla::grpc::server::{ServeOptions, Server};
use flotilla::grpc::service::Role;
use flotilla::{Exec, Flow, PostOptions, Running};
use serde_json::json;

/// Appends a doc saying who it is and which parameters it saw, and counts its calls in its
/// Flow's own counter (tests run side by side in one process, so a global would mix them).
struct Says {
    who: String,
    calls: Arc<AtomicUsize>,
}

impl Executor for Says {
    fn requests(r: &mut Requests<Self>) {
        r.default(|e: &mut Says, req: &mut Request, _: &Context| {
            e.calls.fetch_add(1, Ordering::SeqCst);
            let seen = serde_json::Value::Object((*req.parameters).clone());
            req.docs
                .push(Doc::text_doc(format!("{} saw {seen}", e.who)));
        });
    }
}

#[derive(serde::Deserialize)]
struct Who {
    who: String,
}

/// gateway → encoder → indexer, and a `ranker` beside them both, all joined at the end.
fn flow() -> Flow {
    counted_flow(Arc::default())
}

/// [`flow`], its Executors counting their calls in `calls`.
fn counted_flow(calls: Arc<AtomicUsize>) -> Flow {
    let says = factory_with(move |w: Who, _: &Context| {
        Ok(Says {
            who: w.who,
            calls: calls.clone(),
        })
    });
    let exec = |name: &str| {
        Exec::new()
            .uses("Says")
            .uses_with(json!({ "who": name }))
            .name(name)
    };
    Flow::new()
        .register("Says", says)
        .add(exec("encoder"))
        .add(exec("indexer"))
        .add(exec("ranker").needs("gateway"))
        .add(Exec::new().name("join").needs(["indexer", "ranker"]))
}

async fn post(f: &Running, target: Option<&str>, parameters: serde_json::Value) -> Vec<String> {
    let opts = PostOptions {
        target_executor: target.map(str::to_owned),
        parameters: parameters.as_object().cloned().unwrap_or_default(),
        ..PostOptions::default()
    };
    let docs = within(30, f.post_with("/foo", DocList::new(), &opts))
        .await
        .expect("the post succeeds");
    let mut texts: Vec<String> = docs.texts().into_iter().map(str::to_owned).collect();
    // Parallel branches join in either order.
    texts.sort();
    texts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_targeted_nodes_run_and_the_others_hand_the_request_on() {
    let f = flow().start().unwrap();
    assert_eq!(
        post(&f, None, json!({})).await,
        ["encoder saw {}", "indexer saw {}", "ranker saw {}"]
    );
    // `indexer` runs; `encoder` before it and `ranker` beside it do not, nor does `join`.
    assert_eq!(
        post(&f, Some("indexer"), json!({})).await,
        ["indexer saw {}"]
    );
    // A regex, matched from the start of the name: "index" names `indexer`, "dexer" nothing.
    assert_eq!(
        post(&f, Some("enc|rank"), json!({})).await,
        ["encoder saw {}", "ranker saw {}"]
    );
    assert_eq!(
        post(&f, Some("dexer"), json!({})).await,
        Vec::<String>::new()
    );
    assert_eq!(
        post(&f, Some(".*er"), json!({})).await,
        ["encoder saw {}", "indexer saw {}", "ranker saw {}"]
    );
    f.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executor_specific_parameters_reach_their_executor_only() {
    let f = flow().start().unwrap();
    let texts = post(
        &f,
        None,
        json!({"limit": 1, "indexer__limit": 5, "ranker": {"depth": 2}, "__results__": {}}),
    )
    .await;
    let seen: Vec<(&str, serde_json::Value)> = texts
        .iter()
        .map(|t| {
            let (who, params) = t.split_once(" saw ").expect("who saw what");
            (who, serde_json::from_str(params).expect("JSON"))
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                "encoder",
                json!({"limit": 1, "ranker": {"depth": 2}, "__results__": {}})
            ),
            (
                "indexer",
                json!({"limit": 5, "ranker": {"depth": 2}, "__results__": {}})
            ),
            (
                "ranker",
                json!({"limit": 1, "ranker": {"depth": 2}, "depth": 2, "__results__": {}})
            ),
        ]
    );
    f.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_is_not_a_regex_is_refused_before_any_executor_runs() {
    let calls = Arc::new(AtomicUsize::new(0));
    let f = counted_flow(calls.clone()).start().unwrap();
    let opts = PostOptions {
        target_executor: Some("(".into()),
        ..PostOptions::default()
    };
    let err = within(30, f.post_with("/foo", DocList::new(), &opts))
        .await
        .expect_err("refused");
    assert!(err.to_string().contains(r#"target_executor "(""#), "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 0, "no Executor ran");
    // The same Flow runs a good target, so the counter does count.
    post(&f, Some("encoder"), json!({})).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1, "only the encoder ran");
    f.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_grpc_the_header_targets_and_a_bad_regex_is_a_clear_error() {
    let running = Arc::new(flow().start().unwrap());
    let server = Server::start(
        running.clone(),
        "127.0.0.1:0".parse().unwrap(),
        ServeOptions::new(Role::Gateway),
    )
    .await
    .unwrap();
    let client = Client::connect(&format!("grpc://{}", server.local_addr()))
        .await
        .unwrap();
    let opts = |target: &str| ClientPost {
        target_executor: Some(target.into()),
        parameters: json!({"ranker__k": 3}).as_object().cloned().unwrap(),
        ..ClientPost::default()
    };
    let docs = within(30, client.post_with("/foo", DocList::new(), &opts("rank")))
        .await
        .unwrap();
    // A Struct's numbers are doubles (as with Jina).
    assert_eq!(docs.texts(), [r#"ranker saw {"k":3.0}"#]);
    let err = within(30, client.post_with("/foo", DocList::new(), &opts("(")))
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, ClientError::BadServer(_) | ClientError::Status(_)),
        "{err:?}"
    );
    assert!(err.to_string().contains("not a regex"), "{err}");
    // The gateway keeps serving.
    let docs = within(30, client.post_with("/foo", DocList::new(), &opts("enc")))
        .await
        .unwrap();
    assert_eq!(docs.texts(), [r#"encoder saw {}"#]);
    server.stop().await;
}

/// a and b both take the gateway's docs; `join` joins them without reduce, through a
/// `uses_before` Executor.
fn no_reduce_join() -> Flow {
    let says = |who: &'static str| {
        factory(move |_| {
            Ok(Says {
                who: who.into(),
                calls: Arc::default(),
            })
        })
    };
    Flow::new()
        .register("A", says("a"))
        .register("B", says("b"))
        .add(Exec::new().name("a").uses("A").needs("gateway"))
        .add(Exec::new().name("b").uses("B").needs("gateway"))
        .add(
            Exec::new()
                .name("join")
                .needs(["a", "b"])
                .disable_reduce(true)
                .uses_before_factory("JoinBefore", says("join/before")),
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skipped_join_merges_its_parts_and_a_uses_before_sees_its_nodes_parameters() {
    let f = no_reduce_join().start().unwrap();
    let input = || DocList::from(vec![Doc::with_id("in").with_text("input")]);
    let post = |target: Option<&str>, parameters: serde_json::Value| PostOptions {
        target_executor: target.map(str::to_owned),
        parameters: parameters.as_object().cloned().unwrap_or_default(),
        ..PostOptions::default()
    };
    // Only `a` runs: `b` hands the input on, and the skipped join merges the two parts by id
    // instead of repeating the input doc.
    let docs = within(
        30,
        f.post_with("/foo", input(), &post(Some("a"), json!({}))),
    )
    .await
    .unwrap();
    let mut texts = docs.texts();
    texts.sort();
    assert_eq!(texts, ["a saw {}", "input"]);
    // Everything runs: join's `uses_before` sees `join__k` as `k`; a and b do not see it.
    let docs = within(
        30,
        f.post_with("/foo", input(), &post(None, json!({"join__k": 1}))),
    )
    .await
    .unwrap();
    let mut texts = docs.texts();
    texts.sort();
    assert_eq!(
        texts,
        [
            "a saw {}",
            "b saw {}",
            "input",
            "input",
            r#"join/before saw {"k":1}"#
        ]
    );
    f.close();
}

/// An Executor server runs what its gateway sends, `target_executor` or not (a Jina worker
/// ignores the field; Jina's gateway clears it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executor_server_ignores_target_executor() {
    use flotilla::grpc::codec::{request_from_proto, request_to_proto};
    use flotilla::grpc::pb::jina::jina_single_data_request_rpc_client::JinaSingleDataRequestRpcClient;
    let says = factory(|_| {
        Ok(Says {
            who: "worker".into(),
            calls: Arc::default(),
        })
    });
    let running = flotilla::Deployment::new()
        .name("worker")
        .register("Says", says)
        .uses("Says")
        .start()
        .unwrap();
    let server = Server::start(
        Arc::new(running),
        "127.0.0.1:0".parse().unwrap(),
        ServeOptions::new(Role::Executor),
    )
    .await
    .unwrap();
    let mut rpc =
        JinaSingleDataRequestRpcClient::connect(format!("http://{}", server.local_addr()))
            .await
            .unwrap();
    let mut proto = request_to_proto(&Request::new("/foo", DocList::new()));
    proto.header.as_mut().unwrap().target_executor = Some("someone-else".into());
    let back = within(30, rpc.process_single_data(proto)).await.unwrap();
    let back = request_from_proto(back.into_inner()).unwrap();
    assert_eq!(back.docs.texts(), ["worker saw {}"]);
    server.stop().await;
}

/// Replaces the request's parameters (an Executor may: they are its request's).
struct Rewrites;

impl Executor for Rewrites {
    fn requests(r: &mut Requests<Self>) {
        r.default(|_: &mut Rewrites, req: &mut Request, _: &Context| {
            req.parameters = Arc::new(json!({"rewritten": true}).as_object().cloned().unwrap());
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_node_sees_the_parameters_the_client_sent_not_an_executors_edit() {
    let f = Flow::new()
        .register("Rewrites", factory(|_| Ok(Rewrites)))
        .register(
            "Says",
            factory(|_| {
                Ok(Says {
                    who: "after".into(),
                    calls: Arc::default(),
                })
            }),
        )
        .add(Exec::new().name("rewrites").uses("Rewrites"))
        .add(Exec::new().name("after").uses("Says"))
        .start()
        .unwrap();
    assert_eq!(
        post(&f, None, json!({"k": 1})).await,
        [r#"after saw {"k":1}"#]
    );
    f.close();
}
