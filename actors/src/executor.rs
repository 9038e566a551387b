//! Executors: the user code a replica runs.
//!
//! An Executor is a plain Rust type whose handlers are bound to endpoints, the way Jina binds
//! methods with `@requests(on=...)`:
//!
//! ```
//! use flotilla_actors::prelude::*;
//!
//! struct Foo;
//!
//! impl Executor for Foo {
//!     fn requests(r: &mut Requests<Self>) {
//!         r.default(Foo::foo);
//!     }
//! }
//!
//! impl Foo {
//!     fn foo(&mut self, req: &mut Request, _ctx: &Context) {
//!         let n = req.docs.len();
//!         req.docs.push(Doc::text_doc(format!("foo was here and got {n} document")));
//!     }
//! }
//! ```
//!
//! A handler gets the request (docs, parameters, `docs_matrix`) and the replica's [`Context`],
//! and returns anything that is [`IntoOutput`]: `()` keeps the (possibly edited) docs, a
//! [`DocList`] replaces them, an [`Output::Results`] value is reported under `__results__`,
//! and an `Err` fails the request. Handlers may be `async fn`s ([`Requests::on_async`]); a
//! replica runs one request at a time either way, like Jina's worker does for sync endpoints.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::LocalBoxFuture;

use crate::doc::DocList;
use crate::request::Request;

/// What a handler produced.
#[derive(Debug)]
pub enum Output {
    /// Keep the request's docs as the handler left them.
    Keep,
    /// Replace the request's docs.
    Docs(DocList),
    /// A result object instead of docs; the docs pass on unchanged (Jina: returning a dict).
    Results(serde_json::Value),
}

/// The result of a handler.
pub type HandlerResult = Result<Output, ExecutorError>;

/// What a handler may return.
pub trait IntoOutput {
    fn into_output(self) -> HandlerResult;
}

impl IntoOutput for () {
    fn into_output(self) -> HandlerResult {
        Ok(Output::Keep)
    }
}

impl IntoOutput for Output {
    fn into_output(self) -> HandlerResult {
        Ok(self)
    }
}

impl IntoOutput for DocList {
    fn into_output(self) -> HandlerResult {
        Ok(Output::Docs(self))
    }
}

impl IntoOutput for Option<DocList> {
    fn into_output(self) -> HandlerResult {
        Ok(self.map_or(Output::Keep, Output::Docs))
    }
}

impl IntoOutput for serde_json::Value {
    fn into_output(self) -> HandlerResult {
        Ok(Output::Results(self))
    }
}

impl<T: IntoOutput, E: Into<ExecutorError>> IntoOutput for Result<T, E> {
    fn into_output(self) -> HandlerResult {
        self.map_err(Into::into).and_then(IntoOutput::into_output)
    }
}

/// An error raised by Executor code. It fails the request it happened in, and it is reported the
/// way Jina reports an exception (a name, a message, the Executor).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{name}: {message}")]
pub struct ExecutorError {
    /// The kind of error, like a Python exception class name (`ValueError`).
    pub name: String,
    pub message: String,
}

impl ExecutorError {
    /// An error with the generic name `ExecutorError`.
    pub fn new(message: impl Into<String>) -> Self {
        ExecutorError {
            name: "ExecutorError".into(),
            message: message.into(),
        }
    }

    /// An error with a given name, such as `ValueError`.
    pub fn named(name: impl Into<String>, message: impl Into<String>) -> Self {
        ExecutorError {
            name: name.into(),
            message: message.into(),
        }
    }
}

impl From<String> for ExecutorError {
    fn from(s: String) -> Self {
        ExecutorError::new(s)
    }
}

impl From<&str> for ExecutorError {
    fn from(s: &str) -> Self {
        ExecutorError::new(s)
    }
}

impl From<std::io::Error> for ExecutorError {
    fn from(e: std::io::Error) -> Self {
        ExecutorError::named("IOError", e.to_string())
    }
}

