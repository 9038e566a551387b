//! Seed 003 "Partition data by using Shards", "Merging search results" and "Combining Replicas &
//! Shards": `index_flow` (shards=3, polling='any'), `search_flow` (shards=3, polling='all'),
//! `uses_after='MatchMerger'`, and `shards=2, replicas=3` (2 x 3 = 6 workers).
//!
//! Run with `cargo run --example shards`.

use flotilla::actors::graph::PollingKind::{All, Any};
use flotilla::{
    Context, Doc, DocList, Exec, Executor, Flow, PostOptions, Request, Requests, Value, factory,
};
use serde_json::json;

/// A tiny index: `/index` keeps the docs, `/search` matches every kept doc against each query,
/// scored by how close their `x` tags are and tagged with the shard that found it.
struct Indexer {
    docs: Vec<Doc>,
}

impl Executor for Indexer {
    fn requests(r: &mut Requests<Self>) {
        r.on(
            "/index",
            |s: &mut Indexer, req: &mut Request, _: &Context| {
                s.docs.extend(req.docs.iter().cloned())
            },
        );
        r.on(
            "/search",
            |s: &mut Indexer, req: &mut Request, ctx: &Context| {
                for q in req.docs.iter_mut() {
                    let x = |d: &Doc| d.tag("x").and_then(Value::as_f64).unwrap_or(0.0);
                    let qx = x(q);
                    for d in &s.docs {
                        let m =
                            Doc::with_id(d.id()).with_score("closeness", 0.0 - (x(d) - qx).abs());
                        q.matches_mut().push(m.with_tag("shard", ctx.shard as i64));
                    }
                }
            },
        );
    }
}

fn sharded(polling: &str) -> Exec {
    let indexer = factory(|_| Ok(Indexer { docs: Vec::new() }));
    let exec = Exec::new().name("ExecutorWithShards").shards(3);
    exec.uses_factory("Indexer", indexer).polling(polling)
}

/// Indexes nine docs one per request (ANY: round robin over the shards), then searches one query
/// for its five best matches.
async fn index_and_search(f: Flow) -> Result<DocList, flotilla::Error> {
    let f = f.start()?;
    let docs: DocList = (0..9)
        .map(|i| Doc::with_id(format!("d{i}")).with_tag("x", i))
        .collect();
    let one = PostOptions {
        request_size: 1,
        ..PostOptions::default()
    };
    f.post_with("/index", docs, &one).await?;
    let parameters = json!({"top_k": 5}).as_object().cloned().unwrap_or_default();
    let opts = PostOptions {
        parameters,
        ..PostOptions::default()
    };
    let found = f
        .post_with("/search", Doc::with_id("q").with_tag("x", 4), &opts)
        .await;
    f.close();
    found
}

#[tokio::main]
async fn main() -> Result<(), flotilla::Error> {
    // index_flow = Flow().add(name='ExecutorWithShards', shards=3, polling='any')
    // search_flow = Flow().add(name='ExecutorWithShards', shards=3, polling='all')
    // Jina 3 keeps /index ANY and /search ALL whatever `polling` says; it sets the others.
    for (name, polling, want) in [("index_flow", "any", Any), ("search_flow", "all", All)] {
        let g = Flow::new().add(sharded(polling)).graph()?;
        let kinds = ["/index", "/search", "/custom"].map(|e| g.nodes[0].deployment.polling.of(e));
        println!("{name}: /index, /search, /custom polled {kinds:?}");
        assert_eq!(kinds, [Any, All, want]);
    }

    // The search: every shard answers; the default reduce concatenates their matches, unsorted.
    let found = index_and_search(Flow::new().add(sharded("all"))).await?;
    let matches = found[0].matches().expect("matches");
    let mut shards: Vec<i64> = matches
        .iter()
        .filter_map(|m| m.tag("shard")?.as_i64())
        .collect();
    shards.sort();
    println!(
        "search_flow: {} matches, from shards {shards:?}",
        matches.len()
    );
    assert_eq!(shards, [0, 0, 0, 1, 1, 1, 2, 2, 2]);

    // uses_after='MatchMerger': the global top_k, best first.
    let found = index_and_search(Flow::new().add(sharded("all").uses_after("MatchMerger"))).await?;
    let top = found[0].matches().expect("matches");
    let scores: Vec<f64> = top.iter().filter_map(|m| m.score("closeness")).collect();
    println!(
        "with uses_after='MatchMerger': {:?} scored {scores:?}",
        top.ids()
    );
    assert_eq!(
        (top[0].id(), scores),
        ("d4", vec![0.0, -1.0, -1.0, -2.0, -2.0])
    );

    // f = Flow().add(name='shards_with_replicas', shards=2, replicas=3)
    let exec = Exec::new().name("shards_with_replicas").uses("Echo");
    let f = Flow::new().add(exec.shards(2).replicas(3)).start()?;
    let shards = f.kernel().routers()[0].shards();
    let running: Vec<usize> = shards
        .iter()
        .map(|s| s.dispatch().running_replicas())
        .collect();
    let workers: usize = running.iter().sum();
    println!("shards_with_replicas: replicas per shard {running:?}, {workers} workers");
    assert_eq!(workers, 6);
    f.close();

    // The same topology from YAML (MatchMerger after three ALL-polled shards, then 2 x 3).
    let yaml = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/yaml/shards_flow.yml");
    print!(
        "{}",
        flotilla::topology::describe(&Flow::load(yaml)?.graph()?)
    );
    Ok(())
}
