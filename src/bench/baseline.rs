//! The baselines measured in the same run as flotilla:
//! - [`EchoServer`]: a bare tonic unary echo of `jina.JinaSingleDataRequestRPC/process_single_data`
//!   — the same message over the same kind of connection, with no flotilla in the path.
//! - [`BareIndex`]: the seed's vector search as a plain loop over one row-major `Vec<f32>`, no
//!   Executor, request or doc around it ("the limit"). `benches/vector_search.rs` uses it too.
//! - [`DirectExactNN`]: the built-in `ExactNNIndexer`'s own handlers called in a plain loop, with
//!   no runtime around them (what the runtime costs is the difference).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use crate::actors::executor::{Context, DynExecutor, Route};
use crate::actors::request::Request as KRequest;
use crate::executors::builtin_registry;
use crate::grpc::pb::jina::DataRequestProto;
use crate::grpc::pb::jina::jina_single_data_request_rpc_server::{
    JinaSingleDataRequestRpc, JinaSingleDataRequestRpcServer,
};
use crate::{Doc, DocList, NdArray};

use super::{BenchError, Ctx};

// ---------------------------------------------------------------------------------------------
// Bare tonic echo.

/// A tonic server whose only service returns every `process_single_data` request as it came.
pub struct EchoServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
}

struct Echo;

#[tonic::async_trait]
impl JinaSingleDataRequestRpc for Echo {
    async fn process_single_data(
        &self,
        request: Request<DataRequestProto>,
    ) -> Result<Response<DataRequestProto>, Status> {
        Ok(Response::new(request.into_inner()))
    }
}