/// Where a replica runs: handed to the Executor's constructor and to every handler.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Context {
    /// The Deployment (Flow node) name.
    pub deployment: Arc<str>,
    pub shard: usize,
    pub shards: usize,
    pub replica: usize,
    pub replicas: usize,
    /// The Executor's workspace, if the Deployment has one.
    pub workspace: Option<PathBuf>,
    /// The replica's environment: the Deployment's `env` plus per-replica values such as its
    /// own `CUDA_VISIBLE_DEVICES`.
    pub env: BTreeMap<String, String>,
    /// `indexer/rep-0`, or `indexer/shard-1/rep-0` when the Deployment has shards.
    pub runtime_name: Arc<str>,
}

impl Context {
    /// The context of replica `replica` of shard `shard`.
    pub fn new(
        deployment: &str,
        shard: usize,
        shards: usize,
        replica: usize,
        replicas: usize,
    ) -> Self {
        let runtime_name = if shards > 1 {
            format!("{deployment}/shard-{shard}/rep-{replica}")
        } else {
            format!("{deployment}/rep-{replica}")
        };
        Context {
            deployment: deployment.into(),
            shard,
            shards,
            replica,
            replicas,
            workspace: None,
            env: BTreeMap::new(),
            runtime_name: runtime_name.into(),
        }
    }

    /// A value of the replica's environment.
    pub fn env(&self, key: &str) -> Option<&str> {
        self.env.get(key).map(String::as_str)
    }
}

/// An Executor: a type whose handlers are bound to endpoints.
///
/// `snapshot` and `restore` hand the Executor's state over to a Raft log (stateful
/// Deployments); an Executor that is never stateful need not implement them.
pub trait Executor: Sized + 'static {
    /// Binds handlers to endpoints. Called once per Executor type and Deployment.
    fn requests(r: &mut Requests<Self>);

    /// Writes the Executor's state into `dir`.
    fn snapshot(&mut self, dir: &Path) -> Result<(), ExecutorError> {
        let _ = dir;
        Err(ExecutorError::named(
            "NotImplementedError",
            "this Executor does not implement snapshot()",
        ))
    }

    /// Replaces the Executor's state with what `snapshot` wrote into `dir`.
    fn restore(&mut self, dir: &Path) -> Result<(), ExecutorError> {
        let _ = dir;
        Err(ExecutorError::named(
            "NotImplementedError",
            "this Executor does not implement restore()",
        ))
    }
}

type SyncFn<E> = Arc<dyn Fn(&mut E, &mut Request, &Context) -> HandlerResult + Send + Sync>;
type AsyncFnBox<E> = Arc<
    dyn for<'a> Fn(&'a mut E, &'a mut Request, &'a Context) -> LocalBoxFuture<'a, HandlerResult>
        + Send
        + Sync,
>;

enum Handler<E> {
    Sync(SyncFn<E>),
    Async(AsyncFnBox<E>),
}

impl<E> Clone for Handler<E> {
    fn clone(&self) -> Self {
        match self {
            Handler::Sync(f) => Handler::Sync(f.clone()),
            Handler::Async(f) => Handler::Async(f.clone()),
        }
    }
}

/// How one endpoint is served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointInfo {
    /// The endpoint, or `/default` for the handler of every other endpoint.
    pub name: String,
    /// The endpoint changes the Executor's state: on a stateful Deployment it goes through Raft.
    pub write: bool,
    pub is_async: bool,
    /// Requests to the endpoint are merged into batches ([`Binding::dynamic_batching`]).
    pub batching: Option<DynamicBatching>,
}

/// Jina's `@dynamic_batching`: requests to one endpoint that wait for a replica, with equal
/// parameters, are served by one handler call over all their docs, then each request gets its
/// own docs back.
///
/// A batch is formed when a replica takes a request: the compatible requests queued by then
/// join it, oldest first, while their docs fit in `preferred_batch_size` (a request is never
/// split; one larger than that is served alone). Unlike Jina, a
/// request is never held back while a replica is free, waiting for its batch to fill: batches
/// form exactly when requests queue, under load, and a lone request is served at once. So
/// `timeout` (Jina's maximum wait for a batch, in ms) is accepted and bounds nothing here.
///
/// The handler must return as many docs as it got (or edit them in place), in order: a batch
/// whose output has another length fails every request in it, as in Jina. A handler error
/// fails every request of the batch, as in Jina, unless the endpoint is declared
/// [`DynamicBatching::alone_on_error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DynamicBatching {
    /// The most docs a batch takes (`None`: every compatible queued request).
    pub preferred_batch_size: Option<usize>,
    /// Jina's `timeout`, in milliseconds (default 10,000).
    pub timeout_ms: u64,
    /// When the handler fails on a batch of several requests, serve each request of it alone,
    /// so that only the requests that fail on their own fail (flotilla's, not Jina's). For
    /// handlers that leave their docs untouched when they fail (they check everything first),
    /// of a sync endpoint: each request is then served exactly as if it had come alone. Kept
    /// when a Deployment's `uses_dynamic_batching` overrides the batch size.
    pub alone_on_error: bool,
}

