//! Jina's default reduce (`flotilla::actors::reduce::reduce`) of the results of N shards or
//! joined branches, and the built-in `MatchMerger` (reduce, then each query's matches sorted by
//! score and cut to `top_k`) on the same shard results.
//!
//! `cargo bench --bench reduce`; throughput figures are input docs per second (N parts × 100
//! query docs; the matches inside them are not counted). Inputs are built outside the timing
//! (`iter_batched`, since both consume them) and the result is dropped outside it. Cases:
//! - `reduce_shards/N`, N = 2, 4, 8: N ALL-polled shards each return the same 100 query docs
//!   (id, text, 128-d embedding), each with 10 scored matches (id, text, `cosine` score) that are
//!   that shard's own nearest neighbours, so the result has 100 docs of 10 × N matches.
//! - `match_merger/N`: the same N parts as the `docs_matrix` of one `/search` request to
//!   `MatchMerger` (`top_k: 10`), called as a replica calls a handler (no runtime), so the result
//!   has 100 docs of 10 matches, best first.
//! - `reduce_branches/N`, N = 2, 4, 8: N joined branches each return the same 100 docs (id,
//!   text, a `source` tag) with one tag of their own added; the result has 100 docs of N + 1
//!   tags.

use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use flotilla::actors::executor::{Context, DynExecutor, Output, Route};
use flotilla::actors::reduce::reduce;
use flotilla::actors::request::{Part, Request};
use flotilla::executors::builtin_registry;
use flotilla::{Doc, DocList, NdArray};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DOCS: usize = 100;
const MATCHES: usize = 10;
const DIM: usize = 128;
const SHARDS: [usize; 3] = [2, 4, 8];

/// The query docs every shard gets and returns: id, text and embedding.
fn queries(rng: &mut StdRng) -> DocList {
    (0..DOCS)
        .map(|i| {
            Doc::with_id(format!("q{i}"))
                .with_text(format!("query number {i}"))
                .with_embedding(NdArray::from_f32(
                    (0..DIM).map(|_| rng.random::<f32>()).collect(),
                ))
        })
        .collect()
}

/// What shard `s` returns: the queries, each with the shard's own 10 matches, best first.
fn shard_result(queries: &DocList, s: usize, rng: &mut StdRng) -> DocList {
    queries
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let mut scores: Vec<f64> = (0..MATCHES).map(|_| rng.random::<f64>()).collect();
            scores.sort_by(|a, b| b.total_cmp(a));
            let matches: DocList = scores
                .into_iter()
                .enumerate()
                .map(|(j, score)| {
                    let row = s * 1_000_000 + i * MATCHES + j;
                    Doc::with_id(format!("{row}"))
                        .with_text(format!("I am document {row}"))
                        .with_score("cosine", score)
                })
                .collect();
            q.clone().with("matches", matches)
        })
        .collect()
}

fn shard_results(n: usize, rng: &mut StdRng) -> Vec<DocList> {
    let q = queries(rng);
    (0..n).map(|s| shard_result(&q, s, rng)).collect()
}

/// What joined branch `b` returns: the same docs, each with a tag of the branch's own.
fn branch_results(n: usize) -> Vec<DocList> {
    (0..n)
        .map(|b| {
            (0..DOCS)
                .map(|i| {
                    Doc::with_id(format!("d{i}"))
                        .with_text(format!("document number {i}"))
                        .with_tag("source", "gateway")
                        .with_tag(format!("branch{b}"), i as i64)
                })
                .collect()
        })
        .collect()
}

fn ctx() -> Context {
    Context::new("merger", 0, 1, 0, 1)
}

fn match_merger() -> Box<dyn DynExecutor> {
    builtin_registry()
        .get("MatchMerger")
        .expect("registered")
        .build(&serde_json::json!({"top_k": MATCHES}), &ctx())
        .expect("built")
}

fn merge_request(parts: &[DocList]) -> Request {
    let mut req = Request::new("/search", DocList::new());
    req.docs_matrix = parts
        .iter()
        .enumerate()
        .map(|(s, docs)| Part {
            from: format!("indexer/shard-{s}").into(),
            docs: docs.clone(),
        })
        .collect();
    req
}

fn merge(e: &mut Box<dyn DynExecutor>, req: &mut Request) -> DocList {
    let Route::Sync(h) = e.route(&req.endpoint) else {
        panic!("{} is not a sync endpoint", req.endpoint)
    };
    match e.call_sync(h, req, &ctx()).expect("the handler succeeds") {
        Output::Docs(d) => d,
        other => panic!("MatchMerger returned {other:?}"),
    }
}

fn bench(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(6);
    let shards: Vec<(usize, Vec<DocList>)> = SHARDS
        .iter()
        .map(|&n| (n, shard_results(n, &mut rng)))
        .collect();
    let branches: Vec<(usize, Vec<DocList>)> =
        SHARDS.iter().map(|&n| (n, branch_results(n))).collect();
    let mut merger = match_merger();

    // What is measured does what it should.
    for (n, parts) in &shards {
        let r = reduce(parts.clone());
        assert_eq!(r.len(), DOCS);
        assert!(
            r.iter()
                .all(|d| d.matches().map(|m| m.len()) == Some(MATCHES * n))
        );
        let r = merge(&mut merger, &mut merge_request(parts));
        assert_eq!(r.len(), DOCS);
        for d in r.iter() {
            let m = d.matches().expect("matches");
            assert_eq!(m.len(), MATCHES);
            let scores: Vec<f64> = m
                .iter()
                .map(|x| x.score("cosine").expect("score"))
                .collect();
            assert!(scores.windows(2).all(|w| w[0] >= w[1]), "best first");
        }
    }
    for (n, parts) in &branches {
        let r = reduce(parts.clone());
        assert_eq!(r.len(), DOCS);
        assert!(r.iter().all(|d| d.tags().map(|t| t.len()) == Some(n + 1)));
    }

    let mut g = c.benchmark_group("reduce");
    g.sample_size(20);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
    for (n, parts) in &shards {
        g.throughput(Throughput::Elements((n * DOCS) as u64));
        g.bench_with_input(BenchmarkId::new("reduce_shards", n), parts, |b, parts| {
            b.iter_batched(|| parts.clone(), reduce, BatchSize::SmallInput)
        });
        g.bench_with_input(BenchmarkId::new("match_merger", n), parts, |b, parts| {
            b.iter_batched(
                || merge_request(parts),
                |mut req| (merge(&mut merger, &mut req), req),
                BatchSize::SmallInput,
            )
        });
    }
    for (n, parts) in &branches {
        g.throughput(Throughput::Elements((n * DOCS) as u64));
        g.bench_with_input(BenchmarkId::new("reduce_branches", n), parts, |b, parts| {
            b.iter_batched(|| parts.clone(), reduce, BatchSize::SmallInput)
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
