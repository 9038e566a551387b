//! `flotilla bench` in tiny sizes: every scenario produces every row it promises, checks what
//! it gets back (and fails on a wrong answer), and writes the same figures as JSON. No time is
//! asserted: the figures of a tiny run mean nothing.

mod common;

use common::within;
use flotilla::bench::target::Mode;
use flotilla::bench::vector_search::{IndexPath, Variant};
use flotilla::bench::{self, BenchConfig, Cause, Report, RunInfo, Scenario};
use serde_json::json;

const MODES: [&str; 2] = ["in-process", "gRPC"];

/// The figure exists, has every repeat, and min ≤ median ≤ max.
fn assert_figure(r: &Report, scenario: &str, variant: &str, mode: &str, metric: &str, n: usize) {
    let f = r
        .figure(scenario, variant, mode, metric)
        .unwrap_or_else(|| panic!("no figure {scenario} / {variant} / {mode} / {metric}"));
    assert_eq!(f.repeats, n, "{f:?}");
    assert!(f.min.is_finite() && f.max.is_finite(), "{f:?}");
    assert!(f.min <= f.median && f.median <= f.max, "{f:?}");
    assert!(f.min >= 0.0, "{f:?}");
}

/// The check exists and every answer it counted was right; returns its total.
fn assert_check(r: &Report, scenario: &str, variant: &str, mode: &str, what: &str) -> u64 {
    let c = r
        .checks
        .iter()
        .find(|c| {
            c.scenario == scenario && c.variant == variant && c.mode == mode && c.what == what
        })
        .unwrap_or_else(|| panic!("no check {scenario} / {variant} / {mode} / {what}"));
    assert_eq!(c.passed, c.total, "{c:?}");
    c.total
}

