//! `flotilla bench`: flotilla measured beside its baselines, in one run, on this machine.
//!
//! Scenarios (each in its own module):
//! - [`noop`]: posts/s and latency percentiles of a no-op Executor, 1/16/64 concurrent clients,
//!   1 and 3 replicas, in-process and through the gRPC gateway, beside a bare tonic unary echo;
//!   also the start time and RSS of a 3-replica Deployment with an empty `ExactNNIndexer`.
//! - [`bottleneck`]: the seed's slow/fast demo with 1 and 2 replicas.
//! - [`fanout`]: three parallel branches joined with reduce, docs carrying matches.
//! - [`vector_search`]: the seed's exact nearest-neighbour workload beside the same search as a
//!   plain loop ("the limit").
//!
//! Every figure is measured `repeats` times and reported as min / median / max. Scenarios also
//! check what they get back (counts, top-10 ids against the bare loop) and fail rather than
//! report figures of a wrong run. Jina's own figures are not measured here: they are quoted
//! from `RESULTS.md` ([`jina`]).

pub mod baseline;
pub mod bottleneck;
pub mod fanout;
pub mod jina;
pub mod load;
pub mod noop;
pub mod stats;
pub mod target;
pub mod vector_search;

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::Path;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::grpc::client::ClientError;
use stats::Summary;

// ---------------------------------------------------------------------------------------------
// Scenarios and sizes.

/// What `flotilla bench` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// The seed's exact nearest-neighbour search beside a bare loop.
    VectorSearch,
    /// No-op posts: throughput and latency beside a bare tonic echo.
    Noop,
    /// The seed's slow/fast demo with 1 and 2 replicas.
    Bottleneck,
    /// Three parallel branches joined with reduce.
    Fanout,
    /// All four, in the order noop, bottleneck, fanout, vector-search (noop first, so that its
    /// RSS reading sees a fresh process).
    All,
}

impl Scenario {
    /// The scenario's name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::VectorSearch => "vector-search",
            Scenario::Noop => "noop",
            Scenario::Bottleneck => "bottleneck",
            Scenario::Fanout => "fanout",
            Scenario::All => "all",
        }
    }

    /// The single scenarios this one runs, in order.
    pub fn expand(self) -> Vec<Scenario> {
        match self {
            Scenario::All => vec![
                Scenario::Noop,
                Scenario::Bottleneck,
                Scenario::Fanout,
                Scenario::VectorSearch,
            ],
            s => vec![s],
        }
    }
}

/// Sizes of every scenario. [`BenchConfig::full`] is the issue's, [`BenchConfig::quick`] runs
/// all four scenarios in a few seconds; tests build smaller ones.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Measurements per figure.
    pub repeats: usize,
    /// Draw a progress bar on stderr (only when stderr is a terminal).
    pub progress: bool,
    /// Said in the table's title: `full sizes`, `quick`.
    pub label: String,
    pub noop: noop::NoopConfig,
    pub bottleneck: bottleneck::BottleneckConfig,
    pub fanout: fanout::FanoutConfig,
    pub vector: vector_search::VectorConfig,
}

impl BenchConfig {
    /// The sizes: N = 100,000 docs, Q = 1,000 queries, 3 repeats.
    pub fn full() -> Self {
        BenchConfig {
            repeats: 3,
            progress: true,
            label: "full sizes".into(),
            noop: noop::NoopConfig::full(),
            bottleneck: bottleneck::BottleneckConfig::full(),
            fanout: fanout::FanoutConfig::full(),
            vector: vector_search::VectorConfig::full(),
        }
    }

    /// Small enough that all four scenarios take a few seconds: N = 5,000, Q = 100, fewer
    /// posts, one repeat.
    pub fn quick() -> Self {
        BenchConfig {
            repeats: 1,
            progress: true,
            label: "quick".into(),
            noop: noop::NoopConfig::quick(),
            bottleneck: bottleneck::BottleneckConfig::quick(),
            fanout: fanout::FanoutConfig::quick(),
            vector: vector_search::VectorConfig::quick(),
        }
    }

