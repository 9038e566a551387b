//! Dynamic batching (Jina's `@dynamic_batching(preferred_batch_size=8)`): an encoder whose
//! handler costs the same for one doc as for eight (a model on an accelerator, say) serves
//! requests that queue behind it in batches. Each request still gets its own docs back.
//!
//! 32 requests of one doc are sent at once to one replica: the replica serves whatever has
//! queued when it takes a request, up to 8 docs a call, so 32 requests take 4 or 5 calls here (the
//! first may be served alone if it reached an idle replica before the others were queued:
//! flotilla never holds a request back waiting for company).
//!
//! Run with `cargo run --example dynamic_batching`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flotilla::{
    Context, Deployment, Doc, DynamicBatching, Executor, PostOptions, Request, Requests, Value,
    factory,
};

/// Sleeps 20 ms per call, whatever the number of docs, and tags each doc with the size of the
/// call that served it.
struct Encoder {
    calls: Arc<Mutex<Vec<usize>>>,
}

impl Executor for Encoder {
    fn requests(r: &mut Requests<Self>) {
        r.on("/encode", Encoder::encode)
            .dynamic_batching(DynamicBatching::new(8));
    }
}

impl Encoder {
    fn encode(&mut self, req: &mut Request, _ctx: &Context) {
        std::thread::sleep(Duration::from_millis(20));
        let n = req.docs.len();
        self.calls.lock().expect("the log").push(n);
        for d in req.docs.iter_mut() {
            d.tags_mut().insert("batch".into(), Value::from(n as i64));
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let log = calls.clone();
    let dep = Deployment::new()
        .name("encoder")
        .uses_factory(
            "Encoder",
            factory(move |_| Ok(Encoder { calls: log.clone() })),
        )
        .start()?;

    let docs: Vec<Doc> = (0..32).map(|i| Doc::with_id(format!("doc-{i}"))).collect();
    let one_per_request = PostOptions {
        request_size: 1,
        ..PostOptions::default()
    };
    let start = Instant::now();
    let out = dep.post_with("/encode", docs, &one_per_request).await?;
    let took = start.elapsed();

    // Every doc came back, in order, to the request that sent it.
    assert_eq!(out.len(), 32);
    for (i, d) in out.iter().enumerate() {
        assert_eq!(d.id(), format!("doc-{i}"));
    }
    let sizes = calls.lock().expect("the log").clone();
    assert_eq!(sizes.iter().sum::<usize>(), 32);
    assert!(sizes.iter().all(|&n| n <= 8), "{sizes:?}");
    assert!(sizes.len() < 32, "queued requests were batched: {sizes:?}");
    println!(
        "32 requests of 1 doc served in {} handler calls",
        sizes.len()
    );
    println!("call sizes: {sizes:?}");
    println!(
        "took {:.0} ms (one call per request would take at least {} ms)",
        took.as_secs_f64() * 1e3,
        32 * 20
    );
    dep.close();
    Ok(())
}
