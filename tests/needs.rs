//! `needs` topologies and reduce (seed 004 "Topology", seed 003 "Merging results").

mod common;

use std::time::Instant;

use common::{appender, nap, within};
use flotilla::actors::executor::factory;
use flotilla::actors::prelude::*;
use flotilla::{Exec, Flow};
use serde_json::json;

fn foo_bar_baz() -> Flow {
    Flow::new()
        .register("Appender", appender())
        .add(
            Exec::new()
                .uses("Appender")
                .uses_with(json!({"who": "foo"}))
                .name("fooExecutor"),
        )
        .add(
            Exec::new()
                .uses("Appender")
                .uses_with(json!({"who": "bar"}))
                .name("barExecutor")
                .needs("fooExecutor"),
        )
        .add(
            Exec::new()
                .uses("Appender")
                .uses_with(json!({"who": "baz"}))
                .name("bazExecutor")
                .needs("fooExecutor"),
        )
        .add(Exec::new().needs(["barExecutor", "bazExecutor"]))
}

/// Seed 004: `['foo was here and got 0 document', 'bar was here and got 1 document', 'baz was
/// here and got 1 document']`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foo_bar_baz_are_reduced_into_the_seeds_answer() {
    let f = foo_bar_baz().start().unwrap();
    for _ in 0..20 {
        let docs = within(30, f.post("/search", DocList::new())).await.unwrap();
        assert_eq!(
            docs.texts(),
            vec![
                "foo was here and got 0 document",
                "bar was here and got 1 document",
                "baz was here and got 1 document"
            ]
        );
    }
    f.close();
}