async fn run(s: Scenario, cfg: &BenchConfig) -> Report {
    within(300, bench::run(s, cfg))
        .await
        .expect("the scenario runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noop_measures_every_replica_client_and_mode_beside_the_bare_echo() {
    let cfg = BenchConfig::tiny();
    let n = cfg.repeats;
    let r = run(Scenario::Noop, &cfg).await;
    let metrics = ["throughput", "latency p50", "latency p99", "latency p99.9"];
    for &clients in &cfg.noop.clients {
        let echo = bench::noop::echo_variant(clients);
        for m in metrics {
            assert_figure(&r, "noop", &echo, "gRPC", m, n);
        }
        let total = assert_check(&r, "noop", &echo, "gRPC", "answers hold the doc posted");
        assert_eq!(total, (cfg.noop.posts_grpc * n) as u64);
        for &replicas in &cfg.noop.replicas {
            let v = bench::noop::variant(replicas, clients);
            for mode in MODES {
                for m in metrics {
                    assert_figure(&r, "noop", &v, mode, m, n);
                }
                let posts = if mode == "gRPC" {
                    cfg.noop.posts_grpc
                } else {
                    cfg.noop.posts_in_process
                };
                let total = assert_check(&r, "noop", &v, mode, "answers hold the doc posted");
                assert_eq!(total, (posts * n) as u64, "{v} {mode}");
            }
        }
    }
    let startup = "3 replicas, empty ExactNNIndexer";
    for m in ["start", "stop"] {
        assert_figure(&r, "noop", startup, "in-process", m, n);
    }
    if cfg!(target_os = "linux") {
        // Read at the first start only: later ones reuse what the first left behind.
        for m in ["process RSS after start", "RSS added by the Deployment"] {
            assert_figure(&r, "noop", startup, "in-process", m, 1);
        }
        assert!(
            r.comparisons
                .iter()
                .any(|c| c.what.contains("RSS") && c.target.as_deref() == Some("< 30 MiB"))
        );
    }
    assert_check(&r, "noop", startup, "in-process", "/count answers 0");
    // The ratios to the bare echo, and Jina's quoted figures for the sequential client.
    let vs_echo = r
        .comparisons
        .iter()
        .filter(|c| c.against.starts_with("bare tonic echo"))
        .count();
    assert!(vs_echo >= cfg.noop.replicas.len() * cfg.noop.clients.len());
    let jina: Vec<_> = r
        .comparisons
        .iter()
        .filter(|c| c.against.starts_with(bench::jina::SOURCE))
        .collect();
    assert!(
        jina.iter()
            .any(|c| c.baseline == bench::jina::NOOP_RAW_SEQ_RPS
                && c.target.as_deref() == Some("≥ 20× Jina")
                && c.met == Some(c.ratio >= 20.0)),
        "{jina:?}"
    );
    // Issue 6's in-process target, judged on the busiest 1-replica row.
    let busiest = cfg.noop.clients.iter().copied().max().unwrap_or(1);
    let inproc = r
        .comparisons
        .iter()
        .find(|c| c.target.as_deref() == Some("≥ 200,000 posts/s"))
        .expect("the in-process target row");
    assert_eq!(
        inproc.what,
        format!("in-process, {}: posts/s", bench::noop::variant(1, busiest))
    );
    assert_eq!(inproc.met, Some(inproc.flotilla >= 200_000.0));
    for c in &r.comparisons {
        assert!((c.ratio - c.flotilla / c.baseline).abs() < 1e-9, "{c:?}");
    }
    let table = r.table("noop");
    assert!(table.contains("| 3 replicas · 4 clients "), "{table}");
    assert!(table.contains(bench::jina::SOURCE), "{table}");
    assert!(table.contains(bench::jina::SOURCE_RESULTS), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bottleneck_runs_both_replica_counts_and_checks_who_served_what() {
    let cfg = BenchConfig {
        // A margin well above scheduling noise: a /fast call must finish before a /slow one.
        bottleneck: bench::bottleneck::BottleneckConfig { slow_ms: 60 },
        ..BenchConfig::tiny()
    };
    let n = cfg.repeats;
    let r = run(Scenario::Bottleneck, &cfg).await;
    for mode in MODES {
        for replicas in [1, 2] {
            let v = bench::bottleneck::variant(replicas);
            assert_figure(&r, "bottleneck", &v, mode, "wall time of the 4 posts", n);
            assert_figure(&r, "bottleneck", &v, mode, "wall / one slow call", n);
        }
        let total = assert_check(
            &r,
            "bottleneck",
            "2 replicas",
            mode,
            "the two /slow posts served by different replicas",
        );
        assert_eq!(total, n as u64);
        assert_check(
            &r,
            "bottleneck",
            "1 replica",
            mode,
            "every post served by the one replica",
        );
    }
    assert!(
        r.comparisons
            .iter()
            .any(|c| c.target.as_deref() == Some("≤ 1.05×"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_checks_the_reduced_matches_of_every_answer() {
    let cfg = BenchConfig::tiny();
    let n = cfg.repeats;
    let r = run(Scenario::Fanout, &cfg).await;
    let what = "answers hold the posted matches once, plus one per branch";
    for &clients in &cfg.fanout.clients {
        let l = bench::load::clients_label(clients);
        for base in [bench::fanout::FANOUT, bench::fanout::SINGLE] {
            let v = format!("{base} · {l}");
            for mode in MODES {
                for m in ["throughput", "latency p50", "latency p99"] {
                    assert_figure(&r, "fanout", &v, mode, m, n);
                }
                let total = assert_check(&r, "fanout", &v, mode, what);
                assert_eq!(total, (cfg.fanout.posts * n) as u64);
            }
        }
        let echo = format!("{} · {l}", bench::fanout::ECHO);
        assert_figure(&r, "fanout", &echo, "gRPC", "throughput", n);
        assert!(
            r.figure("fanout", &echo, "in-process", "throughput")
                .is_none()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vector_search_agrees_with_the_bare_loop_in_every_variant_and_mode() {
    let cfg = BenchConfig::tiny();
    let n = cfg.repeats;
    let vc = &cfg.vector;
    let r = run(Scenario::VectorSearch, &cfg).await;
    let s = "vector-search";
    let ids = "top-k ids identical to the bare loop's";
    for t in [1, vc.threads] {
        let bare = bench::vector_search::bare_variant(t);
        assert_figure(&r, s, &bare, "no runtime", "search rate", n);
        assert_figure(
            &r,
            s,
            &bare,
            "no runtime",
            "index time (normalise + copy)",
            n,
        );
        let direct = bench::vector_search::direct_variant(t);
        for m in ["index time", "index rate", "search time", "search rate"] {
            assert_figure(&r, s, &direct, "no runtime", m, n);
        }
        assert_eq!(
            r.checks
                .iter()
                .find(|c| c.variant == direct && c.what == ids)
                .map(|c| c.total),
            Some((vc.q * n) as u64)
        );
    }
    // The limit of dynamic batching: the Executor given the same batches, no runtime.
    let batched =
        bench::vector_search::direct_batched_variant(vc.threads, flotilla::executors::SEARCH_BATCH);
    assert_figure(&r, s, &batched, "no runtime", "search rate", n);
    assert_eq!(
        vc.variants.len(),
        6,
        "1 replica, unbatched, unbatched with threads=1, 3 replicas, 2 shards, 3 stateful"
    );
    for variant in &vc.variants {
        for mode in MODES {
            let v = &variant.name;
            for m in ["search time", "search rate"] {
                assert_figure(&r, s, v, mode, m, n);
            }
            match variant.index {
                IndexPath::Post => {
                    assert_figure(&r, s, v, mode, "index time", n);
                    assert_figure(&r, s, v, mode, "index rate", n);
                }
                IndexPath::PreloadEveryReplica => {
                    let m = "start time (every replica indexes all docs)";
                    assert_figure(&r, s, v, mode, m, n);
                }
            }
            // Every query of every repeat was compared with the bare loop; the run fails on a
            // wrong one, so the only other outcome is a rounding-level tie.
            let c = r
                .checks
                .iter()
                .find(|c| c.variant == *v && c.mode == mode && c.what == ids)
                .unwrap_or_else(|| panic!("no id check for {v} {mode}"));
            assert_eq!(c.total, (vc.q * n) as u64, "{c:?}");
            if c.passed < c.total {
                assert_check(
                    &r,
                    s,
                    v,
                    mode,
                    "top-k ids equal to the bare loop's up to rounding-level ties",
                );
            }
        }
    }
    // Ratios to the limit for every variant and mode.
    let to_limit = r
        .comparisons
        .iter()
        .filter(|c| c.against.starts_with("the limit"))
        .count();
    assert_eq!(to_limit, vc.variants.len() * 2);
    let with_batches = r
        .comparisons
        .iter()
        .filter(|c| c.against == format!("the limit with batches: {batched}"))
        .count();
    let batching = vc.variants.iter().filter(|v| v.batch > 1).count();
    assert_eq!(batching, 4, "every variant but the two unbatched ones");
    assert_eq!(
        with_batches,
        batching * 2,
        "each batching variant, in-process and gRPC"
    );
    // Issue 5's comparison: the stateful index time against the plain one of the same run.
    assert!(
        r.comparisons.iter().any(|c| c.what.contains("stateful")
            && c.what.contains("index time")
            && c.target.as_deref() == Some("≤ 1.5×")),
        "{:?}",
        r.comparisons
    );
    // The seed's own index and search times beside ours; issue 6's absolute targets (< 2 s,
    // < 3 s) are judged at the seed's sizes only, which this small run is not.
    for seed in [bench::jina::SEED_R1_INDEX_S, bench::jina::SEED_R1_SEARCH_S] {
        let c = r
            .comparisons
            .iter()
            .find(|c| c.baseline == seed && c.unit == "s")
            .unwrap_or_else(|| panic!("no comparison with the seed's {seed} s"));
        assert_eq!(c.target, None, "{c:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vector_search_fails_when_a_variant_finds_the_wrong_neighbours() {
    // Dot product on unnormalised vectors ranks other docs first than cosine does.
    let wrong = Variant {
        name: "dot instead of cosine".into(),
        index: IndexPath::Post,
        threads: 1,
        batch: 16,
        configure: |d, _| d.uses_with(json!({"dim": 128, "metric": "dot"})),
    };
    let mut cfg = BenchConfig::tiny();
    cfg.repeats = 1;
    cfg.vector.variants = vec![wrong];
    let err = within(300, bench::run(Scenario::VectorSearch, &cfg))
        .await
        .expect_err("a wrong top-10 fails the run");
    assert!(matches!(err.cause, Cause::Wrong(_)), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("dot instead of cosine, in-process"), "{msg}");
    assert!(msg.contains("query q"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_file_holds_every_figure_of_the_table() {
    let mut cfg = BenchConfig::tiny();
    cfg.repeats = 1;
    let r = run(Scenario::Bottleneck, &cfg).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench.json");
    r.write_json(&path, &RunInfo::new(Scenario::Bottleneck, &cfg))
        .expect("written");
    let text = std::fs::read_to_string(&path).expect("read back");
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(v["about"]["scenario"], "bottleneck");
    assert_eq!(v["about"]["repeats"], 1);
    let figures = v["figures"].as_array().expect("figures");
    assert_eq!(figures.len(), r.figures.len());
    assert!(!figures.is_empty());
    for (j, f) in figures.iter().zip(&r.figures) {
        for key in ["scenario", "variant", "mode", "metric", "unit"] {
            assert!(j[key].is_string(), "{key} in {j}");
        }
        for key in ["min", "median", "max"] {
            assert!(j[key].is_number(), "{key} in {j}");
        }
        assert_eq!(j["variant"], f.variant.as_str());
        assert_eq!(j["metric"], f.metric.as_str());
        // serde_json's float parsing may differ from the value written in the last bit.
        let median = j["median"].as_f64().expect("a number");
        assert!(
            (median - f.median).abs() <= 1e-12 * f.median.abs().max(1.0),
            "{j}"
        );
        assert_eq!(j["repeats"], 1);
    }
    assert_eq!(v["checks"].as_array().map(Vec::len), Some(r.checks.len()));
    assert_eq!(
        v["comparisons"].as_array().map(Vec::len),
        Some(r.comparisons.len())
    );
    // The modes as the table names them.
    assert_eq!(Mode::InProcess.label(), "in-process");
}

#[test]
fn all_runs_the_four_scenarios_noop_first() {
    assert_eq!(
        Scenario::All.expand(),
        vec![
            Scenario::Noop,
            Scenario::Bottleneck,
            Scenario::Fanout,
            Scenario::VectorSearch
        ]
    );
    assert_eq!(
        Scenario::VectorSearch.expand(),
        vec![Scenario::VectorSearch]
    );
}

#[test]
fn the_cli_parses_bench() {
    use clap::Parser;
    use flotilla::cli::{Cli, Command};
    let cli = Cli::try_parse_from([
        "flotilla",
        "bench",
        "vector-search",
        "--quick",
        "--json",
        "out.json",
        "--repeats",
        "2",
        "--variant",
        "stateful",
    ])
    .expect("parses");
    match cli.command {
        Command::Bench {
            scenario,
            quick,
            json,
            repeats,
            variant,
        } => {
            assert_eq!(scenario, Scenario::VectorSearch);
            assert!(quick);
            assert_eq!(json.as_deref(), Some(std::path::Path::new("out.json")));
            assert_eq!(repeats, Some(2));
            assert_eq!(variant.as_deref(), Some("stateful"));
        }
        other => panic!("{other:?}"),
    }
    assert!(Cli::try_parse_from(["flotilla", "bench", "everything"]).is_err());
    assert!(Cli::try_parse_from(["flotilla", "bench", "noop", "--repeats", "0"]).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_variant_filter_that_matches_nothing_is_refused_naming_the_variants() {
    use clap::Parser;
    use flotilla::cli::Cli;
    let cli = Cli::try_parse_from([
        "flotilla",
        "bench",
        "vector-search",
        "--quick",
        "--variant",
        "no such variant",
    ])
    .expect("parses");
    let err = within(60, flotilla::cli::run(cli))
        .await
        .expect_err("nothing to run");
    let msg = err.to_string();
    assert!(
        msg.contains("\"no such variant\" matches no vector-search variant")
            && msg.contains("3 stateful replicas (Raft)"),
        "{msg}"
    );
}
