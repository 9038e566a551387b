//! Jina's figures on this project's machine. `flotilla bench` runs no Python: these are printed
//! beside flotilla's figures, never re-measured by it.
//!
//! The noop and exactnn figures were re-measured on 2026-12-06 (07:09–07:17 UTC) on the current
//! host (Intel Xeon, Sapphire Rapids, 2 cores; the host changed again: the figures of 2026-11-23
//! were an AMD EPYC's, where Jina ran its index half as fast), with the anchor scripts of
//! `../shared/anchors/jina/` and the interop venv (Jina 3.34.0, docarray 0.40.1), machine
//! otherwise idle (load1 0.9–1.9):
//!
//! ```text
//! noop_throughput.py --replicas 1 --modes raw_seq raw8 async8 seq stream
//!   raw_seq 263.5 rps p50 3.53 ms · raw8 598.4 · async8 377.4 · seq 133.7 · stream 758.8
//! exactnn_bench.py --replicas 1
//!   index 100,000 in 18.62 s (5,369 docs/s) · 50 queries streamed 4.17 s (11.99 QPS)
//! exactnn_bench.py --replicas 3 --stateful --prefetch 10
//!   index 100,000 in 60.99 s (1,640 docs/s), all 3 replicas hold 100,000 · 11.30 QPS
//! ```
//!
//! The start, memory and slow/fast figures are RESULTS.md's (2026-11-22, an earlier host).

/// How the re-measured figures are labelled in the tables.
pub const SOURCE: &str = "Jina (measured 2026-12-06 on this host)";
/// How the figures quoted from RESULTS.md are labelled.
pub const SOURCE_RESULTS: &str = "Jina (RESULTS.md, 2026-11-22, an earlier host)";

/// noop, 1 replica, one persistent gRPC channel, unary, sequential (`raw_seq`).
pub const NOOP_RAW_SEQ_RPS: f64 = 263.5;
/// Its p50, in µs.
pub const NOOP_RAW_SEQ_P50_US: f64 = 3530.0;
/// noop, 1 replica, persistent channel, 8 concurrent unary calls (`raw8`): Jina's highest
/// request rate with concurrent clients.
pub const NOOP_RAW8_RPS: f64 = 598.4;
/// noop, 1 replica, 8 asyncio Jina clients (`async8`).
pub const NOOP_ASYNC8_RPS: f64 = 377.4;
/// noop, 1 replica, sequential `Client.post` of one doc (`seq`).
pub const NOOP_CLIENT_SEQ_RPS: f64 = 133.7;

/// Warm start of a 3-replica Deployment (`Deployment.__enter__`), fastest of 6, in ms.
pub const START_R3_WARM_MS: f64 = 320.0;
/// Idle RSS of a 3-replica no-op Deployment, summed over its 5 processes, lower bound, MiB.
pub const RSS_R3_IDLE_MIB: f64 = 491.0;

/// The slow/fast demo with `time.sleep(5)`: request phase with 1 replica (run 1), seconds.
pub const SLOW_FAST_R1_S: f64 = 10.17;
/// The same with 2 replicas (run 1), seconds.
pub const SLOW_FAST_R2_S: f64 = 5.17;
/// The slow call of that demo, seconds.
pub const SLOW_FAST_SLOW_S: f64 = 5.0;

/// exactnn, 1 replica, N = 100,000, seed form: index docs/s.
pub const EXACTNN_R1_INDEX_DOCS_PER_S: f64 = 5369.0;
/// Its search: Q = 50 in one streamed post with `request_size=1`, queries per second.
pub const EXACTNN_R1_QPS: f64 = 11.99;
/// exactnn, 3 stateful replicas (RAFT), client prefetch 10 (Jina's default prefetch wedges):
/// seconds to index N = 100,000.
pub const EXACTNN_RAFT_INDEX_S: f64 = 60.99;
/// The seed's own figure (its machine): 1,000 queries in 386 s.
pub const SEED_R1_QPS: f64 = 2.5;
/// The seed's own figure (its machine): 1 replica indexes 100,000 docs in 18.9 s.
pub const SEED_R1_INDEX_S: f64 = 18.9;
/// The seed's own figure (its machine): 1,000 queries, one per request, in 386 s.
pub const SEED_R1_SEARCH_S: f64 = 386.0;
