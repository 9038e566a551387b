//! Seed 003 "Define predecessors via needs" / "Merging results" and seed 004 "Topology":
//! parallel branches with `.needs([...])` and `.needs_all()`, the default reduce, a custom
//! reducer as `uses_before`, foo/bar/baz, and `disable_reduce=True` with a custom merge.
//!
//! Run with `cargo run --example needs`.

use std::collections::HashSet;

use flotilla::{
    Context, Doc, DocList, Exec, Executor, Flow, Request, Requests, factory, factory_with,
};
use serde_json::json;

/// The seed's `CustomReducerExecutor`: `DocumentArray(itertools.chain.from_iterable(docs_matrix))`.
/// With `dedup` (the `disable_reduce` merge), a doc already seen in an earlier part is dropped.
struct Chain {
    dedup: bool,
}

impl Executor for Chain {
    fn requests(r: &mut Requests<Self>) {
        r.default(|c: &mut Chain, req: &mut Request, _: &Context| {
            let mut seen = HashSet::new();
            let docs = req.docs_matrix.iter().flat_map(|part| part.docs.iter());
            let docs = docs.filter(|d| !c.dedup || seen.insert(d.id().to_owned()));
            docs.cloned().collect::<DocList>()
        });
    }
}

/// Seed 004's FooExecutor, BarExecutor and BazExecutor in one (`uses_with: {who: foo}`); here
/// p1, p2 and p3 too.
#[derive(serde::Deserialize)]
struct Appender {
    who: String,
}

impl Executor for Appender {
    fn requests(r: &mut Requests<Self>) {
        r.default_async(Appender::append);
    }
}

impl Appender {
    async fn append(&mut self, req: &mut Request, _ctx: &Context) {
        let text = format!("{} was here and got {} document", self.who, req.docs.len());
        req.docs.push(Doc::text_doc(text));
    }
}

/// A list of strings as Python prints it: `['a', 'b']`.
fn py(texts: &[&str]) -> String {
    let items: Vec<String> = texts.iter().map(|t| format!("'{t}'")).collect();
    format!("[{}]", items.join(", "))
}

fn who(w: &str) -> Exec {
    let appender = factory_with(|a: Appender, _: &Context| Ok(a));
    let exec = Exec::new().uses_factory("Appender", appender);
    exec.uses_with(json!({ "who": w })).name(w)
}

fn p1_p2_p3() -> Flow {
    Flow::new()
        .add(who("p1").needs("gateway"))
        .add(who("p2").needs("gateway"))
        .add(who("p3").needs("gateway"))
}

fn foo_bar_baz(last: Exec) -> Flow {
    Flow::new()
        .add(who("foo").name("fooExecutor"))
        .add(who("bar").name("barExecutor").needs("fooExecutor"))
        .add(who("baz").name("bazExecutor").needs("fooExecutor"))
        .add(last.needs(["barExecutor", "bazExecutor"]))
}

/// Starts the Flow, posts `docs` to `endpoint`, closes the Flow.
async fn post(
    f: Flow,
    endpoint: &str,
    docs: impl Into<DocList>,
) -> Result<DocList, flotilla::Error> {
    let f = f.start()?;
    let out = f.post(endpoint, docs).await;
    f.close();
    out
}

#[tokio::main]
async fn main() -> Result<(), flotilla::Error> {
    // .needs(['p1', 'p2', 'p3'], name='r1') and .needs_all() build the same topology.
    let needs = p1_p2_p3().needs(["p1", "p2", "p3"], Exec::new().name("r1"));
    let needs_all = p1_p2_p3().needs_all(Exec::new().name("r1"));
    let text = flotilla::topology::describe(&needs.graph()?);
    print!("{text}");
    assert_eq!(text, flotilla::topology::describe(&needs_all.graph()?));
    assert!(text.contains("r1: uses BaseExecutor, needs p1 + p2 + p3"));
    let p = |i| format!("p{i} was here and got 1 document");

    // The default reduce: the three copies of `hello` become one, next to each branch's work.
    let out = post(needs_all, "/", Doc::text_doc("hello")).await?;
    println!("reduced by default: {}", py(&out.texts()));
    assert_eq!(out.texts(), ["hello", &p(1), &p(2), &p(3)]);

    // uses_before=CustomReducerExecutor: the three parts chained, `hello` three times.
    let reducer = factory(|_| Ok(Chain { dedup: false }));
    let r1 = Exec::new()
        .name("r1")
        .uses_before_factory("CustomReducerExecutor", reducer);
    let f = p1_p2_p3().needs(["p1", "p2", "p3"], r1);
    let out = post(f, "/", Doc::text_doc("hello")).await?;
    println!("reduced by CustomReducerExecutor: {}", py(&out.texts()));
    assert_eq!(
        out.texts(),
        ["hello", &p(1), "hello", &p(2), "hello", &p(3)]
    );

    // Seed 004: foo feeds bar and baz in parallel; the last Executor reduces their results.
    let want = "['foo was here and got 0 document', 'bar was here and got 1 document', 'baz was here and got 1 document']";
    let out = post(foo_bar_baz(Exec::new()), "/search", DocList::new()).await?;
    println!("{}", py(&out.texts()));
    assert_eq!(py(&out.texts()), want);

    // disable_reduce=True: CustomMergeExecutor gets both parts and merges them itself.
    let merge = factory(|_| Ok(Chain { dedup: true }));
    let last = Exec::new()
        .uses_factory("CustomMergeExecutor", merge)
        .disable_reduce(true);
    let out = post(foo_bar_baz(last), "/search", DocList::new()).await?;
    println!("merged by CustomMergeExecutor: {}", py(&out.texts()));
    assert_eq!(py(&out.texts()), want);
    Ok(())
}
