//! Stateful config: what Jina requires of `stateful`, `peer_ports` and `raft_configuration`,
//! each error naming the YAML line, the Executor and the key.

mod common;

use flotilla::config::yaml::{self, Loaded};

fn expect(text: &str, want: &str) {
    common::config::expect("dep.yml", text, want)
}

const HEAD: &str = "jtype: Deployment\nwith:\n  name: indexer\n  uses: ExactNNIndexer\n  uses_with: {dim: 4}\n  replicas: 3\n";

#[test]
fn stateful_without_a_workspace() {
    expect(
        &format!("{HEAD}  stateful: true\n"),
        "dep.yml:7: executor 'indexer', key 'stateful': a stateful Executor needs a `workspace` for its Raft log and snapshots",
    );
}

#[test]
fn peer_ports_of_the_wrong_length() {
    expect(
        &format!("{HEAD}  stateful: true\n  workspace: /tmp/x\n  peer_ports: [5000, 5001]\n"),
        "dep.yml:9: executor 'indexer', key 'peer_ports': shard 0: 2 port(s) for 3 replica(s); give one port per replica",
    );
    expect(
        &format!(
            "{HEAD}  shards: 2\n  stateful: true\n  workspace: /tmp/x\n  peer_ports: {{\"0\": [1, 2, 3]}}\n"
        ),
        "key 'peer_ports': no ports for shard 1",
    );
    expect(
        &format!("{HEAD}  stateful: true\n  workspace: /tmp/x\n  peer_ports: [1, 2, 70000]\n"),
        "key 'peer_ports': shard 0: `70000` is not a port",
    );
}

#[test]
fn an_unknown_raft_configuration_key() {
    expect(
        &format!(
            "{HEAD}  stateful: true\n  workspace: /tmp/x\n  raft_configuration:\n    snapshot_treshold: 10\n"
        ),
        "dep.yml:9: executor 'indexer', key 'raft_configuration': unknown key `snapshot_treshold`",
    );
    expect(
        &format!(
            "{HEAD}  stateful: true\n  workspace: /tmp/x\n  raft_configuration:\n    election_timeout: soon\n"
        ),
        "key 'raft_configuration': `election_timeout` must be a non-negative integer",
    );
}

#[test]
fn raft_keys_without_stateful() {
    expect(
        &format!("{HEAD}  peer_ports: [1, 2, 3]\n"),
        "key 'peer_ports': only applies with `stateful: true`",
    );
}

#[test]
fn a_valid_stateful_deployment_compiles_with_jinas_keys() {
    let text = format!(
        "{HEAD}  stateful: true\n  workspace: /tmp/x\n  peer_ports: [5000, 5001, 5002]\n  raft_configuration:\n    snapshot_threshold: 100\n    heartbeat_timeout: 1000\n    log_level: INFO\n"
    );
    let Ok(Loaded::Deployment(d)) = yaml::parse(&text, Some("dep.yml")) else {
        panic!("a Deployment");
    };
    let g = d.graph().expect("valid");
    let raft = g.nodes[0].deployment.stateful.as_ref().expect("stateful");
    assert_eq!(raft.root, std::path::Path::new("/tmp/x/raft"));
    assert_eq!(raft.settings.snapshot_threshold, 100);
    assert_eq!(raft.settings.heartbeat_timeout.as_millis(), 1000);
}
