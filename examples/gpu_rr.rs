//! Seed 001/002 "Replicate on multiple GPUs": `CUDA_VISIBLE_DEVICES=RR…` gives each replica its
//! own device, round robin — the seed's four tables (`RR` over three GPUs, `RR0:2`, `RR1,3`, four
//! GPU UUIDs) for five replicas, then "GPU replicas in a Deployment / in a Flow" started as
//! `CUDA_VISIBLE_DEVICES=RR` on a machine with three GPUs.
//!
//! No GPU is needed: `CompileEnv` stands in for the process's environment and device count.
//!
//! Run with `cargo run --example gpu_rr`.

use std::sync::{Arc, Mutex};

use flotilla::config::CompileEnv;
use flotilla::{Context, Deployment, Executor, Flow, Request, Requests, factory};

const UUIDS: [&str; 4] = [
    "GPU-0aaaaaaa-74d2-7297-d557-12771b6a79d5",
    "GPU-0bbbbbbb-74d2-7297-d557-12771b6a79d5",
    "GPU-0ccccccc-74d2-7297-d557-12771b6a79d5",
    "GPU-0ddddddd-74d2-7297-d557-12771b6a79d5",
];

/// `CUDA_VISIBLE_DEVICES=<spec>` in a process that sees `devices` GPUs.
fn env(spec: &str, devices: usize) -> CompileEnv {
    CompileEnv {
        cuda_visible_devices: Some(spec.to_owned()),
        device_count: Some(devices),
    }
}

/// The device each replica of shard 0 of the first Executor gets.
fn devices(g: &flotilla::actors::graph::Graph) -> Vec<String> {
    let contexts = g.nodes[0].deployment.contexts(0);
    contexts
        .iter()
        .map(|c| c.env("CUDA_VISIBLE_DEVICES").unwrap_or("-").to_owned())
        .collect()
}

fn print_table(spec: &str, devices: &[String]) {
    let w = devices.iter().map(String::len).max().unwrap_or(0).max(10);
    println!(
        "CUDA_VISIBLE_DEVICES={spec}\n| {:<w$} | Replica ID |",
        "GPU device"
    );
    println!("|{}|------------|", "-".repeat(w + 2));
    for (replica, device) in devices.iter().enumerate() {
        println!("| {device:<w$} | {replica:<10} |");
    }
}

/// A stand-in for CLIPEncoder: it notes the device its replica was given when it is built, as a
/// Python Executor reads `os.environ['CUDA_VISIBLE_DEVICES']` in its `__init__`.
struct Encoder;

impl Executor for Encoder {
    fn requests(r: &mut Requests<Self>) {
        r.default(|_: &mut Encoder, _: &mut Request, _: &Context| {});
    }
}

#[tokio::main]
async fn main() -> Result<(), flotilla::Error> {
    let uuid_spec = format!("RR{}", UUIDS.join(","));
    let tables: [(&str, usize, Vec<&str>); 4] = [
        ("RR", 3, vec!["0", "1", "2", "0", "1"]),
        ("RR0:2", 3, vec!["0", "1", "0", "1", "0"]),
        ("RR1,3", 4, vec!["1", "3", "1", "3", "1"]),
        (
            uuid_spec.as_str(),
            4,
            vec![UUIDS[0], UUIDS[1], UUIDS[2], UUIDS[3], UUIDS[0]],
        ),
    ];
    for (spec, count, want) in tables {
        let g = Deployment::new()
            .replicas(5)
            .compile_env(env(spec, count))
            .graph()?;
        print_table(spec, &devices(&g));
        assert_eq!(devices(&g), want);
    }

    // dep = Deployment(uses='jinaai://jina-ai/CLIPEncoder', replicas=5), run as
    // `CUDA_VISIBLE_DEVICES=RR python deployment.py` with three GPUs.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let encoder = factory(move |ctx: &Context| {
        let device = ctx.env("CUDA_VISIBLE_DEVICES").unwrap_or("-").to_owned();
        s.lock().expect("not poisoned").push((ctx.replica, device));
        Ok(Encoder)
    });
    let dep = Deployment::new()
        .name("clip")
        .uses_factory("CLIPEncoder", encoder)
        .replicas(5);
    let dep = dep.compile_env(env("RR", 3)).start()?;
    dep.close();
    let mut seen = seen.lock().expect("not poisoned").clone();
    seen.sort();
    for (replica, device) in &seen {
        println!("clip/rep-{replica} started with CUDA_VISIBLE_DEVICES={device}");
    }
    let started: Vec<&str> = seen.iter().map(|(_, d)| d.as_str()).collect();
    assert_eq!(started, ["0", "1", "2", "0", "1"]);

    // The YAML tabs: `CUDA_VISIBLE_DEVICES=RR flotilla deployment|flow --uses ….yml`.
    let yaml = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/yaml");
    let dep = Deployment::load(format!("{yaml}/gpu_deployment.yml"))?.compile_env(env("RR", 3));
    let flow = Flow::load(format!("{yaml}/gpu_flow.yml"))?.compile_env(env("RR", 3));
    for (file, g) in [
        ("gpu_deployment.yml", dep.graph()?),
        ("gpu_flow.yml", flow.graph()?),
    ] {
        println!("{file}: {}", devices(&g).join(", "));
        assert_eq!(devices(&g), ["0", "1", "2", "0", "1"]);
    }
    Ok(())
}
