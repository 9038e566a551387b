//! YAML: Jina's keys load into the same graph as the builder; every error names its place.

mod common;

use flotilla::config::ConfigErrors;
use flotilla::config::yaml;

fn errors(text: &str) -> ConfigErrors {
    common::config::errors("flow.yml", text)
}

fn expect(text: &str, want: &str) {
    common::config::expect("flow.yml", text, want)
}

#[test]
fn a_flow_and_a_deployment_load() {
    let f = yaml::parse(
        "jtype: Flow\nversion: '1'\nwith:\n  port: 12345\nexecutors:\n  - name: enc\n    uses: Echo\n    replicas: 2\n  - name: idx\n    shards: 2\n    polling: {'/custom': 'ALL', '*': 'ANY'}\n    env:\n      A: 1\n",
        None,
    )
    .ok()
    .unwrap()
    .into_flow()
    .unwrap();
    assert_eq!(f.settings().port, Some(12345));
    let g = f.graph().unwrap();
    assert_eq!(g.nodes.len(), 2);
    assert_eq!(g.nodes[0].deployment.replicas, 2);
    assert_eq!(g.nodes[1].deployment.shards, 2);
    assert_eq!(g.nodes[1].deployment.env["A"], "1");

    for text in [
        "jtype: Deployment\nwith:\n  uses: Echo\n  replicas: 3\n",
        "jtype: Deployment\nuses: Echo\ninstall_requirements: True\nreplicas: 3\n",
    ] {
        let d = yaml::parse(text, None)
            .ok()
            .unwrap()
            .into_deployment()
            .unwrap();
        assert_eq!(d.graph().unwrap().nodes[0].deployment.replicas, 3);
    }
}

#[test]
fn unknown_needs_names_the_executor_and_line() {
    expect(
        "jtype: Flow\nexecutors:\n  - name: enc\n  - name: idx\n    needs: encodr\n",
        "flow.yml:5: executor 'idx', key 'needs': unknown executor 'encodr' (known: gateway, enc, idx)",
    );
}

#[test]
fn a_cycle_is_named_with_its_path() {
    expect(
        "jtype: Flow\nexecutors:\n  - name: a\n    needs: c\n  - name: b\n    needs: a\n  - name: c\n    needs: b\n",
        "cycle: a -> b -> c -> a",
    );
}

#[test]
fn a_duplicate_name() {
    expect(
        "jtype: Flow\nexecutors:\n  - name: a\n  - name: a\n",
        "flow.yml:4: executor 'a', key 'name': duplicate name: executor 0 (line 3) is also called 'a'",
    );
}

#[test]
fn an_unknown_uses() {
    expect(
        "jtype: Flow\nexecutors:\n  - name: a\n    uses: Nope\n",
        "flow.yml:4: executor 'a', key 'uses': unknown Executor 'Nope' (registered: BaseExecutor, Echo,",
    );
}

#[test]
fn a_bad_polling_value() {
    expect(
        "jtype: Flow\nexecutors:\n  - name: a\n    shards: 2\n    polling: SOME\n",
        "flow.yml:5: executor 'a', key 'polling': 'SOME' is not a polling (ANY or ALL)",
    );
    expect(
        "jtype: Flow\nexecutors:\n  - name: a\n    polling:\n      /search: sometimes\n",
        "flow.yml:4: executor 'a', key 'polling': 'sometimes' is not a polling",
    );
}

#[test]
fn a_bad_when() {
    expect(
        "jtype: Flow\nexecutors:\n  - name: a\n    when:\n      tags__key:\n        $foo: 5\n",
        "flow.yml:4: executor 'a', key 'when':",
    );
    expect(
        "jtype: Flow\nexecutors:\n  - name: a\n    when:\n      tags__key:\n        $foo: 5\n",
        "$foo",
    );
}

#[test]
fn zero_shards_or_replicas() {
    expect(
        "jtype: Flow\nexecutors:\n  - name: a\n    shards: 0\n",
        "flow.yml:4: executor 'a', key 'shards': must be at least 1, got 0",
    );
    expect(
        "jtype: Deployment\nwith:\n  name: d\n  replicas: 0\n",
        "flow.yml:4: executor 'd', key 'replicas': must be at least 1, got 0",
    );
}

#[test]
fn an_unknown_key() {
    expect(
        "jtype: Flow\nexecutors:\n  - name: a\n    replica: 2\n",
        "flow.yml:4: executors[0]: unknown field `replica`",
    );
    expect(
        "jtype: Flow\nexecutor:\n  - name: a\n",
        "unknown field `executor`",
    );
    expect(
        "jtype: Deployment\nuses: Echo\nreplica: 2\n",
        "flow.yml:3: unknown field `replica`",
    );
}

#[test]
fn every_error_is_reported_at_once() {
    let e = errors(
        "jtype: Flow\nexecutors:\n  - name: a\n    shards: 0\n    uses: Nope\n  - name: b\n    needs: zz\n",
    );
    assert_eq!(e.0.len(), 3, "{e}");
}

#[test]
fn connection_keys_need_an_external_executor() {
    expect(
        "jtype: Flow\nexecutors:\n  - name: a\n    tls: true\n",
        "flow.yml:4: executor 'a', key 'tls': only an external Executor has a host, port and tls",
    );
    expect(
        "jtype: Flow\nexecutors:\n  - name: a\n    port: 5\n",
        "flow.yml:4: executor 'a', key 'port': only an external Executor",
    );
    // Jina's default, as YAML copied from Jina may spell it.
    let f = flotilla::config::yaml::parse(
        "jtype: Flow\nexecutors:\n  - name: a\n    tls: false\n",
        None,
    )
    .ok()
    .unwrap()
    .into_flow()
    .unwrap();
    assert!(f.graph().is_ok());
}