    /// Tiny sizes for tests: every row, every check, no meaningful times.
    #[doc(hidden)]
    pub fn tiny() -> Self {
        BenchConfig {
            repeats: 2,
            progress: false,
            label: "tiny".into(),
            noop: noop::NoopConfig::tiny(),
            bottleneck: bottleneck::BottleneckConfig::tiny(),
            fanout: fanout::FanoutConfig::tiny(),
            vector: vector_search::VectorConfig::tiny(),
        }
    }
}

/// Runs `scenario` (every one of them for [`Scenario::All`]) and returns its figures.
pub async fn run(scenario: Scenario, cfg: &BenchConfig) -> Result<Report, BenchError> {
    let progress = Progress::new(cfg.progress);
    let mut report = Report::default();
    for s in scenario.expand() {
        let r = match s {
            Scenario::Noop => noop::run(cfg, &progress).await,
            Scenario::Bottleneck => bottleneck::run(cfg, &progress).await,
            Scenario::Fanout => fanout::run(cfg, &progress).await,
            Scenario::VectorSearch => vector_search::run(cfg, &progress).await,
            Scenario::All => Ok(Report::default()),
        };
        match r {
            Ok(r) => report.absorb(r),
            Err(e) => {
                progress.finish();
                return Err(e);
            }
        }
    }
    progress.finish();
    Ok(report)
}

// ---------------------------------------------------------------------------------------------
// Errors.

/// A benchmark that could not run, or got a wrong answer: what was being done, and why.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {cause}")]
pub struct BenchError {
    pub context: String,
    #[source]
    pub cause: Cause,
}