impl DynamicBatching {
    /// Batches of up to `preferred_batch_size` docs, with Jina's default timeout.
    pub fn new(preferred_batch_size: usize) -> Self {
        DynamicBatching {
            preferred_batch_size: Some(preferred_batch_size.max(1)),
            timeout_ms: 10_000,
            alone_on_error: false,
        }
    }

    /// The same, serving each request of a failed batch alone (see
    /// [`DynamicBatching::alone_on_error`]).
    pub fn alone_on_error(mut self) -> Self {
        self.alone_on_error = true;
        self
    }

    /// The most docs one batch takes.
    pub fn max_docs(&self) -> usize {
        self.preferred_batch_size.unwrap_or(usize::MAX)
    }
}

/// The endpoint of Jina's bare `@requests`: it serves every endpoint not bound otherwise.
pub const DEFAULT_ENDPOINT: &str = "/default";

/// The endpoint of Jina's readiness probe: answered by every replica without running user code.
pub const DRY_RUN_ENDPOINT: &str = "_jina_dry_run_";

/// The table of an Executor's handlers, filled by [`Executor::requests`].
pub struct Requests<E> {
    entries: Vec<(EndpointInfo, Handler<E>)>,
    /// Set by [`Requests::inline`]: how an instance becomes one a caller's thread may run.
    inline: Option<MakeInline<E>>,
}

/// Turns a bound instance into one callers' threads may run (set where `E: Send` is known).
type MakeInline<E> = fn(Bound<E>) -> Box<dyn DynExecutor + Send>;

impl<E: 'static> Requests<E> {
    fn new() -> Self {
        Requests {
            entries: Vec::new(),
            inline: None,
        }
    }

    fn bind(&mut self, name: &str, write: bool, handler: Handler<E>) -> Binding<'_> {
        let is_async = matches!(handler, Handler::Async(_));
        let info = EndpointInfo {
            name: name.to_owned(),
            write,
            is_async,
            batching: None,
        };
        let i = match self.entries.iter().position(|(e, _)| e.name == name) {
            Some(i) => {
                self.entries[i] = (info, handler);
                i
            }
            None => {
                self.entries.push((info, handler));
                self.entries.len() - 1
            }
        };
        Binding {
            info: &mut self.entries[i].0,
        }
    }

    /// Binds a handler to `endpoint`.
    pub fn on<F, R>(&mut self, endpoint: &str, f: F) -> Binding<'_>
    where
        F: Fn(&mut E, &mut Request, &Context) -> R + Send + Sync + 'static,
        R: IntoOutput,
    {
        self.bind(
            endpoint,
            false,
            Handler::Sync(Arc::new(move |e, r, c| f(e, r, c).into_output())),
        )
    }

    /// Binds an `async` handler to `endpoint`.
    pub fn on_async<F, R>(&mut self, endpoint: &str, f: F) -> Binding<'_>
    where
        F: AsyncFn(&mut E, &mut Request, &Context) -> R + Send + Sync + 'static,
        R: IntoOutput,
    {
        let f = Arc::new(f);
        let h: AsyncFnBox<E> = Arc::new(move |e, r, c| {
            let f = f.clone();
            Box::pin(async move { f(e, r, c).await.into_output() })
        });
        self.bind(endpoint, false, Handler::Async(h))
    }
}

impl<E: Executor + Send> Requests<E> {
    /// Lets the caller's thread run this Executor's handlers itself when its replica is idle
    /// and the handlers have been quick (see [`crate::inline`]): no hand-over to the replica's
    /// thread and back, which for a handler of a few microseconds costs more than the handler.
    ///
    /// For Executors that are `Send` and whose handlers do not rely on running on the
    /// replica's own thread (its actix context, thread-locals). Requests are still served one
    /// at a time per replica, by the replica chosen as before. Ignored when the Executor has
    /// an `async` handler.
    pub fn inline(&mut self) {
        self.inline = Some(|bound| Box::new(bound) as Box<dyn DynExecutor + Send>);
    }
}