impl EchoServer {
    /// Serves the echo on a free loopback port: `TCP_NODELAY` on every accepted connection (a
    /// listener handed to tonic as a plain stream keeps Nagle's algorithm on, whatever
    /// `Server::tcp_nodelay` says), no message-size limit.
    pub async fn start() -> Result<EchoServer, BenchError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .ctx("binding the bare echo server")?;
        let addr = listener.local_addr().ctx("binding the bare echo server")?;
        let svc = JinaSingleDataRequestRpcServer::new(Echo)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(
            tonic::transport::Server::builder()
                .tcp_nodelay(true)
                .add_service(svc)
                .serve_with_incoming_shutdown(
                    TcpIncoming::from(listener).with_nodelay(Some(true)),
                    async {
                        let _ = stopped.await;
                    },
                ),
        );
        Ok(EchoServer {
            addr,
            stop: Some(stop),
            task: Some(task),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The bare search loop.

/// `rows` (row-major, `dim` f32s each) normalised.
pub fn normalised(rows: &[f32], dim: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; rows.len()];
    for (o, r) in out.chunks_exact_mut(dim).zip(rows.chunks_exact(dim)) {
        // The indexer's own normalisation, so both search exactly the same f32 vectors.
        crate::executors::normalise_into(r, o);
    }
    out
}

/// The dot product in 16 independent f32 lanes (which LLVM vectorises in a generic build),
/// then the lanes summed and the tail added.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (ca, ta) = a.as_chunks::<16>();
    let (cb, tb) = b.as_chunks::<16>();
    let mut acc = [0.0f32; 16];
    for (x, y) in ca.iter().zip(cb) {
        for ((s, &x), &y) in acc.iter_mut().zip(x).zip(y) {
            *s += x * y;
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (&x, &y) in ta.iter().zip(tb) {
        sum += x * y;
    }
    sum
}

/// The best `k` of a stream of (score, row) candidates: higher score first, the earlier row
/// first among equal scores, a NaN score last.
#[derive(Clone, Debug)]
pub struct TopK {
    k: usize,
    best: Vec<(f32, usize)>,
}

impl TopK {
    pub fn new(k: usize) -> Self {
        TopK {
            k,
            best: Vec::with_capacity(k + 1),
        }
    }

    #[inline]
    pub fn offer(&mut self, score: f32, row: usize) {
        if self.k == 0 {
            return;
        }
        let score = if score.is_nan() {
            f32::NEG_INFINITY
        } else {
            score
        };
        if self.best.len() == self.k {
            match self.best.last() {
                Some(&(worst, _)) if score > worst => {}
                _ => return,
            }
        }
        // After every candidate at least as good: equal scores keep the earlier row first.
        let at = self.best.partition_point(|&(s, _)| s >= score);
        self.best.insert(at, (score, row));
        self.best.truncate(self.k);
    }

    /// Best first.
    pub fn into_sorted(self) -> Vec<(f32, usize)> {
        self.best
    }
}

/// The seed's index as a plain matrix: normalised rows, row-major, searched by a full scan.
#[derive(Clone, Debug)]
pub struct BareIndex {
    dim: usize,
    rows: Vec<f32>,
}

impl BareIndex {
    /// Normalises and copies `raw` (row-major, `dim` f32s per row): the bare "index" step.
    pub fn build(raw: &[f32], dim: usize) -> Self {
        BareIndex {
            dim,
            rows: normalised(raw, dim),
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len() / self.dim.max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The `k` best rows for the (normalised) query `q`, best first: (score, row).
    pub fn top_k(&self, q: &[f32], k: usize) -> Vec<(f32, usize)> {
        let mut top = TopK::new(k);
        for (i, row) in self.rows.chunks_exact(self.dim).enumerate() {
            top.offer(dot(row, q), i);
        }
        top.into_sorted()
    }

    /// Searches every (normalised) query, one at a time, on `threads` threads (each takes a
    /// contiguous share of the queries and scans the whole matrix for each).
    pub fn search_all(&self, queries: &[f32], k: usize, threads: usize) -> Vec<Vec<(f32, usize)>> {
        let qs: Vec<&[f32]> = queries.chunks_exact(self.dim).collect();
        let threads = threads.clamp(1, qs.len().max(1));
        if threads == 1 {
            return qs.iter().map(|q| self.top_k(q, k)).collect();
        }
        let per = qs.len().div_ceil(threads);
        std::thread::scope(|s| {
            let handles: Vec<_> = qs
                .chunks(per)
                .map(|part| s.spawn(move || part.iter().map(|q| self.top_k(q, k)).collect()))
                .collect();
            let mut out: Vec<Vec<(f32, usize)>> = Vec::with_capacity(qs.len());
            for h in handles {
                match h.join() {
                    Ok(part) => {
                        let part: Vec<Vec<(f32, usize)>> = part;
                        out.extend(part);
                    }
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            out
        })
    }

    /// The score of row `i` for query `q`, summed in f64 (no rounding worth speaking of).
    pub fn exact_score(&self, q: &[f32], i: usize) -> f64 {
        self.rows[i * self.dim..(i + 1) * self.dim]
            .iter()
            .zip(q)
            .map(|(&x, &y)| f64::from(x) * f64::from(y))
            .sum()
    }

    /// Whether `got` (row numbers, best first) is the right top-k for query `q`, given `want`
    /// from [`BareIndex::top_k`]. Two f32 scans that sum in a different order may swap rows whose
    /// scores differ by a rounding error, so a list that differs from `want` is still right when
    /// it has no duplicate and its exact scores match `want`'s rank by rank within `tol`.
    pub fn agrees(&self, q: &[f32], want: &[usize], got: &[usize], tol: f64) -> Agreement {
        if want == got {
            return Agreement::Exact;
        }
        if want.len() != got.len() {
            return Agreement::Differs(format!(
                "{} matches, the bare loop finds {}",
                got.len(),
                want.len()
            ));
        }
        let mut seen = got.to_vec();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() != got.len() {
            return Agreement::Differs(format!("a row appears twice in {got:?}"));
        }
        if let Some(&bad) = got.iter().find(|&&i| i >= self.len()) {
            return Agreement::Differs(format!("row {bad} does not exist"));
        }
        for (rank, (&w, &g)) in want.iter().zip(got).enumerate() {
            let (sw, sg) = (self.exact_score(q, w), self.exact_score(q, g));
            if (sw - sg).abs() > tol {
                return Agreement::Differs(format!(
                    "rank {rank}: row {g} (score {sg:.7}) where the bare loop has row {w} \
                     (score {sw:.7}); got {got:?}, want {want:?}"
                ));
            }
        }
        Agreement::NearTie
    }
}

/// The outcome of [`BareIndex::agrees`].
#[derive(Clone, Debug, PartialEq)]
pub enum Agreement {
    /// The same rows in the same order.
    Exact,
    /// Rows swapped only where exact scores tie within the tolerance.
    NearTie,
    /// A wrong answer, and how.
    Differs(String),
}

// ---------------------------------------------------------------------------------------------
// ExactNNIndexer without a runtime.

/// One `ExactNNIndexer` built from the registry and called through its handler table in a plain
/// loop, the way a replica calls it, but with no replica, queue or router around it.
pub struct DirectExactNN {
    exec: Box<dyn DynExecutor>,
    ctx: Context,
}

impl DirectExactNN {
    /// An empty index with `uses_with`.
    pub fn new(uses_with: &serde_json::Value) -> Result<Self, BenchError> {
        let ctx = Context::new("direct", 0, 1, 0, 1);
        let registry = builtin_registry();
        let factory = registry
            .get("ExactNNIndexer")
            .ok_or_else(|| BenchError::wrong("building ExactNNIndexer", "not registered"))?;
        let exec = factory
            .build(uses_with, &ctx)
            .map_err(|e| BenchError::wrong("building ExactNNIndexer", e.to_string()))?;
        Ok(DirectExactNN { exec, ctx })
    }

    /// Runs one request through the endpoint's handler.
    pub fn call(&mut self, req: &mut KRequest) -> Result<(), BenchError> {
        let context = format!("calling ExactNNIndexer {} directly", req.endpoint);
        let Route::Sync(h) = self.exec.route(&req.endpoint) else {
            return Err(BenchError::wrong(context, "not a sync endpoint"));
        };
        self.exec
            .call_sync(h, req, &self.ctx)
            .map(drop)
            .map_err(|e| BenchError::wrong(context, e.to_string()))
    }
}

/// The seed's docs for rows `first..first + rows.len()/dim`: id = the row number, text `I am
/// document {i}`, the row as an f32 embedding.
pub fn index_docs(raw: &[f32], dim: usize, first: usize) -> DocList {
    raw.chunks_exact(dim)
        .enumerate()
        .map(|(j, r)| {
            let i = first + j;
            Doc::with_id(i.to_string())
                .with_text(format!("I am document {i}"))
                .with_embedding(NdArray::from_f32(r.to_vec()))
        })
        .collect()
}

/// Query docs `q{j}` with the queries (raw, unnormalised) as embeddings.
pub fn query_docs(raw: &[f32], dim: usize) -> DocList {
    raw.chunks_exact(dim)
        .enumerate()
        .map(|(j, r)| Doc::with_id(format!("q{j}")).with_embedding(NdArray::from_f32(r.to_vec())))
        .collect()
}

/// How long `f` took.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let out = f();
    (out, t.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_keeps_the_best_earlier_rows_first_and_nan_last() {
        let mut t = TopK::new(3);
        for (s, i) in [
            (0.5, 0),
            (0.9, 1),
            (0.5, 2),
            (f32::NAN, 3),
            (0.7, 4),
            (0.5, 5),
        ] {
            t.offer(s, i);
        }
        let rows: Vec<usize> = t.into_sorted().into_iter().map(|(_, i)| i).collect();
        assert_eq!(rows, vec![1, 4, 0]);
        let mut t = TopK::new(3);
        t.offer(f32::NAN, 0);
        t.offer(0.1, 1);
        let rows: Vec<usize> = t.into_sorted().into_iter().map(|(_, i)| i).collect();
        assert_eq!(rows, vec![1, 0]);
    }

    #[test]
    fn the_bare_loop_finds_what_a_naive_scan_finds() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let dim = 37; // a tail after the 16-lane chunks
        let raw: Vec<f32> = (0..500 * dim).map(|_| rng.random::<f32>()).collect();
        let qraw: Vec<f32> = (0..6 * dim).map(|_| rng.random::<f32>()).collect();
        let idx = BareIndex::build(&raw, dim);
        let qs = normalised(&qraw, dim);
        let one = idx.search_all(&qs, 10, 1);
        let two = idx.search_all(&qs, 10, 2);
        assert_eq!(one, two);
        for (q, found) in qs.chunks_exact(dim).zip(&one) {
            let mut naive: Vec<(f64, usize)> =
                (0..500).map(|i| (idx.exact_score(q, i), i)).collect();
            naive.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let want: Vec<usize> = naive[..10].iter().map(|p| p.1).collect();
            let got: Vec<usize> = found.iter().map(|p| p.1).collect();
            assert!(!matches!(
                idx.agrees(q, &want, &got, 1e-5),
                Agreement::Differs(_)
            ));
        }
        // A wrong list is caught: the worst row in first place, or a row twice.
        let q = &qs[..dim];
        let want: Vec<usize> = one[0].iter().map(|p| p.1).collect();
        let worst = (0..500)
            .min_by(|&a, &b| idx.exact_score(q, a).total_cmp(&idx.exact_score(q, b)))
            .expect("rows");
        let mut wrong = want.clone();
        wrong[0] = worst;
        assert!(matches!(
            idx.agrees(q, &want, &wrong, 1e-5),
            Agreement::Differs(_)
        ));
        let mut dup = want.clone();
        dup[1] = dup[0];
        assert!(matches!(
            idx.agrees(q, &want, &dup, 1e-5),
            Agreement::Differs(_)
        ));
    }
}
