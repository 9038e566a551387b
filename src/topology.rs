//! A readable description of a validated graph: what `--dry-run` prints.

use std::fmt::Write;

use flotilla_actors::graph::{Graph, Source};

/// One line per node (what it uses, what it needs, shards × replicas, polling, filters,
/// devices), then what the gateway answers with.
pub fn describe(graph: &Graph) -> String {
    let mut out = String::new();
    let name = |s: &Source| match s {
        Source::Gateway => "gateway".to_owned(),
        Source::Node(j) => graph.nodes[*j].deployment.name.to_string(),
    };
    for node in &graph.nodes {
        let d = &node.deployment;
        let needs: Vec<String> = node.needs.iter().map(name).collect();
        let _ = write!(
            out,
            "{}: uses {}, needs {}, {} shard{} x {} replica{}",
            d.name,
            d.executor.uses,
            needs.join(" + "),
            d.shards,
            if d.shards == 1 { "" } else { "s" },
            d.replicas,
            if d.replicas == 1 { "" } else { "s" },
        );
        if needs.len() > 1 {
            out.push_str(if d.reduce {
                " (joined with reduce)"
            } else {
                " (joined without reduce)"
            });
        }
        out.push('\n');
        if d.shards > 1 {
            let mut polling: Vec<String> = d
                .polling
                .entries()
                .iter()
                .map(|(e, k)| format!("{e} {k}"))
                .collect();
            polling.push(format!("* {}", d.polling.default_kind()));
            let _ = writeln!(out, "    polling: {}", polling.join(", "));
        }
        if let Some(q) = &node.when {
            let _ = writeln!(out, "    when: {q}");
        }
        if let Some(b) = &d.uses_before {
            let _ = writeln!(out, "    uses_before: {}", b.uses);
        }
        if let Some(a) = &d.uses_after {
            let _ = writeln!(out, "    uses_after: {}", a.uses);
        }
        if let Some(devices) = &d.devices {
            let per: Vec<String> = (0..d.replicas)
                .map(|r| format!("rep-{r}={}", devices[r % devices.len()]))
                .collect();
            let _ = writeln!(out, "    CUDA_VISIBLE_DEVICES: {}", per.join(", "));
        }
        if let Some(w) = &d.workspace {
            let _ = writeln!(out, "    workspace: {}", w.display());
        }
        if let Some(r) = &d.stateful {
            let writes: Vec<String> = d
                .executor
                .endpoints()
                .into_iter()
                .filter(|e| e.write)
                .map(|e| e.name)
                .collect();
            let _ = writeln!(
                out,
                "    stateful (Raft): writes {}, log under {}/<shard>/<replica>{}",
                if writes.is_empty() {
                    "none".to_owned()
                } else {
                    writes.join(" ")
                },
                r.root.display(),
                if r.linearizable.is_empty() {
                    String::new()
                } else {
                    format!(", linearizable reads {}", r.linearizable.join(" "))
                }
            );
        }
    }
    let outputs: Vec<String> = graph
        .outputs
        .iter()
        .map(|&o| name(&Source::Node(o)))
        .collect();
    let _ = writeln!(
        out,
        "gateway answers with {}{}",
        outputs.join(" + "),
        if outputs.len() > 1 { " (reduced)" } else { "" }
    );
    out
}

#[cfg(test)]
mod tests {
    use crate::config::CompileEnv;
    use crate::{Exec, Flow};

    #[test]
    fn describes_needs_shards_polling_and_devices() {
        let g = Flow::new()
            .add(Exec::new().name("enc").uses("Echo").replicas(2))
            .add(
                Exec::new()
                    .name("idx")
                    .shards(2)
                    .polling_map([("/custom", "ALL")]),
            )
            .add(
                Exec::new()
                    .name("alt")
                    .needs("enc")
                    .when(serde_json::json!({"tags__k": {"$eq": 1}})),
            )
            .compile_env(CompileEnv {
                cuda_visible_devices: Some("RR".into()),
                device_count: Some(2),
            })
            .graph()
            .unwrap();
        let text = super::describe(&g);
        assert_eq!(
            text,
            "enc: uses Echo, needs gateway, 1 shard x 2 replicas\n    CUDA_VISIBLE_DEVICES: rep-0=0, rep-1=1\n\
             idx: uses BaseExecutor, needs enc, 2 shards x 1 replica\n    polling: /search ALL, /index ANY, /custom ALL, * ANY\n    CUDA_VISIBLE_DEVICES: rep-0=0\n\
             alt: uses BaseExecutor, needs enc, 1 shard x 1 replica\n    when: {\"tags__k\":{\"$eq\":1}}\n    CUDA_VISIBLE_DEVICES: rep-0=0\n\
             gateway answers with idx + alt (reduced)\n"
        );
    }
}
