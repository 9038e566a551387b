//! Seed 001/002 "Customize polling behaviors" and "Understand behaviors of replicas and shards
//! with polling": the per-endpoint polling map `{'/custom': 'ALL', '/search': 'ANY', '*': 'ANY'}`
//! for a Deployment and a Flow, and the seed's table of what `MyExec` prints for replicas=2 or
//! shards=2 with polling ALL or ANY.
//!
//! Run with `cargo run --example polling`.

use std::sync::{Arc, Mutex};

use flotilla::{Context, Deployment, Doc, Exec, Executor, Flow, Request, Requests, factory};

const POLLING: [(&str, &str); 3] = [("/custom", "ALL"), ("/search", "ANY"), ("*", "ANY")];
const ENDPOINTS: [&str; 4] = ["/index", "/search", "/custom", "/other"];

/// A list of strings as Python prints it: `['a', 'b']`.
fn py(texts: &[&str]) -> String {
    let items: Vec<String> = texts.iter().map(|t| format!("'{t}'")).collect();
    format!("[{}]", items.join(", "))
}

/// The seed's `MyExec`: prints `inside: {docs.text}` and returns nothing (keeps the docs). It
/// also keeps what it printed, for the table.
struct MyExec {
    printed: Arc<Mutex<Vec<String>>>,
}

impl Executor for MyExec {
    fn requests(r: &mut Requests<Self>) {
        r.default(|e: &mut MyExec, req: &mut Request, _: &Context| {
            let line = format!("inside: {}", py(&req.docs.texts()));
            println!("{line}");
            e.printed.lock().expect("not poisoned").push(line);
        });
    }
}

/// One cell of the seed's table: what was printed inside, then `return: {r.text}`.
async fn cell(as_flow: bool, scale: &str, polling: &str) -> Result<String, flotilla::Error> {
    let printed = Arc::new(Mutex::new(Vec::new()));
    let p = printed.clone();
    let my_exec = factory(move |_| Ok(MyExec { printed: p.clone() }));
    let exec = Exec::new().uses_factory("MyExec", my_exec).polling(polling);
    let exec = if scale == "shards" {
        exec.shards(2)
    } else {
        exec.replicas(2)
    };
    let running = if as_flow {
        println!("Flow().add(uses=MyExec, {scale}=2, polling='{polling}').needs_all()");
        Flow::new().add(exec).needs_all(Exec::new()).start()?
    } else {
        println!("Deployment(uses=MyExec, {scale}=2, polling='{polling}')");
        Deployment::of(exec).start()?
    };
    let r = running.post("/", Doc::text_doc("hello")).await?;
    running.close();
    let ret = format!("return: {}", py(&r.texts()));
    println!("{ret}");
    let mut cell = printed.lock().expect("not poisoned").clone();
    cell.push(ret);
    Ok(cell.join(" "))
}

#[tokio::main]
async fn main() -> Result<(), flotilla::Error> {
    // Deployment(name='ExecutorWithShards', shards=3, polling={...}), the same in a Flow, and
    // the same from examples/yaml/polling_flow.yml.
    let exec = Exec::new()
        .name("ExecutorWithShards")
        .shards(3)
        .polling_map(POLLING);
    let yaml = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/yaml/polling_flow.yml"
    );
    let graphs = [
        ("Deployment", Deployment::of(exec.clone()).graph()?),
        ("Flow", Flow::new().add(exec).graph()?),
        ("polling_flow.yml", Flow::load(yaml)?.graph()?),
    ];
    for (what, g) in graphs {
        let p = &g.nodes[0].deployment.polling;
        let resolved: Vec<String> = ENDPOINTS
            .iter()
            .map(|e| format!("{e} has polling {}", p.of(e)))
            .collect();
        println!("{what}: {}", resolved.join(", "));
        assert_eq!(
            resolved,
            [
                "/index has polling ANY",
                "/search has polling ANY",
                "/custom has polling ALL",
                "/other has polling ANY"
            ]
        );
    }

    // The seed's table, for a Deployment and for a Flow.
    let want = [
        "|            | polling='ALL' | polling='ANY' |",
        "| replicas=2 | inside: ['hello'] return: ['hello'] | inside: ['hello'] return: ['hello'] |",
        "| shards=2   | inside: ['hello'] inside: ['hello'] return: ['hello'] | inside: ['hello'] return: ['hello'] |",
    ];
    for as_flow in [false, true] {
        let mut table = vec![want[0].to_owned()];
        for scale in ["replicas", "shards"] {
            let all = cell(as_flow, scale, "ALL").await?;
            let any = cell(as_flow, scale, "ANY").await?;
            table.push(format!("| {:<10} | {all} | {any} |", format!("{scale}=2")));
        }
        println!(
            "{}:\n{}",
            if as_flow { "Flow" } else { "Deployment" },
            table.join("\n")
        );
        assert_eq!(table, want);
    }
    Ok(())
}