#[test]
fn the_default_predecessor_is_the_previous_executor_and_needs_all_joins_orphans() {
    let f = Flow::new()
        .add(Exec::new().name("p1").needs("gateway"))
        .add(Exec::new().name("p2").needs("gateway"))
        .add(Exec::new().name("p3").needs("gateway"))
        .needs_all(Exec::new().name("r1"))
        .add(Exec::new().name("after"));
    let g = f.graph().unwrap();
    let names: Vec<&str> = g.nodes.iter().map(|n| &*n.deployment.name).collect();
    assert_eq!(names, ["p1", "p2", "p3", "r1", "after"]);
    use flotilla::actors::graph::Source::*;
    assert_eq!(g.nodes[3].needs, vec![Node(0), Node(1), Node(2)]);
    assert_eq!(g.nodes[4].needs, vec![Node(3)]);
    assert_eq!(g.outputs, vec![4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_branches_run_at_the_same_time() {
    let f = Flow::new()
        .register("Nap", nap())
        .add(
            Exec::new()
                .name("p1")
                .uses("Nap")
                .uses_with(json!({"ms": 300}))
                .needs("gateway"),
        )
        .add(
            Exec::new()
                .name("p2")
                .uses("Nap")
                .uses_with(json!({"ms": 300}))
                .needs("gateway"),
        )
        .add(
            Exec::new()
                .name("p3")
                .uses("Nap")
                .uses_with(json!({"ms": 300}))
                .needs("gateway"),
        )
        .needs(["p1", "p2", "p3"], Exec::new().name("r1"))
        .start()
        .unwrap();
    let t = Instant::now();
    let docs = within(30, f.post("/", Doc::with_id("d"))).await.unwrap();
    let wall = t.elapsed();
    // One doc, with each branch's work merged into it.
    assert_eq!(docs.len(), 1);
    for p in ["p1", "p2", "p3"] {
        assert_eq!(
            docs[0].tag(p),
            Some(&Value::Bool(true)),
            "{p}'s tag was reduced in"
        );
    }
    // Three 300 ms branches one after the other would take 900 ms.
    assert!(wall.as_millis() < 700, "branches did not overlap: {wall:?}");
    f.close();
}

/// Seed 003: a custom reducer given as `uses_before` gets the docs matrix, one DocList per
/// predecessor.
struct ChainReducer;

impl Executor for ChainReducer {
    fn requests(r: &mut Requests<Self>) {
        r.default(|_: &mut ChainReducer, req: &mut Request, _: &Context| {
            assert_eq!(req.docs_matrix.len(), 3, "one part per predecessor");
            let mut out = DocList::new();
            for part in &req.docs_matrix {
                out.extend(
                    part.docs
                        .iter()
                        .cloned()
                        .map(|d| d.with_tag("from", part.from.to_string())),
                );
            }
            out
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uses_before_gets_the_docs_matrix_and_disable_reduce_keeps_every_part() {
    let base = || {
        Flow::new()
            .add(Exec::new().name("p1").needs("gateway"))
            .add(Exec::new().name("p2").uses("Echo").needs("gateway"))
            .add(Exec::new().name("p3").uses("Echo").needs("gateway"))
    };
    // uses_before: the custom reducer chains the three parts (three copies of the doc).
    let f = base()
        .needs(
            ["p1", "p2", "p3"],
            Exec::new()
                .name("r1")
                .uses_before_factory("ChainReducer", factory(|_| Ok(ChainReducer))),
        )
        .start()
        .unwrap();
    let docs = within(30, f.post("/", Doc::with_id("d"))).await.unwrap();
    assert_eq!(docs.ids(), vec!["d", "d", "d"]);
    let froms: Vec<_> = docs
        .iter()
        .map(|d| d.tag("from").and_then(Value::as_str).unwrap().to_owned())
        .collect();
    // p1 binds nothing, so its part is named by the gateway; the Echo parts by their replica.
    assert_eq!(froms, ["gateway", "p2/rep-0", "p3/rep-0"]);
    f.close();

    // Default reduce merges the three copies into one doc.
    let f = base()
        .needs(["p1", "p2", "p3"], Exec::new().name("r1"))
        .start()
        .unwrap();
    assert_eq!(
        within(30, f.post("/", Doc::with_id("d")))
            .await
            .unwrap()
            .len(),
        1
    );
    f.close();

    // disable_reduce: the joiner gets every part (docs concatenated, duplicate ids kept, and
    // the docs matrix with one part per predecessor).
    let f = base()
        .needs(
            ["p1", "p2", "p3"],
            Exec::new()
                .name("r1")
                .uses_factory("Parts", factory(|_| Ok(Parts)))
                .disable_reduce(true),
        )
        .start()
        .unwrap();
    let docs = within(30, f.post("/", Doc::with_id("d"))).await.unwrap();
    assert_eq!(docs.ids(), vec!["d", "d", "d"]);
    assert!(docs.iter().all(|d| d.tag("parts") == Some(&Value::Int(3))));
    f.close();
}

/// Tags each doc with the number of parts the request brought.
struct Parts;

impl Executor for Parts {
    fn requests(r: &mut Requests<Self>) {
        r.default(|_: &mut Parts, req: &mut Request, _: &Context| {
            let n = req.docs_matrix.len() as i64;
            for d in req.docs.iter_mut() {
                d.tags_mut().insert("parts".into(), Value::Int(n));
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_orphans_are_reduced_into_the_answer() {
    let f = Flow::new()
        .register("Nap", nap())
        .add(
            Exec::new()
                .name("a")
                .uses("Nap")
                .uses_with(json!({"ms": 1}))
                .needs("gateway"),
        )
        .add(
            Exec::new()
                .name("b")
                .uses("Nap")
                .uses_with(json!({"ms": 1}))
                .needs("gateway"),
        )
        .start()
        .unwrap();
    assert_eq!(f.graph().outputs.len(), 2);
    let docs = within(30, f.post("/", Doc::with_id("d"))).await.unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].tag("a"), Some(&Value::Bool(true)));
    assert_eq!(docs[0].tag("b"), Some(&Value::Bool(true)));
    f.close();
}
