//! `when` filters (seed 004 "Filter by condition").

mod common;

use std::sync::{Arc, Mutex};

use common::{tags_of, within};
use flotilla::actors::executor::factory;
use flotilla::actors::prelude::*;
use flotilla::config::yaml;
use flotilla::{Exec, Flow};
use serde_json::json;

fn inputs() -> DocList {
    DocList::from(vec![
        Doc::new().with_tag("key", 5),
        Doc::new().with_tag("key", 4),
    ])
}

async fn run(f: Flow) -> Vec<String> {
    let running = f.start().unwrap();
    let out = within(30, running.post("/search", inputs())).await.unwrap();
    running.close();
    tags_of(&out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_keeps_the_docs_that_match() {
    let f = Flow::new()
        .add(Exec::new())
        .add(Exec::new().when(json!({"tags__key": {"$eq": 5}})));
    assert_eq!(run(f).await, vec![r#"{"key": 5}"#]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_filters_keep_both_docs() {
    let f = Flow::new()
        .add(Exec::new().name("first"))
        .add(
            Exec::new()
                .when(json!({"tags__key": {"$eq": 5}}))
                .needs("first")
                .name("exec1"),
        )
        .add(
            Exec::new()
                .when(json!({"tags__key": {"$eq": 4}}))
                .needs("first")
                .name("exec2"),
        )
        .needs_all(Exec::new().name("join"));
    assert_eq!(run(f).await, vec![r#"{"key": 5}"#, r#"{"key": 4}"#]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_filters_keep_none() {
    let f = Flow::new()
        .add(Exec::new().name("first"))
        .add(
            Exec::new()
                .when(json!({"tags__key": {"$eq": 5}}))
                .name("exec1")
                .needs("first"),
        )
        .add(
            Exec::new()
                .when(json!({"tags__key": {"$eq": 4}}))
                .needs("exec1")
                .name("exec2"),
        );
    assert_eq!(run(f).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_yaml_form_gives_the_same_result() {
    let text = "jtype: Flow\nexecutors:\n  - name: executor\n    when:\n        tags__key:\n            $eq: 5\n";
    let f = yaml::parse(text, Some("flow.yml"))
        .ok()
        .unwrap()
        .into_flow()
        .unwrap();
    assert_eq!(run(f).await, vec![r#"{"key": 5}"#]);
}

/// Records how many docs each request brought.
struct Counter(Arc<Mutex<Vec<usize>>>);

impl Executor for Counter {
    fn requests(r: &mut Requests<Self>) {
        r.default(|c: &mut Counter, req: &mut Request, _: &Context| {
            c.0.lock().unwrap().push(req.docs.len())
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executor_whose_docs_were_all_filtered_still_gets_a_request() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let f = Flow::new().add(
        Exec::new()
            .uses_factory("Counter", factory(move |_| Ok(Counter(s.clone()))))
            .when(json!({"tags__key": {"$eq": 99}})),
    );
    assert_eq!(run(f).await, Vec::<String>::new());
    assert_eq!(*seen.lock().unwrap(), vec![0]);
}
