//! Seed "Replicate Executors in a Deployment" / "Replicate Executors in a Flow" (Scale Out,
//! seeds 000-003): `Deployment(name='slow_encoder', replicas=3)` and
//! `Flow().add(name='slow_encoder', replicas=3).add(name='fast_indexer')`.
//!
//! Every request goes to exactly one replica, the idle one first: six docs posted one per request
//! keep all three `slow_encoder` replicas busy, while the single `fast_indexer` sees them all.
//!
//! Run with `cargo run --example replicas`.

use std::collections::BTreeSet;
use std::time::Duration;

use flotilla::{
    Context, Deployment, Doc, DocList, Exec, Executor, Flow, PostOptions, Request, Requests, Value,
    factory,
};

/// Works for a while, then tags each doc with the replica that served it, under the
/// Deployment's name (`slow_encoder: slow_encoder/rep-1`).
struct Encoder;

impl Executor for Encoder {
    fn requests(r: &mut Requests<Self>) {
        r.default(Encoder::encode);
    }
}

impl Encoder {
    fn encode(&mut self, req: &mut Request, ctx: &Context) {
        if ctx.deployment.as_ref() == "slow_encoder" {
            std::thread::sleep(Duration::from_millis(100));
        }
        for d in req.docs.iter_mut() {
            let who = Value::from(ctx.runtime_name.to_string());
            d.tags_mut().insert(ctx.deployment.to_string(), who);
        }
    }
}

fn served_by<'a>(d: &'a Doc, deployment: &str) -> &'a str {
    d.tag(deployment).and_then(Value::as_str).unwrap_or("?")
}

fn docs() -> DocList {
    (0..6).map(|i| Doc::text_doc(format!("doc {i}"))).collect()
}

/// One doc per request, so that the six docs are six concurrent requests.
fn one_per_request() -> PostOptions {
    PostOptions {
        request_size: 1,
        ..PostOptions::default()
    }
}

const YAML: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/yaml");

#[tokio::main]
async fn main() -> Result<(), flotilla::Error> {
    // dep = Deployment(name='slow_encoder', replicas=3)
    let dep = Deployment::new()
        .name("slow_encoder")
        .uses_factory("Encoder", factory(|_| Ok(Encoder)))
        .replicas(3)
        .start()?;
    println!("Deployment(name='slow_encoder', replicas=3):");
    let out = dep.post_with("/encode", docs(), &one_per_request()).await?;
    let mut used = BTreeSet::new();
    for d in out.iter() {
        println!(
            "  {} served by {}",
            d.text().unwrap_or(""),
            served_by(d, "slow_encoder")
        );
        used.insert(served_by(d, "slow_encoder").to_owned());
    }
    dep.close();
    assert_eq!(used.len(), 3, "every replica takes requests: {used:?}");

    // f = Flow().add(name='slow_encoder', replicas=3).add(name='fast_indexer')
    let f = Flow::new()
        .register("Encoder", factory(|_| Ok(Encoder)))
        .add(Exec::new().name("slow_encoder").uses("Encoder").replicas(3))
        .add(Exec::new().name("fast_indexer").uses("Encoder"))
        .start()?;
    println!("Flow().add(name='slow_encoder', replicas=3).add(name='fast_indexer'):");
    let out = f.post_with("/index", docs(), &one_per_request()).await?;
    let mut used = BTreeSet::new();
    for d in out.iter() {
        let (enc, idx) = (served_by(d, "slow_encoder"), served_by(d, "fast_indexer"));
        println!("  {}: {enc} -> {idx}", d.text().unwrap_or(""));
        assert_eq!(idx, "fast_indexer/rep-0");
        used.insert(enc.to_owned());
    }
    f.close();
    assert_eq!(used.len(), 3, "every replica takes requests: {used:?}");

    // The YAML tabs: five replicas of `Echo` (standing in for jinaai://jina-ai/CLIPEncoder).
    let dep = Deployment::load(format!("{YAML}/replicas_deployment.yml"))?.graph()?;
    let flow = Flow::load(format!("{YAML}/replicas_flow.yml"))?.graph()?;
    for (file, g) in [
        ("replicas_deployment.yml", dep),
        ("replicas_flow.yml", flow),
    ] {
        let d = &g.nodes[0].deployment;
        println!(
            "{file}: {} uses {} with {} replicas",
            d.name, d.executor.uses, d.replicas
        );
        assert_eq!(d.replicas, 5);
    }
    Ok(())
}
