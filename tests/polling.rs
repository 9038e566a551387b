//! Shards and polling: the seed's table (seed 001), Jina's defaults, the per-endpoint map.

mod common;

use common::{inside, within};
use flotilla::actors::graph::PollingKind;
use flotilla::{Deployment, Doc, Exec, Flow};

#[derive(Clone, Copy, Debug)]
enum Scale {
    Replicas,
    Shards,
}

/// One cell of the seed's table: (insides printed, texts returned).
async fn cell(as_flow: bool, scale: Scale, polling: &str) -> (Vec<String>, Vec<String>) {
    let (f, prints) = inside();
    let mut exec = Exec::new().uses_factory("MyExec", f).polling(polling);
    exec = match scale {
        Scale::Replicas => exec.replicas(2),
        Scale::Shards => exec.shards(2),
    };
    let running = if as_flow {
        Flow::new()
            .add(exec)
            .needs_all(Exec::new())
            .start()
            .unwrap()
    } else {
        Deployment::of(exec).start().unwrap()
    };
    let r = within(30, running.post("/", Doc::text_doc("hello")))
        .await
        .unwrap();
    running.close();
    let prints = prints.lock().unwrap().clone();
    (prints, r.texts().into_iter().map(str::to_owned).collect())
}

/// | | polling='ALL' | polling='ANY' |
/// | replicas=2 | inside: ['hello'] return: ['hello'] | inside: ['hello'] return: ['hello'] |
/// | shards=2 | inside: ['hello'] inside: ['hello'] return: ['hello'] | inside: ['hello'] return: ['hello'] |
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_polling_table() {
    let one = vec![r#"inside: ["hello"]"#.to_owned()];
    let two = vec![
        r#"inside: ["hello"]"#.to_owned(),
        r#"inside: ["hello"]"#.to_owned(),
    ];
    let hello = vec!["hello".to_owned()];
    for as_flow in [true, false] {
        assert_eq!(
            cell(as_flow, Scale::Replicas, "ALL").await,
            (one.clone(), hello.clone())
        );
        assert_eq!(
            cell(as_flow, Scale::Replicas, "ANY").await,
            (one.clone(), hello.clone())
        );
        assert_eq!(
            cell(as_flow, Scale::Shards, "ALL").await,
            (two.clone(), hello.clone())
        );
        assert_eq!(
            cell(as_flow, Scale::Shards, "ANY").await,
            (one.clone(), hello.clone())
        );
        // Case does not matter.
        assert_eq!(
            cell(as_flow, Scale::Shards, "all").await,
            (two.clone(), hello.clone())
        );
    }
}

#[test]
fn the_seeds_polling_map_resolves_per_endpoint() {
    let d = Deployment::new()
        .name("ExecutorWithShards")
        .shards(3)
        .polling_map([("/custom", "ALL"), ("/search", "ANY"), ("*", "ANY")]);
    let g = d.graph().unwrap();
    let p = &g.nodes[0].deployment.polling;
    assert_eq!(p.of("/index"), PollingKind::Any);
    assert_eq!(p.of("/search"), PollingKind::Any);
    assert_eq!(p.of("/custom"), PollingKind::All);
    assert_eq!(p.of("/anything-else"), PollingKind::Any);
}

async fn insides_for(d: Deployment, endpoint: &str) -> usize {
    let (f, prints) = inside();
    let running = d.uses_factory("MyExec", f).start().unwrap();
    within(30, running.post(endpoint, Doc::text_doc("x")))
        .await
        .unwrap();
    running.close();
    prints.lock().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_reaches_one_or_every_shard_per_endpoint() {
    let map = || {
        Deployment::new().shards(3).polling_map([
            ("/custom", "ALL"),
            ("/search", "ANY"),
            ("*", "ANY"),
        ])
    };
    assert_eq!(insides_for(map(), "/custom").await, 3);
    assert_eq!(insides_for(map(), "/search").await, 1);
    assert_eq!(insides_for(map(), "/index").await, 1);
    assert_eq!(insides_for(map(), "/other").await, 1);
    // Jina 3.x's real defaults: /search ALL and /index ANY whatever the single value says.
    assert_eq!(insides_for(Deployment::new().shards(2), "/search").await, 2);
    assert_eq!(insides_for(Deployment::new().shards(2), "/index").await, 1);
    assert_eq!(
        insides_for(Deployment::new().shards(2).polling("ALL"), "/index").await,
        1
    );
    assert_eq!(
        insides_for(Deployment::new().shards(2).polling("ALL"), "/foo").await,
        2
    );
}