impl<E: 'static> Requests<E> {
    /// Binds the handler of every endpoint not bound otherwise (Jina's bare `@requests`).
    pub fn default<F, R>(&mut self, f: F) -> Binding<'_>
    where
        F: Fn(&mut E, &mut Request, &Context) -> R + Send + Sync + 'static,
        R: IntoOutput,
    {
        self.on(DEFAULT_ENDPOINT, f)
    }

    /// Binds an `async` handler of every endpoint not bound otherwise.
    pub fn default_async<F, R>(&mut self, f: F) -> Binding<'_>
    where
        F: AsyncFn(&mut E, &mut Request, &Context) -> R + Send + Sync + 'static,
        R: IntoOutput,
    {
        self.on_async(DEFAULT_ENDPOINT, f)
    }

    fn find(&self, endpoint: &str) -> Option<usize> {
        self.entries
            .iter()
            .position(|(e, _)| e.name == endpoint)
            .or_else(|| {
                self.entries
                    .iter()
                    .position(|(e, _)| e.name == DEFAULT_ENDPOINT)
            })
    }
}

/// A bound endpoint; tag it as a write with [`Binding::write`].
pub struct Binding<'a> {
    info: &'a mut EndpointInfo,
}

impl Binding<'_> {
    /// Tags the endpoint as changing the Executor's state (Jina's `@write`).
    pub fn write(self) -> Self {
        self.info.write = true;
        self
    }

    /// Serves the endpoint in batches (Jina's `@dynamic_batching`): see [`DynamicBatching`].
    /// A Deployment's `uses_dynamic_batching` overrides it.
    pub fn dynamic_batching(self, batching: DynamicBatching) -> Self {
        self.info.batching = Some(batching);
        self
    }
}

/// How a replica should serve a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Sync(usize),
    Async(usize),
    /// No handler: the request passes through unchanged (Jina: "endpoint mismatch").
    PassThrough,
}

/// An Executor with its handler table, type-erased: what a replica holds.
pub trait DynExecutor {
    fn route(&self, endpoint: &str) -> Route;
    /// The endpoint handler `handler` is bound to (`/default` for the catch-all one).
    fn endpoint_of(&self, handler: usize) -> &str;
    fn call_sync(&mut self, handler: usize, req: &mut Request, ctx: &Context) -> HandlerResult;
    fn call_async<'a>(
        &'a mut self,
        handler: usize,
        req: &'a mut Request,
        ctx: &'a Context,
    ) -> LocalBoxFuture<'a, HandlerResult>;
    fn snapshot(&mut self, dir: &Path) -> Result<(), ExecutorError>;
    fn restore(&mut self, dir: &Path) -> Result<(), ExecutorError>;
    /// The same Executor, as one a caller's thread may run ([`Requests::inline`]); itself back
    /// when it did not opt in (or has an `async` handler).
    fn into_inline(self: Box<Self>) -> Result<Box<dyn DynExecutor + Send>, Box<dyn DynExecutor>>;
}

/// The handler table of one Executor type, built once and shared by its replicas.
pub struct Table<E>(Arc<Requests<E>>);

impl<E> Clone for Table<E> {
    fn clone(&self) -> Self {
        Table(self.0.clone())
    }
}

impl<E: Executor> Table<E> {
    /// Builds the table by calling [`Executor::requests`].
    pub fn of() -> Self {
        let mut r = Requests::new();
        E::requests(&mut r);
        Table(Arc::new(r))
    }

    /// The bound endpoints.
    pub fn endpoints(&self) -> Vec<EndpointInfo> {
        self.0.entries.iter().map(|(e, _)| e.clone()).collect()
    }

    /// Pairs an Executor instance with this table.
    pub fn bind(&self, exec: E) -> Box<dyn DynExecutor> {
        Box::new(Bound {
            exec,
            table: self.clone(),
        })
    }
}

struct Bound<E> {
    exec: E,
    table: Table<E>,
}

