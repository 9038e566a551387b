//! Jina's figures on this project's machine, quoted from
//! `../shared/anchors/jina/RESULTS.md` (Jina 3.34.0, docarray 0.41.0, Python 3.11.7, 2 cores).
//! `flotilla bench` runs no Python: these are printed beside flotilla's figures, never
//! re-measured.

/// How the quoted figures are labelled in the tables.
pub const SOURCE: &str = "Jina (measured 2026-11-22, RESULTS.md)";

/// noop, 1 replica, one persistent gRPC channel, unary, sequential (`raw_seq`, run 2).
pub const NOOP_RAW_SEQ_RPS: f64 = 258.8;
/// Its p50, in µs.
pub const NOOP_RAW_SEQ_P50_US: f64 = 3850.0;
/// noop, 1 replica, persistent channel, 8 concurrent unary calls (`raw8`, run 2): Jina's
/// highest request rate with concurrent clients.
pub const NOOP_RAW8_RPS: f64 = 609.2;
/// noop, 1 replica, 8 asyncio Jina clients (`async8`, run 2).
pub const NOOP_ASYNC8_RPS: f64 = 398.2;
/// noop, 1 replica, sequential `Client.post` of one doc (`seq`, run 2).
pub const NOOP_CLIENT_SEQ_RPS: f64 = 136.6;

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

/// exactnn, 1 replica, N = 100,000, seed form, quiet machine (run C): index docs/s.
pub const EXACTNN_R1_INDEX_DOCS_PER_S: f64 = 4328.0;
/// Its search: Q = 50 in one streamed post with `request_size=1`, queries per second.
pub const EXACTNN_R1_QPS: f64 = 10.73;
/// The seed's own figure (its machine): 1,000 queries in 386 s.
pub const SEED_R1_QPS: f64 = 2.5;
