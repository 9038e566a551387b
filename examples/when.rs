//! Seed 004 "Filter by condition": `when` filters in DocArray's query language — a single
//! filter, the same filter from the seed's `flow.yml`, two filters on parallel branches and two
//! in sequence. Each posts `[Document(tags={'key': 5}), Document(tags={'key': 4})]` to `/search`
//! and prints `ret[:, 'tags']`.
//!
//! Jina prints `{'key': 5.0}` because its protobuf tags turn every number into a float; flotilla
//! keeps the integer the client sent, so it prints `{'key': 5}`.
//!
//! Run with `cargo run --example when`.

use flotilla::{Doc, DocList, Exec, Flow, Value};
use serde_json::json;

/// `ret[:, 'tags']` as Python prints it: `[{'key': 5}, {'key': 4}]`.
fn py_tags(docs: &DocList) -> String {
    let py = |v: &Value| match v.untyped() {
        Value::Int(i) => i.to_string(),
        Value::Float(f) => format!("{f:?}"),
        Value::Text(s) => format!("'{s}'"),
        other => format!("{other:?}"),
    };
    let dicts: Vec<String> = docs
        .iter()
        .map(|d| {
            let items: Vec<String> = d
                .tags()
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("'{k}': {}", py(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        })
        .collect();
    format!("[{}]", dicts.join(", "))
}

/// Starts the Flow, posts the seed's two docs to `/search` and prints the tags that come back.
async fn run(name: &str, f: Flow) -> Result<String, flotilla::Error> {
    let f = f.start()?;
    let inputs = DocList::from(vec![
        Doc::new().with_tag("key", 5),
        Doc::new().with_tag("key", 4),
    ]);
    let ret = f.post("/search", inputs).await?;
    f.close();
    let tags = py_tags(&ret);
    println!("{name}:\n{tags}");
    Ok(tags)
}

#[tokio::main]
async fn main() -> Result<(), flotilla::Error> {
    let key_is = |k: i64| json!({"tags__key": {"$eq": k}});

    // f = Flow().add().add(when={'tags__key': {'$eq': 5}})
    let f = Flow::new()
        .add(Exec::new())
        .add(Exec::new().when(key_is(5)));
    assert_eq!(run("single filter", f).await?, "[{'key': 5}]");

    // f = Flow.load_config('flow.yml')
    let f = Flow::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/yaml/when_flow.yml"
    ))?;
    assert_eq!(run("flow.yml", f).await?, "[{'key': 5}]");

    //                                   exec1
    //                                 /      \
    // Flow topology: Gateway --> first        join --> Gateway
    //                                 \      /
    //                                  exec2
    let f = Flow::new()
        .add(Exec::new().name("first"))
        .add(Exec::new().when(key_is(5)).needs("first").name("exec1"))
        .add(Exec::new().when(key_is(4)).needs("first").name("exec2"))
        .needs_all(Exec::new().name("join"));
    assert_eq!(
        run("parallel filters", f).await?,
        "[{'key': 5}, {'key': 4}]"
    );

    // Flow topology: Gateway --> first --> exec1 --> exec2 --> Gateway
    let f = Flow::new()
        .add(Exec::new().name("first"))
        .add(Exec::new().when(key_is(5)).name("exec1").needs("first"))
        .add(Exec::new().when(key_is(4)).needs("exec1").name("exec2"));
    assert_eq!(run("sequential filters", f).await?, "[]");
    Ok(())
}
