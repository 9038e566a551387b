//! The examples are the seeds made runnable: every `examples/yaml/*.yml` passes
//! `flotilla flow|deployment --uses <file> --dry-run`, and every example program exits 0 (each
//! asserts the seed's outputs itself) and prints the seed's key lines.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Every example, with lines its stdout must contain: whole lines as the seed prints them, or,
/// ending in `…`, the start of one.
const EXAMPLES: &[(&str, &[&str])] = &[
    (
        "bottleneck",
        &["calling scaled flow takes …", "calling normal flow takes …"],
    ),
    (
        "dynamic_batching",
        &["32 requests of 1 doc served in …", "call sizes: […"],
    ),
    (
        "gpu_rr",
        &[
            "| 2          | 2          |",
            "| GPU-0aaaaaaa-74d2-7297-d557-12771b6a79d5 | 4          |",
        ],
    ),
    (
        "needs",
        &[
            "['foo was here and got 0 document', 'bar was here and got 1 document', 'baz was here and got 1 document']",
        ],
    ),
    (
        "polling",
        &[
            "inside: ['hello']",
            "return: ['hello']",
            "| replicas=2 | inside: ['hello'] return: ['hello'] | inside: ['hello'] return: ['hello'] |",
            "| shards=2   | inside: ['hello'] inside: ['hello'] return: ['hello'] | inside: ['hello'] return: ['hello'] |",
        ],
    ),
    (
        "replicas",
        &["replicas_deployment.yml: executor uses Echo with 5 replicas"],
    ),
    (
        "shards",
        &["shards_with_replicas: replicas per shard [3, 3], 6 workers"],
    ),
    (
        "stateful",
        &[
            "Indexing 10000 Documents took …",
            "Searching 100 Queries took …",
            "indexer/rep-0 holds 10000 documents",
            "indexer/rep-1 holds 10000 documents",
            "indexer/rep-2 holds 10000 documents",
        ],
    ),
    ("when", &["[{'key': 5}]", "[{'key': 5}, {'key': 4}]", "[]"]),
];

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The names of the files in `dir` ending in `.ext`, sorted.
fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    found.sort();
    found
}

#[test]
fn every_yaml_passes_a_dry_run() {
    let yamls = files(&manifest_dir().join("examples/yaml"), "yml");
    assert!(yamls.len() >= 8, "{yamls:?}");
    for yml in yamls {
        let text = std::fs::read_to_string(&yml).expect("readable YAML");
        let kind = if text.lines().any(|l| l.trim() == "jtype: Deployment") {
            "deployment"
        } else {
            "flow"
        };
        let out = Command::new(env!("CARGO_BIN_EXE_flotilla"))
            .args([kind, "--uses"])
            .arg(&yml)
            .arg("--dry-run")
            .output()
            .expect("flotilla runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "flotilla {kind} --uses {} --dry-run failed:\n{stdout}\n{}",
            yml.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("is valid:"), "{stdout}");
    }
}

/// `target/<profile>/examples`, next to the `deps` directory this test runs from.
fn examples_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    let deps = exe.parent().expect("target/<profile>/deps");
    deps.parent().expect("target/<profile>").join("examples")
}

/// Builds the examples with cargo, for the profile this test was built with. `cargo test` has
/// built them already (then this is a quick no-op); `cargo test --test examples` has not, and a
/// binary left from an earlier build may be stale.
fn build_examples(dir: &Path) {
    let profile = dir
        .parent()
        .and_then(Path::file_name)
        .and_then(|p| p.to_str())
        .unwrap_or("debug");
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .current_dir(manifest_dir())
        .args(["build", "--quiet", "--examples"]);
    if profile != "debug" {
        cargo.args(["--profile", profile]);
    }
    let status = cargo.status().expect("cargo runs");
    assert!(status.success(), "cargo build --examples failed");
}

#[test]
fn every_example_runs_and_prints_the_seeds_output() {
    let names: Vec<String> = files(&manifest_dir().join("examples"), "rs")
        .iter()
        .map(|p| {
            p.file_stem()
                .expect("a file name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let listed: Vec<&str> = EXAMPLES.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, listed, "every example in examples/ is run here");

    let dir = examples_dir();
    build_examples(&dir);
    for (name, lines) in EXAMPLES {
        let bin = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
        let out = Command::new(&bin)
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "example {name} failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        for line in *lines {
            let printed = |l: &str| match line.strip_suffix('…') {
                Some(start) => l.starts_with(start),
                None => l == *line,
            };
            assert!(
                stdout.lines().any(printed),
                "example {name} did not print «{line}»:\n{stdout}"
            );
        }
    }
}
