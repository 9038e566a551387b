//! A stock Jina Executor (`jina executor`, Python) as an external Executor of a flotilla Flow,
//! with two replicas, one of them killed mid-run: no request is lost.
//!
//! Needs the venv `.ci/run` creates (`FLOTILLA_PYTHON`, else `.venv/bin/python`); without it
//! the test fails and says how to create it, unless `FLOTILLA_SKIP_INTEROP=1`.

mod common;

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{free_port, served_by, within};
use flotilla::{Doc, DocList, Exec, Flow, PostOptions};

fn venv_bin(name: &str) -> Option<PathBuf> {
    let python = std::env::var_os("FLOTILLA_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    let bin = python.parent()?.join(name);
    bin.exists().then_some(bin)
}

/// A process group, killed with SIGKILL when dropped.
struct Group(Child);

impl Group {
    fn kill(&mut self) {
        // `--`: procps' kill would read `-PID` (the group) as an option.
        let _ = Command::new("kill")
            .args(["-9", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

fn jina_executor(jina: &PathBuf, name: &str, port: u16) -> Group {
    let module = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/tag_exec.py");
    let child = Command::new(jina)
        .args(["executor", "--uses", "TagExec", "--py-modules"])
        .arg(module)
        .args(["--port", &port.to_string(), "--host", "127.0.0.1"])
        .env("REPLICA_NAME", name)
        .env("JINA_LOG_LEVEL", "ERROR")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("starting jina executor");
    Group(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jina_executor_is_an_external_replica_and_a_killed_one_loses_nothing() {
    let Some(jina) = venv_bin("jina") else {
        if std::env::var_os("FLOTILLA_SKIP_INTEROP").is_some() {
            return;
        }
        panic!(
            "no Jina venv: run `python3 -m venv .venv && .venv/bin/pip install --upgrade pip && \
             .venv/bin/pip install -r tests/interop/requirements.txt` (or set FLOTILLA_PYTHON)"
        );
    };
    let (pa, pb) = (free_port(), free_port());
    let mut a = Some(jina_executor(&jina, "py-a", pa));
    let _b = jina_executor(&jina, "py-b", pb);
    let flow = Flow::new()
        .add(Exec::new().name("prep").uses("Echo"))
        .add(
            Exec::new()
                .name("py")
                .external_at(vec![format!("127.0.0.1:{pa}"), format!("127.0.0.1:{pb}")]),
        )
        .start()
        .unwrap();
    // Jina's workers take a few seconds to start: wait until both answer.
    within(120, async {
        loop {
            let docs: DocList = (0..8).map(|_| Doc::new()).collect();
            let opts = PostOptions {
                request_size: 1,
                ..PostOptions::default()
            };
            if let Ok(out) = flow.post_with("/warmup", docs, &opts).await {
                let who: std::collections::BTreeSet<String> = out.iter().map(served_by).collect();
                if who.len() == 2 {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;

    let docs: DocList = (0..300)
        .map(|i| {
            Doc::with_id(format!("d{i}"))
                .with_text(format!("doc {i}"))
                .with_tag("i", i as i64)
        })
        .collect();
    let opts = PostOptions {
        request_size: 1,
        prefetch: 16,
        ..PostOptions::default()
    };
    let post = flow.post_with("/index", docs, &opts);
    let kill = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        if let Some(mut p) = a.take() {
            p.kill();
        }
    };
    let (out, ()) = within(180, futures::future::join(post, kill)).await;
    let out = out.expect("every request is answered");
    let ids: Vec<String> = out.ids().into_iter().map(str::to_owned).collect();
    let want: Vec<String> = (0..300).map(|i| format!("d{i}")).collect();
    assert_eq!(ids, want, "each doc once, in input order");
    for (i, d) in out.iter().enumerate() {
        assert_eq!(
            d.text(),
            Some(format!("doc {i}").as_str()),
            "the Python Executor kept the text"
        );
        assert_eq!(d.tag("i").and_then(|v| v.as_f64()), Some(i as f64));
    }
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for d in out.iter() {
        *by.entry(served_by(d)).or_default() += 1;
    }
    assert!(
        by.get("py-a").is_some_and(|&n| n > 0),
        "py-a served before it was killed: {by:?}"
    );
    assert!(
        by.get("py-b").is_some_and(|&n| n > 150),
        "py-b took over: {by:?}"
    );
    flow.close();
}