impl<E: Executor> DynExecutor for Bound<E> {
    fn route(&self, endpoint: &str) -> Route {
        if endpoint == DRY_RUN_ENDPOINT {
            return Route::PassThrough;
        }
        match self.table.0.find(endpoint) {
            Some(i) => match self.table.0.entries[i].1 {
                Handler::Sync(_) => Route::Sync(i),
                Handler::Async(_) => Route::Async(i),
            },
            None => Route::PassThrough,
        }
    }

    fn endpoint_of(&self, handler: usize) -> &str {
        self.table
            .0
            .entries
            .get(handler)
            .map_or(DEFAULT_ENDPOINT, |(e, _)| e.name.as_str())
    }

    fn call_sync(&mut self, handler: usize, req: &mut Request, ctx: &Context) -> HandlerResult {
        match &self.table.0.entries[handler].1 {
            Handler::Sync(f) => f(&mut self.exec, req, ctx),
            Handler::Async(_) => Err(ExecutorError::new(
                "internal: async handler called synchronously",
            )),
        }
    }

    fn call_async<'a>(
        &'a mut self,
        handler: usize,
        req: &'a mut Request,
        ctx: &'a Context,
    ) -> LocalBoxFuture<'a, HandlerResult> {
        match &self.table.0.entries[handler].1 {
            Handler::Async(f) => f(&mut self.exec, req, ctx),
            Handler::Sync(f) => {
                let r = f(&mut self.exec, req, ctx);
                Box::pin(async move { r })
            }
        }
    }

    fn snapshot(&mut self, dir: &Path) -> Result<(), ExecutorError> {
        self.exec.snapshot(dir)
    }

    fn restore(&mut self, dir: &Path) -> Result<(), ExecutorError> {
        self.exec.restore(dir)
    }

    fn into_inline(self: Box<Self>) -> Result<Box<dyn DynExecutor + Send>, Box<dyn DynExecutor>> {
        let table = &self.table.0;
        match table.inline {
            Some(make) if table.entries.iter().all(|(e, _)| !e.is_async) => Ok(make(*self)),
            _ => Err(self),
        }
    }
}

/// Builds Executor instances for the replicas of a Deployment: one per replica, and again when a
/// replica is restarted. `uses_with` was checked when the graph was compiled.
pub trait ExecutorFactory: Send + Sync {
    /// The Executor's endpoints (the same for every instance).
    fn endpoints(&self) -> Vec<EndpointInfo>;
    /// Checks `uses_with` without building anything.
    fn check(&self, uses_with: &serde_json::Value) -> Result<(), String>;
    /// Builds one instance for the replica described by `ctx`.
    fn build(
        &self,
        uses_with: &serde_json::Value,
        ctx: &Context,
    ) -> Result<Box<dyn DynExecutor>, ExecutorError>;
}

/// A shared factory.
pub type SharedFactory = Arc<dyn ExecutorFactory>;

/// A factory from a constructor taking `uses_with` deserialized into `A` and the replica's context.
pub struct FnFactory<E, A, F> {
    table: Table<E>,
    ctor: F,
    _args: std::marker::PhantomData<fn(A)>,
}

impl<E, A, F> FnFactory<E, A, F>
where
    E: Executor,
    A: serde::de::DeserializeOwned + 'static,
    F: Fn(A, &Context) -> Result<E, ExecutorError> + Send + Sync + 'static,
{
    pub fn new(ctor: F) -> Self {
        FnFactory {
            table: Table::of(),
            ctor,
            _args: std::marker::PhantomData,
        }
    }
}

fn args_of<A: serde::de::DeserializeOwned>(uses_with: &serde_json::Value) -> Result<A, String> {
    let v = match uses_with {
        serde_json::Value::Null => serde_json::Value::Object(Default::default()),
        v => v.clone(),
    };
    serde_json::from_value(v).map_err(|e| e.to_string())
}