/// Why a benchmark failed.
#[derive(Debug, thiserror::Error)]
pub enum Cause {
    #[error(transparent)]
    Flotilla(#[from] crate::Error),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("gRPC status {:?}: {}", .0.code(), .0.message())]
    Status(#[from] tonic::Status),
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// The answer was wrong (a count, an id, a missing match).
    #[error("wrong answer: {0}")]
    Wrong(String),
    /// A measuring task panicked or was cancelled.
    #[error("a measuring task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl BenchError {
    /// A wrong answer found while doing `context`.
    pub fn wrong(context: impl Into<String>, what: impl Into<String>) -> Self {
        BenchError {
            context: context.into(),
            cause: Cause::Wrong(what.into()),
        }
    }
}

/// Adds what was being done to an error.
pub trait Ctx<T> {
    fn ctx(self, context: impl Into<String>) -> Result<T, BenchError>;
}

impl<T, E: Into<Cause>> Ctx<T> for Result<T, E> {
    fn ctx(self, context: impl Into<String>) -> Result<T, BenchError> {
        self.map_err(|e| BenchError {
            context: context.into(),
            cause: e.into(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Figures, comparisons, checks.

/// One measured quantity over every repeat.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Figure {
    pub scenario: String,
    pub variant: String,
    pub mode: String,
    pub metric: String,
    pub unit: String,
    pub min: f64,
    pub median: f64,
    pub max: f64,
    pub repeats: usize,
}

/// A flotilla figure (its median) beside a baseline or a target.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    pub scenario: String,
    /// What is compared (`gRPC, 1 replica, 16 clients: posts/s`).
    pub what: String,
    pub flotilla: f64,
    /// The baseline's figure (a median of this run, or a quoted figure).
    pub baseline: f64,
    pub unit: String,
    /// What the baseline is (`bare tonic echo, 16 clients`, `Jina (measured …, RESULTS.md)`).
    pub against: String,
    /// `flotilla / baseline`.
    pub ratio: f64,
    pub higher_is_better: bool,
    /// The target, when there is one (`≥ 0.70×`, `< 150 µs`).
    pub target: Option<String>,
    /// Whether the target was met.
    pub met: Option<bool>,
}

/// A correctness check: how many answers were right.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Check {
    pub scenario: String,
    pub variant: String,
    pub mode: String,
    pub what: String,
    pub passed: u64,
    pub total: u64,
}

/// Everything a run produced.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    pub figures: Vec<Figure>,
    pub comparisons: Vec<Comparison>,
    pub checks: Vec<Check>,
    pub notes: Vec<String>,
}

impl Report {
    fn absorb(&mut self, other: Report) {
        self.figures.extend(other.figures);
        self.comparisons.extend(other.comparisons);
        self.checks.extend(other.checks);
        self.notes.extend(other.notes);
    }

    /// The figure of `scenario`, `variant`, `mode` and `metric`.
    pub fn figure(
        &self,
        scenario: &str,
        variant: &str,
        mode: &str,
        metric: &str,
    ) -> Option<&Figure> {
        self.figures.iter().find(|f| {
            f.scenario == scenario && f.variant == variant && f.mode == mode && f.metric == metric
        })
    }

    /// The figures of one scenario.
    pub fn of(&self, scenario: &str) -> impl Iterator<Item = &Figure> {
        self.figures.iter().filter(move |f| f.scenario == scenario)
    }

    /// The tables: one per scenario (min / median / max), then the comparisons and checks.
    pub fn table(&self, title: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{title}\n");
        let mut scenarios: Vec<&str> = Vec::new();
        for f in &self.figures {
            if !scenarios.contains(&f.scenario.as_str()) {
                scenarios.push(&f.scenario);
            }
        }
        for s in scenarios {
            let rows: Vec<Vec<String>> = self
                .of(s)
                .map(|f| {
                    vec![
                        f.variant.clone(),
                        f.mode.clone(),
                        f.metric.clone(),
                        f.unit.clone(),
                        number(f.min),
                        number(f.median),
                        number(f.max),
                        f.repeats.to_string(),
                    ]
                })
                .collect();
            let _ = writeln!(out, "### {s}\n");
            out.push_str(&markdown(
                &[
                    "variant", "mode", "metric", "unit", "min", "median", "max", "n",
                ],
                &[false, false, false, false, true, true, true, true],
                &rows,
            ));
            out.push('\n');
        }
        if !self.comparisons.is_empty() {
            let rows: Vec<Vec<String>> = self
                .comparisons
                .iter()
                .map(|c| {
                    let verdict = match (&c.target, c.met) {
                        (Some(t), Some(true)) => format!("{t}: met"),
                        (Some(t), Some(false)) => format!("{t}: MISSED"),
                        (Some(t), None) => t.clone(),
                        (None, _) => String::new(),
                    };
                    vec![
                        c.scenario.clone(),
                        c.what.clone(),
                        format!("{} {}", number(c.flotilla), c.unit),
                        format!("{} {}", number(c.baseline), c.unit),
                        c.against.clone(),
                        format!(
                            "{}× ({} is better)",
                            ratio(c.ratio),
                            if c.higher_is_better {
                                "higher"
                            } else {
                                "lower"
                            }
                        ),
                        verdict,
                    ]
                })
                .collect();
            let _ = writeln!(out, "### comparisons (medians)\n");
            out.push_str(&markdown(
                &[
                    "scenario",
                    "flotilla",
                    "value",
                    "baseline",
                    "baseline is",
                    "ratio",
                    "target",
                ],
                &[false, false, true, true, false, true, false],
                &rows,
            ));
            out.push('\n');
        }
        if !self.checks.is_empty() {
            let _ = writeln!(out, "### checks\n");
            for c in &self.checks {
                let _ = writeln!(
                    out,
                    "- {} / {} / {}: {} — {} of {} right",
                    c.scenario, c.variant, c.mode, c.what, c.passed, c.total
                );
            }
            out.push('\n');
        }
        if !self.notes.is_empty() {
            let _ = writeln!(out, "### notes\n");
            for n in &self.notes {
                let _ = writeln!(out, "- {n}");
            }
        }
        out
    }

    /// Writes the report as JSON (with `about`: the run's scenario, sizes and machine).
    pub fn write_json(&self, path: &Path, about: &RunInfo) -> Result<(), BenchError> {
        #[derive(Serialize)]
        struct Json<'a> {
            about: &'a RunInfo,
            figures: &'a [Figure],
            comparisons: &'a [Comparison],
            checks: &'a [Check],
            notes: &'a [String],
        }
        let json = Json {
            about,
            figures: &self.figures,
            comparisons: &self.comparisons,
            checks: &self.checks,
            notes: &self.notes,
        };
        let text = serde_json::to_string_pretty(&json).ctx("encoding the report as JSON")?;
        std::fs::write(path, text + "\n").ctx(format!("writing {}", path.display()))
    }
}

/// What a JSON report says about its run.
#[derive(Clone, Debug, Serialize)]
pub struct RunInfo {
    pub flotilla: &'static str,
    pub scenario: String,
    pub sizes: String,
    pub repeats: usize,
    pub cores: usize,
    /// Seconds since the Unix epoch when the run ended.
    pub finished_unix: u64,
}

impl RunInfo {
    pub fn new(scenario: Scenario, cfg: &BenchConfig) -> Self {
        RunInfo {
            flotilla: env!("CARGO_PKG_VERSION"),
            scenario: scenario.name().into(),
            sizes: cfg.label.clone(),
            repeats: cfg.repeats,
            cores: cores(),
            finished_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }
}

/// The cores this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A markdown table, columns padded to their widest cell; `right` aligns numbers right.
fn markdown(header: &[&str], right: &[bool], rows: &[Vec<String>]) -> String {
    let cols = header.len();
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, cell) in width.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::from("|");
        for (i, c) in cells.iter().enumerate().take(cols) {
            let pad = width[i].saturating_sub(c.chars().count());
            if right.get(i).copied().unwrap_or(false) {
                let _ = write!(s, " {}{c} |", " ".repeat(pad));
            } else {
                let _ = write!(s, " {c}{} |", " ".repeat(pad));
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(&header.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    out.push('|');
    for (i, w) in width.iter().enumerate() {
        if right.get(i).copied().unwrap_or(false) {
            let _ = write!(out, " {}: |", "-".repeat(w.saturating_sub(1)));
        } else {
            let _ = write!(out, " {} |", "-".repeat(*w));
        }
    }
    out.push('\n');
    for r in rows {
        out.push_str(&line(r));
    }
    out
}

/// A figure with as many digits as are worth reading: `123,456`, `1,234`, `123.4`, `12.34`,
/// `0.123`.
pub fn number(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    let a = x.abs();
    if a >= 1000.0 {
        let s = format!("{:.0}", a);
        let mut grouped = String::new();
        for (i, ch) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(ch);
        }
        if x < 0.0 {
            format!("-{grouped}")
        } else {
            grouped
        }
    } else if a >= 100.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

fn ratio(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// Collects one scenario's measurements, then summarises them into a [`Report`].
pub struct Recorder {
    scenario: &'static str,
    /// (variant, mode, metric, unit) and the value of each repeat, in first-recorded order.
    samples: Vec<(Key, Vec<f64>)>,
    report: Report,
    /// Report each variant's figures and checks together (see [`Recorder::by_variant`]).
    by_variant: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Key {
    variant: String,
    mode: String,
    metric: String,
    unit: String,
}

impl Recorder {
    pub fn new(scenario: &'static str) -> Self {
        Recorder {
            scenario,
            samples: Vec::new(),
            report: Report::default(),
            by_variant: false,
        }
    }

    /// For a scenario that measures its variants round by round (interleaved): the report
    /// keeps each variant's figures and checks together, variants in the order they were first
    /// recorded. Otherwise everything stays in first-recorded order.
    pub fn by_variant(mut self) -> Self {
        self.by_variant = true;
        self
    }

    /// One repeat's value of a figure.
    pub fn add(&mut self, variant: &str, mode: &str, metric: &str, unit: &str, value: f64) {
        let key = Key {
            variant: variant.into(),
            mode: mode.into(),
            metric: metric.into(),
            unit: unit.into(),
        };
        match self.samples.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(value),
            None => self.samples.push((key, vec![value])),
        }
    }

    /// The median so far of a figure.
    pub fn median(&self, variant: &str, mode: &str, metric: &str) -> Option<f64> {
        self.samples
            .iter()
            .find(|(k, _)| k.variant == variant && k.mode == mode && k.metric == metric)
            .and_then(|(_, v)| Summary::of(v))
            .map(|s| s.median)
    }

    /// Adds to a correctness check (summed over repeats).
    pub fn check(&mut self, variant: &str, mode: &str, what: &str, passed: u64, total: u64) {
        let scenario = self.scenario;
        match self.report.checks.iter_mut().find(|c| {
            c.scenario == scenario && c.variant == variant && c.mode == mode && c.what == what
        }) {
            Some(c) => {
                c.passed += passed;
                c.total += total;
            }
            None => self.report.checks.push(Check {
                scenario: scenario.into(),
                variant: variant.into(),
                mode: mode.into(),
                what: what.into(),
                passed,
                total,
            }),
        }
    }

    /// Compares the median of a figure of this run with `baseline` (a median of this run or a
    /// quoted figure). Nothing happens when the figure was not measured.
    #[allow(clippy::too_many_arguments)]
    pub fn compare(
        &mut self,
        what: &str,
        flotilla: Option<f64>,
        baseline: Option<f64>,
        unit: &str,
        against: &str,
        higher_is_better: bool,
        target: Option<(String, bool)>,
    ) {
        let (Some(f), Some(b)) = (flotilla, baseline) else {
            return;
        };
        let (target, met) = match target {
            Some((t, met)) => (Some(t), Some(met)),
            None => (None, None),
        };
        self.report.comparisons.push(Comparison {
            scenario: self.scenario.into(),
            what: what.into(),
            flotilla: f,
            baseline: b,
            unit: unit.into(),
            against: against.into(),
            ratio: if b != 0.0 { f / b } else { f64::NAN },
            higher_is_better,
            target,
            met,
        });
    }

    pub fn note(&mut self, note: impl Into<String>) {
        self.report.notes.push(note.into());
    }

    /// The report: every figure summarised over its repeats (grouped by variant when
    /// [`Recorder::by_variant`] asked for it).
    pub fn finish(mut self) -> Report {
        if self.by_variant {
            let mut variants: Vec<String> = Vec::new();
            for (k, _) in &self.samples {
                if !variants.contains(&k.variant) {
                    variants.push(k.variant.clone());
                }
            }
            let rank = |v: &str| variants.iter().position(|x| x == v).unwrap_or(usize::MAX);
            // Stable sorts: within a variant, the order of first recording stays.
            self.samples.sort_by_key(|(k, _)| rank(&k.variant));
            self.report.checks.sort_by_key(|c| rank(&c.variant));
        }
        for (k, v) in self.samples {
            if let Some(s) = Summary::of(&v) {
                self.report.figures.push(Figure {
                    scenario: self.scenario.into(),
                    variant: k.variant,
                    mode: k.mode,
                    metric: k.metric,
                    unit: k.unit,
                    min: s.min,
                    median: s.median,
                    max: s.max,
                    repeats: s.count,
                });
            }
        }
        self.report
    }
}

// ---------------------------------------------------------------------------------------------
// Progress.

/// The progress bar on stderr: steps are planned as scenarios start, and done one by one.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar drawn on stderr when `visible` and stderr is a terminal; hidden otherwise.
    pub fn new(visible: bool) -> Self {
        let bar = if visible {
            let b = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {wide_msg}",
            ) {
                b.set_style(style);
            }
            b.enable_steady_tick(std::time::Duration::from_millis(200));
            b
        } else {
            ProgressBar::hidden()
        };
        Progress { bar }
    }

    /// `steps` more steps to do.
    pub fn plan(&self, steps: u64) {
        self.bar.inc_length(steps);
    }

    /// Says what is running now.
    pub fn step(&self, what: impl Into<Cow<'static, str>>) {
        self.bar.set_message(what);
    }

    /// One step done.
    pub fn done(&self) {
        self.bar.inc(1);
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Logging for `flotilla bench`: Jina-style lines on stderr at `RUST_LOG`, `warn` by default
/// (the Executors' per-request `info` lines would otherwise be part of what is measured), and
/// `error` for openraft, which warns of every vote response that arrives after its node has
/// become leader (dozens at each start of a stateful Deployment, and nothing wrong).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,openraft=error"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .event_format(crate::logging::JinaFormat)
        .try_init();
}

/// The resident set size of this process (`VmRSS` of `/proc/self/status`), in bytes; `None`
/// where there is no such file.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_readable() {
        assert_eq!(number(123456.7), "123,457");
        assert_eq!(number(1234.0), "1,234");
        assert_eq!(number(999.94), "999.9");
        assert_eq!(number(12.345), "12.35");
        assert_eq!(number(0.1234), "0.123");
        assert_eq!(number(-4321.0), "-4,321");
    }

    #[test]
    fn a_recorder_summarises_repeats_in_order() {
        let mut r = Recorder::new("s");
        r.add("v", "m", "b", "u", 3.0);
        r.add("v", "m", "a", "u", 1.0);
        r.add("v", "m", "b", "u", 1.0);
        r.add("v", "m", "b", "u", 2.0);
        assert_eq!(r.median("v", "m", "b"), Some(2.0));
        r.check("v", "m", "ids", 2, 2);
        r.check("v", "m", "ids", 1, 2);
        let rep = r.finish();
        assert_eq!(rep.figures.len(), 2);
        assert_eq!(rep.figures[0].metric, "b");
        assert_eq!(
            (
                rep.figures[0].min,
                rep.figures[0].median,
                rep.figures[0].max
            ),
            (1.0, 2.0, 3.0)
        );
        assert_eq!(rep.figures[0].repeats, 3);
        assert_eq!((rep.checks[0].passed, rep.checks[0].total), (3, 4));
        let t = rep.table("t");
        assert!(t.contains("| v "), "{t}");
    }

    #[test]
    fn variants_measured_round_by_round_are_reported_together() {
        let mut r = Recorder::new("s").by_variant();
        for round in 0..2 {
            for mode in ["in-process", "gRPC"] {
                for v in ["plain", "raft"] {
                    let value = f64::from(round) + if v == "raft" { 10.0 } else { 0.0 };
                    r.add(v, mode, "index time", "s", value);
                    r.check(v, mode, "ids", 1, 1);
                }
            }
        }
        let rep = r.finish();
        let rows: Vec<(&str, &str, f64, usize)> = rep
            .figures
            .iter()
            .map(|f| (f.variant.as_str(), f.mode.as_str(), f.median, f.repeats))
            .collect();
        assert_eq!(
            rows,
            [
                ("plain", "in-process", 0.5, 2),
                ("plain", "gRPC", 0.5, 2),
                ("raft", "in-process", 10.5, 2),
                ("raft", "gRPC", 10.5, 2),
            ]
        );
        let checks: Vec<(&str, &str, u64)> = rep
            .checks
            .iter()
            .map(|c| (c.variant.as_str(), c.mode.as_str(), c.passed))
            .collect();
        assert_eq!(
            checks,
            [
                ("plain", "in-process", 2),
                ("plain", "gRPC", 2),
                ("raft", "in-process", 2),
                ("raft", "gRPC", 2),
            ]
        );
        // Without it, first-recorded order (other scenarios lay their tables out so).
        let mut r = Recorder::new("s");
        for v in ["plain", "raft", "plain"] {
            r.add(v, "in-process", "index time", "s", 1.0);
        }
        r.add("plain", "gRPC", "index time", "s", 1.0);
        let order: Vec<(String, String)> = r
            .finish()
            .figures
            .into_iter()
            .map(|f| (f.variant, f.mode))
            .collect();
        assert_eq!(
            order,
            [
                ("plain".to_string(), "in-process".to_string()),
                ("raft".to_string(), "in-process".to_string()),
                ("plain".to_string(), "gRPC".to_string()),
            ]
        );
    }

    #[test]
    fn rss_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(rss_bytes().is_some_and(|b| b > 0));
        }
    }
}
