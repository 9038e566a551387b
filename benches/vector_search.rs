//! The seed's vector search (100,000 × 128-d f32, top-10) through the built-in
//! `ExactNNIndexer`, beside a bare-loop baseline measured in the same run: the same scan as a
//! plain function over a plain row-major `Vec<f32>` (normalised rows, 16-lane dot product,
//! bounded-heap top-10), with no Executor, request or doc around it.
//!
//! `cargo bench --bench vector_search`; throughput figures are queries per second. Cases:
//! - `bare_loop/1`, `bare_loop/100`: one query, or 100 queries one after another.
//! - `executor/1`, `executor/100`: one `/search` request carrying 1 or 100 query docs
//!   (handler call on the Executor's handler table, as a replica makes it; the request is built
//!   outside the timing), with `threads: 1` and `threads: 2`.
//! - `index_100k`: the 1,000 `/index` requests of 100 docs that build the index.
//!
//! The limit of this machine for the same workload is in
//! `/work/shared/research/limit-vector-search.md`.

use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use flotilla::actors::executor::{Context, DynExecutor, Route};
use flotilla::actors::request::Request;
use flotilla::bench::baseline::{Agreement, BareIndex, normalised};
use flotilla::executors::builtin_registry;
use flotilla::{Doc, DocList, NdArray};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const N: usize = 100_000;
const DIM: usize = 128;
const K: usize = 10;
const QUERY_POOL: usize = 1_000;

fn ctx() -> Context {
    Context::new("indexer", 0, 1, 0, 1)
}

fn call(e: &mut Box<dyn DynExecutor>, req: &mut Request) {
    let Route::Sync(h) = e.route(&req.endpoint) else {
        panic!("{} is not a sync endpoint", req.endpoint)
    };
    e.call_sync(h, req, &ctx()).expect("the handler succeeds");
}

/// The 1,000 index requests of 100 docs, like the seed's `request_size=100`.
fn index_requests(rows: &[Vec<f32>]) -> Vec<Request> {
    rows.chunks(100)
        .enumerate()
        .map(|(b, chunk)| {
            let docs: DocList = chunk
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    Doc::with_id(format!("{}", b * 100 + i))
                        .with_text(format!("I am document {}", b * 100 + i))
                        .with_embedding(NdArray::from_f32(r.clone()))
                })
                .collect();
            Request::new("/index", docs)
        })
        .collect()
}

fn indexer(threads: usize) -> Box<dyn DynExecutor> {
    let uses_with = serde_json::json!({"dim": DIM, "metric": "cosine", "threads": threads});
    builtin_registry()
        .get("ExactNNIndexer")
        .expect("registered")
        .build(&uses_with, &ctx())
        .expect("built")
}

fn search_request(queries: &[Vec<f32>]) -> Request {
    let docs: DocList = queries
        .iter()
        .enumerate()
        .map(|(i, q)| Doc::with_id(format!("q{i}")).with_embedding(NdArray::from_f32(q.clone())))
        .collect();
    Request::new("/search", docs)
}

fn bench(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(2023);
    let rows: Vec<Vec<f32>> = (0..N)
        .map(|_| (0..DIM).map(|_| rng.random::<f32>()).collect())
        .collect();
    let queries: Vec<Vec<f32>> = (0..QUERY_POOL)
        .map(|_| (0..DIM).map(|_| rng.random::<f32>()).collect())
        .collect();

    // The baseline's matrix: normalised at index time (as ExactNNIndexer does), one row-major
    // Vec<f32>.
    let bare = BareIndex::build(&rows.concat(), DIM);
    let flat_queries: Vec<Vec<f32>> = normalised(&queries.concat(), DIM)
        .chunks_exact(DIM)
        .map(<[f32]>::to_vec)
        .collect();

    let mut g = c.benchmark_group("index_100k");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("executor", |b| {
        b.iter_batched(
            || (indexer(1), index_requests(&rows)),
            |(mut e, mut reqs)| {
                for r in reqs.iter_mut() {
                    call(&mut e, r);
                }
                (e, reqs) // dropped outside the timing
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();

    let mut executors: Vec<(usize, Box<dyn DynExecutor>)> = Vec::new();
    for threads in [1, 2] {
        let mut e = indexer(threads);
        for mut r in index_requests(&rows) {
            call(&mut e, &mut r);
        }
        executors.push((threads, e));
    }

    // The executor finds what the baseline finds (up to rows swapped by a rounding-level tie).
    for q in 0..5 {
        let want: Vec<usize> = bare
            .top_k(&flat_queries[q], K)
            .iter()
            .map(|h| h.1)
            .collect();
        for (_, e) in executors.iter_mut() {
            let mut req = search_request(&queries[q..q + 1]);
            call(e, &mut req);
            let got: Vec<usize> = req.docs[0]
                .matches()
                .expect("matches")
                .ids()
                .iter()
                .map(|id| id.parse().expect("a row number"))
                .collect();
            let agreement = bare.agrees(&flat_queries[q], &want, &got, 1e-5);
            assert!(
                !matches!(agreement, Agreement::Differs(_)),
                "query {q}: {agreement:?}"
            );
        }
    }

    let mut g = c.benchmark_group("vector_search_100k_128d_top10");
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(8));
    for batch in [1usize, 100] {
        g.throughput(Throughput::Elements(batch as u64));
        let mut next = 0usize;
        g.bench_with_input(BenchmarkId::new("bare_loop", batch), &batch, |b, &batch| {
            b.iter(|| {
                let mut found = 0;
                for _ in 0..batch {
                    next = (next + 1) % QUERY_POOL;
                    found += bare.top_k(&flat_queries[next], K).len();
                }
                found
            })
        });
        for (threads, e) in executors.iter_mut() {
            let id = BenchmarkId::new(format!("executor_{threads}_thread"), batch);
            let mut next = 0usize;
            g.bench_with_input(id, &batch, |b, &batch| {
                b.iter_batched(
                    || {
                        next = (next + batch) % (QUERY_POOL - batch);
                        search_request(&queries[next..next + batch])
                    },
                    |mut req| {
                        call(e, &mut req);
                        req
                    },
                    BatchSize::SmallInput,
                )
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