impl<E, A, F> ExecutorFactory for FnFactory<E, A, F>
where
    E: Executor,
    A: serde::de::DeserializeOwned + 'static,
    F: Fn(A, &Context) -> Result<E, ExecutorError> + Send + Sync + 'static,
{
    fn endpoints(&self) -> Vec<EndpointInfo> {
        self.table.endpoints()
    }

    fn check(&self, uses_with: &serde_json::Value) -> Result<(), String> {
        args_of::<A>(uses_with).map(drop)
    }

    fn build(
        &self,
        uses_with: &serde_json::Value,
        ctx: &Context,
    ) -> Result<Box<dyn DynExecutor>, ExecutorError> {
        let args = args_of::<A>(uses_with).map_err(|e| ExecutorError::named("ValueError", e))?;
        Ok(self.table.bind((self.ctor)(args, ctx)?))
    }
}

/// `uses_with` for an Executor that takes none: any key is an error.
#[derive(Clone, Copy, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

/// A factory for an Executor that takes no `uses_with`, from a closure of the context.
pub fn factory<E, F>(ctor: F) -> SharedFactory
where
    E: Executor,
    F: Fn(&Context) -> Result<E, ExecutorError> + Send + Sync + 'static,
{
    Arc::new(FnFactory::new(move |_: NoArgs, ctx: &Context| ctor(ctx)))
}

/// A factory whose `uses_with` deserializes into the Executor itself.
pub fn serde_factory<E>() -> SharedFactory
where
    E: Executor + serde::de::DeserializeOwned + Clone,
{
    Arc::new(FnFactory::new(|e: E, _: &Context| Ok(e)))
}

/// A factory with `uses_with` deserialized into `A` and handed to `ctor` with the context.
pub fn factory_with<E, A, F>(ctor: F) -> SharedFactory
where
    E: Executor,
    A: serde::de::DeserializeOwned + 'static,
    F: Fn(A, &Context) -> Result<E, ExecutorError> + Send + Sync + 'static,
{
    Arc::new(FnFactory::new(ctor))
}

impl fmt::Debug for dyn ExecutorFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecutorFactory")
            .field("endpoints", &self.endpoints())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::Doc;

    #[derive(Default)]
    struct Counter {
        n: usize,
    }

    impl Executor for Counter {
        fn requests(r: &mut Requests<Self>) {
            r.on("/index", Counter::index).write();
            r.on_async("/slow", Counter::slow);
            r.default(|_: &mut Counter, req: &mut Request, _: &Context| req.docs.clear());
        }
    }

    impl Counter {
        fn index(&mut self, req: &mut Request, _ctx: &Context) -> Result<(), ExecutorError> {
            self.n += req.docs.len();
            Ok(())
        }

        async fn slow(&mut self, req: &mut Request, ctx: &Context) -> DocList {
            self.n += 1;
            req.docs
                .iter()
                .cloned()
                .map(|d| d.with_text(ctx.runtime_name.to_string()))
                .collect()
        }
    }

    #[test]
    fn routes_exact_then_default() {
        let t = Table::<Counter>::of();
        let e = t.bind(Counter::default());
        assert!(matches!(e.route("/index"), Route::Sync(0)));
        assert!(matches!(e.route("/slow"), Route::Async(1)));
        assert!(matches!(e.route("/other"), Route::Sync(2)));
        assert!(matches!(e.route(DRY_RUN_ENDPOINT), Route::PassThrough));
        let eps = t.endpoints();
        assert_eq!(
            eps.iter()
                .filter(|e| e.write)
                .map(|e| e.name.as_str())
                .collect::<Vec<_>>(),
            vec!["/index"]
        );
    }

    #[test]
    fn sync_and_async_handlers_run() {
        let t = Table::<Counter>::of();
        let mut e = t.bind(Counter::default());
        let ctx = Context::new("c", 0, 1, 0, 1);
        let mut req = Request::new("/index", DocList::from(vec![Doc::new(), Doc::new()]));
        assert!(matches!(e.call_sync(0, &mut req, &ctx), Ok(Output::Keep)));
        let out = futures::executor::block_on(e.call_async(1, &mut req, &ctx)).unwrap();
        match out {
            Output::Docs(d) => assert_eq!(d.texts(), vec!["c/rep-0", "c/rep-0"]),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn factories_check_uses_with() {
        let f = factory(|_| Ok(Counter::default()));
        assert!(f.check(&serde_json::json!({})).is_ok());
        assert!(f.check(&serde_json::Value::Null).is_ok());
        let err = f.check(&serde_json::json!({"bogus": 1})).unwrap_err();
        assert!(err.contains("bogus"), "{err}");
    }
}
