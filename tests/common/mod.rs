//! Test Executors and helpers shared by the behaviour tests.
#![allow(dead_code)]

pub mod config;
pub mod stateful;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use flotilla::actors::executor::{SharedFactory, factory, factory_with};
use flotilla::actors::prelude::*;

/// Guards a test against a hang (a lost request): fails after `secs` instead of waiting forever.
pub async fn within<T>(secs: u64, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .expect("the operation hung: a request was lost or never answered")
}

/// A free TCP port on 127.0.0.1 for a server or a subprocess to bind.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Which replica served each request, in the order served.
pub type Log = Arc<Mutex<Vec<(String, String)>>>;

/// An Executor that records (doc id, replica) for each doc it serves, panics on docs tagged
/// `boom`, and sleeps `hold_ms` ms on `/hold`.
pub struct Recorder {
    log: Log,
}

impl Executor for Recorder {
    fn requests(r: &mut Requests<Self>) {
        r.on("/hold", Recorder::hold);
        r.default(Recorder::work);
    }
}

impl Recorder {
    fn record(&mut self, req: &mut Request, ctx: &Context) {
        let mut log = self.log.lock().unwrap();
        for d in req.docs.iter_mut() {
            log.push((d.id().to_owned(), ctx.runtime_name.to_string()));
            d.tags_mut().insert(
                "served_by".into(),
                Value::from(ctx.runtime_name.to_string()),
            );
        }
    }

    fn hold(&mut self, req: &mut Request, ctx: &Context) {
        let ms = req.parameter("ms").and_then(|v| v.as_u64()).unwrap_or(1000);
        std::thread::sleep(Duration::from_millis(ms));
        self.record(req, ctx);
    }

    fn work(&mut self, req: &mut Request, ctx: &Context) {
        if req.docs.iter().any(|d| d.tag("boom").is_some()) {
            panic!("boom on purpose");
        }
        self.record(req, ctx);
    }
}

/// A factory of `Recorder`s sharing one log, counting how many instances it built.
pub fn recorder() -> (SharedFactory, Log, Arc<Mutex<usize>>) {
    let log: Log = Arc::default();
    let built = Arc::new(Mutex::new(0usize));
    let (l, b) = (log.clone(), built.clone());
    let f = factory(move |_| {
        *b.lock().unwrap() += 1;
        Ok(Recorder { log: l.clone() })
    });
    (f, log, built)
}

/// An Executor that appends a doc saying who was here and how many docs it got (seed 004).
pub struct Appender {
    who: String,
}

impl Executor for Appender {
    fn requests(r: &mut Requests<Self>) {
        r.default_async(Appender::append);
    }
}

impl Appender {
    async fn append(&mut self, req: &mut Request, _ctx: &Context) {
        let n = req.docs.len();
        req.docs.push(Doc::text_doc(format!(
            "{} was here and got {n} document",
            self.who
        )));
    }
}

#[derive(serde::Deserialize)]
pub struct Who {
    pub who: String,
}

pub fn appender() -> SharedFactory {
    factory_with(|w: Who, _: &Context| Ok(Appender { who: w.who }))
}

/// The served_by tag of a doc.
pub fn served_by(d: &Doc) -> String {
    d.tag("served_by")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_owned()
}

/// What `Inside` executors printed: `inside: [texts]` per call, like the seed's `MyExec`.
pub type Prints = Arc<Mutex<Vec<String>>>;

/// The seed's polling-table Executor: prints `inside: {docs.text}` and returns nothing.
pub struct Inside {
    prints: Prints,
}

impl Executor for Inside {
    fn requests(r: &mut Requests<Self>) {
        r.default(|e: &mut Inside, req: &mut Request, _: &Context| {
            e.prints
                .lock()
                .unwrap()
                .push(format!("inside: {:?}", req.docs.texts()));
        });
    }
}

pub fn inside() -> (SharedFactory, Prints) {
    let prints: Prints = Arc::default();
    let p = prints.clone();
    (factory(move |_| Ok(Inside { prints: p.clone() })), prints)
}

/// A tiny sharded index: `/index` stores docs, `/search` attaches every stored doc as a match
/// scored by closeness of the `x` tags, `/count` reports how many docs the shard holds.
pub struct Store {
    docs: Vec<Doc>,
}

impl Executor for Store {
    fn requests(r: &mut Requests<Self>) {
        r.on("/index", |s: &mut Store, req: &mut Request, _: &Context| {
            s.docs.extend(req.docs.iter().cloned());
        });
        r.on(
            "/search",
            |s: &mut Store, req: &mut Request, _: &Context| {
                for q in req.docs.iter_mut() {
                    let qx = q.tag("x").and_then(Value::as_f64).unwrap_or(0.0);
                    for d in &s.docs {
                        let x = d.tag("x").and_then(Value::as_f64).unwrap_or(0.0);
                        q.matches_mut()
                            .push(Doc::with_id(d.id()).with_score("closeness", -(x - qx).abs()));
                    }
                }
            },
        );
        r.on("/count", |s: &mut Store, _: &mut Request, _: &Context| {
            serde_json::json!({ "count": s.docs.len() })
        });
    }
}

pub fn store() -> SharedFactory {
    factory(|_| Ok(Store { docs: Vec::new() }))
}

/// Sleeps `ms` on every request, then tags docs with its name.
pub struct Nap {
    ms: u64,
}

impl Executor for Nap {
    fn requests(r: &mut Requests<Self>) {
        r.default(|n: &mut Nap, req: &mut Request, ctx: &Context| {
            std::thread::sleep(Duration::from_millis(n.ms));
            for d in req.docs.iter_mut() {
                d.tags_mut()
                    .insert(ctx.deployment.to_string(), Value::Bool(true));
            }
        });
    }
}

#[derive(serde::Deserialize)]
pub struct NapArgs {
    pub ms: u64,
}

pub fn nap() -> SharedFactory {
    factory_with(|a: NapArgs, _: &Context| Ok(Nap { ms: a.ms }))
}

/// The `tags` of each doc as JSON-ish text, e.g. `{"key": 5}`.
pub fn tags_of(docs: &DocList) -> Vec<String> {
    docs.iter()
        .map(|d| {
            let t = d.tags().cloned().unwrap_or_default();
            let inner: Vec<String> = t
                .iter()
                .map(|(k, v)| format!("{k:?}: {}", show(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        })
        .collect()
}

fn show(v: &Value) -> String {
    match v.untyped() {
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Text(s) => format!("{s:?}"),
        Value::Bool(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}
