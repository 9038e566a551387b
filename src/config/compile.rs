//! The config compiler: raw [`Exec`] entries (from YAML or the builder) become one validated
//! [`Graph`], or every error found, each with its place. Nothing starts before this succeeds.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use flotilla_actors::executor::{DEFAULT_ENDPOINT, DynamicBatching, EndpointInfo, SharedFactory};
use flotilla_actors::gpu;
use flotilla_actors::graph::{
    DEFAULT_PER_REMOTE, DEFAULT_QUEUE, DeploymentSpec, ExecutorSpec, Graph, NodeSpec, Polling,
    PollingKind, RemoteSpec, Source,
};
use flotilla_actors::query::Query;
use flotilla_actors::raft::{RaftSettings, RaftSpec};
use flotilla_actors::registry::Registry;
use flotilla_actors::remote::RemoteReplica;

use super::error::{ConfigError, ConfigErrors, Place};
use super::exec::{Exec, PollingConfig};
use crate::executors::base_executor;
use crate::grpc::remote::GrpcReplica;

/// The name of the Flow's input and output.
pub const GATEWAY: &str = "gateway";

/// What the compiler reads from outside the config: the GPU environment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompileEnv {
    /// The process's `CUDA_VISIBLE_DEVICES` (an Executor's `env` overrides it).
    pub cuda_visible_devices: Option<String>,
    /// The number of GPUs; detected (`nvidia-smi -L`, `CUDA_TOTAL_DEVICES`) when `None`.
    pub device_count: Option<usize>,
}

impl CompileEnv {
    /// The environment of this process.
    pub fn from_process() -> Self {
        CompileEnv {
            cuda_visible_devices: std::env::var("CUDA_VISIBLE_DEVICES").ok(),
            device_count: None,
        }
    }
}

/// Whether the entries describe a Flow or a single Deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Flow,
    Deployment,
}

/// Finds the YAML line of an entry (or of one of its keys); the builder has none.
pub trait Locate {
    fn line(&self, entry: usize, key: Option<&str>) -> Option<usize>;
    fn file(&self) -> Option<&str>;
}

/// No lines: config from the builder.
pub struct NoLines;

impl Locate for NoLines {
    fn line(&self, _: usize, _: Option<&str>) -> Option<usize> {
        None
    }
    fn file(&self) -> Option<&str> {
        None
    }
}

struct Ctx<'a> {
    registry: &'a Registry,
    env: &'a CompileEnv,
    locate: &'a dyn Locate,
    errors: Vec<ConfigError>,
    device_count: Option<usize>,
}

impl Ctx<'_> {
    fn error(
        &mut self,
        entry: usize,
        executor: &str,
        key: Option<&str>,
        message: impl Into<String>,
    ) {
        self.errors.push(ConfigError {
            place: Place {
                file: self.locate.file().map(str::to_owned),
                line: self
                    .locate
                    .line(entry, key)
                    .or_else(|| self.locate.line(entry, None)),
                executor: Some(executor.to_owned()),
                key: key.map(str::to_owned),
            },
            message: message.into(),
        });
    }

    fn devices(&mut self) -> usize {
        *self.device_count.get_or_insert_with(|| {
            self.env
                .device_count
                .unwrap_or_else(gpu::detect_device_count)
        })
    }

    fn factory(
        &mut self,
        entry: usize,
        executor: &str,
        key: &str,
        uses: Option<&str>,
        given: Option<&SharedFactory>,
    ) -> Option<(String, SharedFactory)> {
        if let Some(f) = given {
            return Some((uses.unwrap_or("Executor").to_owned(), f.clone()));
        }
        let Some(uses) = uses else {
            return Some(("BaseExecutor".into(), base_executor()));
        };
        if let Some(f) = self.registry.get(uses) {
            return Some((uses.to_owned(), f.clone()));
        }
        let known: Vec<&str> = self.registry.names().collect();
        self.error(
            entry,
            executor,
            Some(key),
            format!(
                "unknown Executor '{uses}' (registered: {})",
                known.join(", ")
            ),
        );
        None
    }
}

/// Compiles `entries` into a graph, collecting every error.
pub fn compile(
    entries: &[Exec],
    kind: Kind,
    registry: &Registry,
    env: &CompileEnv,
    locate: &dyn Locate,
) -> Result<Graph, ConfigErrors> {
    let mut cx = Ctx {
        registry,
        env,
        locate,
        errors: Vec::new(),
        device_count: None,
    };
    if entries.is_empty() {
        cx.errors.push(ConfigError {
            place: Place {
                file: locate.file().map(str::to_owned),
                ..Place::default()
            },
            message: "a Flow needs at least one Executor".into(),
        });
        return Err(ConfigErrors(cx.errors));
    }

    // Names: given or Jina's defaults, unique, not `gateway`.
    let names: Vec<String> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| match (&e.name, kind) {
            (Some(n), _) => n.clone(),
            (None, Kind::Deployment) => "executor".into(),
            (None, Kind::Flow) => format!("executor{i}"),
        })
        .collect();
    let mut first_of: HashMap<&str, usize> = HashMap::new();
    for (i, n) in names.iter().enumerate() {
        if n == GATEWAY {
            cx.error(
                i,
                n,
                Some("name"),
                "'gateway' is reserved for the Flow's input and output",
            );
        } else if n.is_empty() {
            cx.error(i, n, Some("name"), "the name is empty");
        } else if let Some(&j) = first_of.get(n.as_str()) {
            let at = locate
                .line(j, None)
                .map(|l| format!(" (line {l})"))
                .unwrap_or_default();
            cx.error(
                i,
                n,
                Some("name"),
                format!("duplicate name: executor {j}{at} is also called '{n}'"),
            );
        } else {
            first_of.insert(n, i);
        }
    }

    // Needs: by name, `gateway`, or the previous entry.
    let mut needs: Vec<Vec<Source>> = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let wanted = match (&e.needs, kind) {
            (None, Kind::Flow) if e.needs_all => orphans_before(i, &needs)
                .into_iter()
                .map(|s| match s {
                    Source::Gateway => GATEWAY.to_owned(),
                    Source::Node(j) => names[j].clone(),
                })
                .collect(),
            (Some(_), Kind::Deployment) => {
                cx.error(i, &names[i], Some("needs"), "a Deployment has no `needs`");
                Vec::new()
            }
            (Some(n), Kind::Flow) => n.to_vec(),
            (None, _) if i == 0 => vec![GATEWAY.to_owned()],
            (None, _) => vec![names[i - 1].clone()],
        };
        if wanted.is_empty() && kind == Kind::Flow {
            cx.error(i, &names[i], Some("needs"), "`needs` is an empty list");
        }
        let mut sources = Vec::new();
        for w in wanted {
            if w == GATEWAY {
                sources.push(Source::Gateway);
            } else if let Some(&j) = first_of.get(w.as_str()) {
                if !sources.contains(&Source::Node(j)) {
                    sources.push(Source::Node(j));
                }
            } else {
                let mut known = vec![GATEWAY];
                known.extend(names.iter().map(String::as_str));
                cx.error(
                    i,
                    &names[i],
                    Some("needs"),
                    format!("unknown executor '{w}' (known: {})", known.join(", ")),
                );
            }
        }
        if kind == Kind::Deployment {
            sources = vec![Source::Gateway];
        }
        needs.push(sources);
    }

    let order = match topo_order(&needs) {
        Ok(o) => o,
        Err(cycle) => {
            let path: Vec<&str> = cycle.iter().map(|&i| names[i].as_str()).collect();
            let first = cycle[0];
            cx.error(
                first,
                &names[first],
                Some("needs"),
                format!("cycle: {}", path.join(" -> ")),
            );
            (0..entries.len()).collect()
        }
    };

    // Each Deployment.
    let mut specs: Vec<Option<NodeSpec>> = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        specs.push(deployment(&mut cx, i, &names[i], e, &needs[i]));
    }
    if !cx.errors.is_empty() {
        return Err(ConfigErrors(cx.errors));
    }

    // Topological order; sources renumbered.
    let mut position = vec![0; entries.len()];
    for (new, &old) in order.iter().enumerate() {
        position[old] = new;
    }
    let mut nodes = Vec::with_capacity(entries.len());
    for &old in &order {
        let mut node = specs[old].take().expect("every spec compiled");
        for s in &mut node.needs {
            if let Source::Node(j) = s {
                *j = position[*j];
            }
        }
        nodes.push(node);
    }
    let needed: Vec<bool> = (0..nodes.len())
        .map(|j| nodes.iter().any(|n| n.needs.contains(&Source::Node(j))))
        .collect();
    let outputs = (0..nodes.len()).filter(|&j| !needed[j]).collect();
    Ok(Graph { nodes, outputs })
}

/// The entries before `i` that no entry before `i` needs (the gateway when there are none).
fn orphans_before(i: usize, needs: &[Vec<Source>]) -> Vec<Source> {
    let orphans: Vec<Source> = (0..i)
        .filter(|&j| !needs[..i].iter().any(|n| n.contains(&Source::Node(j))))
        .map(Source::Node)
        .collect();
    if orphans.is_empty() {
        vec![Source::Gateway]
    } else {
        orphans
    }
}

/// Kahn's algorithm, stable in entry order; on a cycle, the nodes of one cycle.
fn topo_order(needs: &[Vec<Source>]) -> Result<Vec<usize>, Vec<usize>> {
    let n = needs.len();
    let mut indegree: Vec<usize> = needs
        .iter()
        .map(|s| s.iter().filter(|s| matches!(s, Source::Node(_))).count())
        .collect();
    let mut order = Vec::with_capacity(n);
    let mut done = vec![false; n];
    while let Some(i) = (0..n).find(|&i| !done[i] && indegree[i] == 0) {
        done[i] = true;
        order.push(i);
        for (k, s) in needs.iter().enumerate() {
            if s.contains(&Source::Node(i)) {
                indegree[k] -= 1;
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    // Walk predecessors among the remaining nodes until one repeats: that is a cycle.
    let start = (0..n).find(|&i| !done[i]).unwrap_or(0);
    let mut path = vec![start];
    let mut cur = start;
    loop {
        let next = needs[cur].iter().find_map(|s| match s {
            Source::Node(j) if !done[*j] => Some(*j),
            _ => None,
        });
        let Some(next) = next else { return Err(path) };
        if let Some(p) = path.iter().position(|&x| x == next) {
            // In the direction data flows, starting at the earliest entry.
            let mut cycle: Vec<usize> = path[p..].to_vec();
            cycle.reverse();
            let first = (0..cycle.len()).min_by_key(|&k| cycle[k]).unwrap_or(0);
            cycle.rotate_left(first);
            cycle.push(cycle[0]);
            return Err(cycle);
        }
        path.push(next);
        cur = next;
    }
}

fn count(cx: &mut Ctx<'_>, i: usize, name: &str, key: &str, v: Option<i64>) -> usize {
    match v {
        None => 1,
        Some(n) if n >= 1 => n as usize,
        Some(n) => {
            cx.error(i, name, Some(key), format!("must be at least 1, got {n}"));
            1
        }
    }
}

fn polling(cx: &mut Ctx<'_>, i: usize, name: &str, p: Option<&PollingConfig>) -> Polling {
    let parse = |cx: &mut Ctx<'_>, s: &str| match PollingKind::parse(s) {
        Some(k) => k,
        None => {
            cx.error(
                i,
                name,
                Some("polling"),
                format!("'{s}' is not a polling (ANY or ALL)"),
            );
            PollingKind::Any
        }
    };
    match p {
        None => Polling::default(),
        Some(PollingConfig::One(s)) => {
            let k = parse(cx, s);
            Polling::jina(k, Vec::new())
        }
        Some(PollingConfig::PerEndpoint(m)) => {
            let explicit = m.iter().map(|(ep, s)| (ep.clone(), parse(cx, s))).collect();
            Polling::jina(PollingKind::Any, explicit)
        }
    }
}

/// An external Executor's replicas (`external: true` with `host`/`port`), or `None`.
fn external(cx: &mut Ctx<'_>, i: usize, name: &str, e: &Exec) -> Option<RemoteSpec> {
    if !e.external.unwrap_or(false) {
        // `tls: false` is Jina's default, and YAML copied from Jina may say so.
        for (set, key) in [
            (e.host.is_some(), "host"),
            (e.port.is_some(), "port"),
            (e.tls == Some(true), "tls"),
        ] {
            if set {
                cx.error(
                    i,
                    name,
                    Some(key),
                    "only an external Executor has a host, port and tls (set `external: true`)",
                );
            }
        }
        return None;
    }
    if e.shards.is_some_and(|s| s != 1) {
        cx.error(
            i,
            name,
            Some("shards"),
            "an external Executor has no shards here",
        );
    }
    let addresses = match super::external::addresses(e.host.as_ref(), e.port.as_ref()) {
        Ok(a) => a,
        Err(msg) => {
            let key = if e.host.is_some() { "host" } else { "port" };
            cx.error(i, name, Some(key), msg);
            return None;
        }
    };
    if let Some(r) = e.replicas
        && r != addresses.len() as i64
    {
        cx.error(
            i,
            name,
            Some("replicas"),
            format!(
                "{r} replicas, but {} addresses: each address is one replica",
                addresses.len()
            ),
        );
    }
    let timeout = e.timeout_send.map(std::time::Duration::from_millis);
    let mut replicas: Vec<Arc<dyn RemoteReplica>> = Vec::with_capacity(addresses.len());
    let mut reported: Vec<(bool, String)> = Vec::new();
    for a in addresses {
        let tls = a.tls || e.tls.unwrap_or(false);
        match GrpcReplica::new(&a.host, a.port, timeout, tls) {
            Ok(r) => replicas.push(Arc::new(r)),
            Err(err) => {
                // The trusted roots are the same for every address: say what is wrong once.
                let why = (err.tls, err.reason.clone());
                if reported.contains(&why) {
                    continue;
                }
                let key = if err.tls && e.tls == Some(true) && !a.tls {
                    "tls"
                } else {
                    "host"
                };
                cx.error(i, name, Some(key), err.to_string());
                reported.push(why);
            }
        }
    }
    Some(RemoteSpec {
        replicas,
        per_replica: DEFAULT_PER_REMOTE,
    })
}

/// A stateful Executor's Raft spec, checked: a workspace, Jina's `raft_configuration` keys,
/// `peer_ports` that fit the replicas and shards.
fn stateful(
    cx: &mut Ctx<'_>,
    i: usize,
    name: &str,
    e: &Exec,
    replicas: usize,
    shards: usize,
    external: bool,
) -> Option<RaftSpec> {
    if !e.stateful.unwrap_or(false) {
        for (key, set) in [
            ("peer_ports", e.peer_ports.is_some()),
            ("raft_configuration", e.raft_configuration.is_some()),
            ("linearizable_reads", e.linearizable_reads.is_some()),
        ] {
            if set {
                cx.error(i, name, Some(key), "only applies with `stateful: true`");
            }
        }
        return None;
    }
    if external {
        cx.error(
            i,
            name,
            Some("stateful"),
            "an external Executor keeps its own state; `stateful` applies to Executors flotilla runs",
        );
        return None;
    }
    let Some(workspace) = &e.workspace else {
        cx.error(
            i,
            name,
            Some("stateful"),
            "a stateful Executor needs a `workspace` for its Raft log and snapshots",
        );
        return None;
    };
    let group_size = e.raft_cluster.as_ref().map_or(replicas, |c| c.peers.len());
    if group_size < 3 {
        tracing::warn!(
            executor = name,
            replicas = group_size,
            "a stateful Executor with fewer than 3 replicas cannot survive the loss of one"
        );
    }
    let settings = match RaftSettings::from_map(&e.raft_configuration.clone().unwrap_or_default()) {
        Ok(s) => s,
        Err(msg) => {
            cx.error(i, name, Some("raft_configuration"), msg);
            return None;
        }
    };
    if let Some(ports) = &e.peer_ports
        && let Err(msg) = check_peer_ports(ports, replicas, shards)
    {
        cx.error(i, name, Some("peer_ports"), msg);
        return None;
    }
    if let Some(c) = &e.raft_cluster {
        let problem = if replicas != 1 || shards != 1 {
            Some(format!(
                "a replica process of a stateful Executor runs 1 replica of 1 shard, not {replicas} replicas of {shards} shards"
            ))
        } else if !c.peers.contains_key(&c.me) {
            Some(format!(
                "replica id {} is not among the {} peers",
                c.me,
                c.peers.len()
            ))
        } else {
            None
        };
        if let Some(msg) = problem {
            cx.error(i, name, Some("stateful"), msg);
            return None;
        }
    }
    Some(RaftSpec {
        root: workspace.join("raft"),
        settings,
        linearizable: e
            .linearizable_reads
            .iter()
            .flat_map(|l| l.to_vec())
            .collect(),
        faults: e.raft_faults,
        cluster: e.raft_cluster.clone(),
    })
}

/// `uses_dynamic_batching`, checked: endpoints the Executor serves (an endpoint it does not
/// bind goes to its `/default` handler, if any), Jina's keys with sensible values, and no
/// write endpoint of a stateful Executor (writes are applied one log entry at a time).
fn dynamic_batching(
    cx: &mut Ctx<'_>,
    i: usize,
    name: &str,
    map: &serde_json::Map<String, serde_json::Value>,
    uses: &str,
    endpoints: &[EndpointInfo],
    stateful: bool,
) -> BTreeMap<String, DynamicBatching> {
    const KEY: &str = "uses_dynamic_batching";
    let mut out = BTreeMap::new();
    let has_default = endpoints.iter().any(|e| e.name == DEFAULT_ENDPOINT);
    for (endpoint, v) in map {
        let mut fail = |msg: String| cx.error(i, name, Some(KEY), format!("{endpoint}: {msg}"));
        let bound = endpoints.iter().find(|e| e.name == *endpoint);
        if bound.is_none() && !has_default {
            let known: Vec<&str> = endpoints.iter().map(|e| e.name.as_str()).collect();
            fail(format!(
                "Executor '{uses}' has no such endpoint (it serves {})",
                known.join(", ")
            ));
            continue;
        }
        if stateful && bound.is_some_and(|e| e.write) {
            fail("a write endpoint of a stateful Executor is applied one log entry at a time, not in batches".into());
            continue;
        }
        let Some(fields) = v.as_object() else {
            fail(format!(
                "expected a map of preferred_batch_size, timeout, flush_all; got {v}"
            ));
            continue;
        };
        let mut b = DynamicBatching {
            preferred_batch_size: None,
            timeout_ms: 10_000,
            alone_on_error: false,
        };
        let mut flush_all = false;
        let mut ok = true;
        for (k, val) in fields {
            match (k.as_str(), val) {
                ("preferred_batch_size", serde_json::Value::Null) => {}
                ("preferred_batch_size", val) => match val.as_u64() {
                    Some(n) if n >= 1 => b.preferred_batch_size = Some(n as usize),
                    _ => {
                        fail(format!(
                            "preferred_batch_size must be a whole number of docs >= 1, got {val}"
                        ));
                        ok = false;
                    }
                },
                ("timeout", val) => match val.as_f64() {
                    Some(ms) if ms >= 0.0 && ms.is_finite() => b.timeout_ms = ms as u64,
                    _ => {
                        fail(format!(
                            "timeout must be a number of milliseconds >= 0, got {val}"
                        ));
                        ok = false;
                    }
                },
                ("flush_all", serde_json::Value::Bool(f)) => flush_all = *f,
                ("flush_all", val) => {
                    fail(format!("flush_all must be true or false, got {val}"));
                    ok = false;
                }
                (other, _) => {
                    fail(format!(
                        "unknown key '{other}' (known: preferred_batch_size, timeout, flush_all)"
                    ));
                    ok = false;
                }
            }
        }
        if flush_all {
            // Jina's flush_all hands the handler everything queued in one call.
            b.preferred_batch_size = None;
        }
        if ok {
            out.insert(endpoint.clone(), b);
        }
    }
    out
}

/// Jina's rules: a list of one port per replica (one shard), or a map from shard id to such a
/// list with an entry for every shard.
fn check_peer_ports(
    ports: &serde_json::Value,
    replicas: usize,
    shards: usize,
) -> Result<(), String> {
    let list = |v: &serde_json::Value, shard: usize| -> Result<(), String> {
        let Some(items) = v.as_array() else {
            return Err(format!("shard {shard}: expected a list of ports, got {v}"));
        };
        if items.len() != replicas {
            return Err(format!(
                "shard {shard}: {} port(s) for {replicas} replica(s); give one port per replica",
                items.len()
            ));
        }
        for p in items {
            let port = p
                .as_u64()
                .or_else(|| p.as_str().and_then(|s| s.parse().ok()))
                .filter(|&n| (1..=65535).contains(&n));
            if port.is_none() {
                return Err(format!("shard {shard}: `{p}` is not a port"));
            }
        }
        Ok(())
    };
    match ports {
        serde_json::Value::Array(_) if shards == 1 => list(ports, 0),
        serde_json::Value::Array(_) => Err(format!(
            "with {shards} shards, give a map from shard id to ports, such as {{\"0\": [...], \"1\": [...]}}"
        )),
        serde_json::Value::Object(m) => {
            for s in 0..shards {
                let v = m
                    .get(&s.to_string())
                    .ok_or_else(|| format!("no ports for shard {s}"))?;
                list(v, s)?;
            }
            Ok(())
        }
        other => Err(format!("expected a list or a map of lists, got {other}")),
    }
}

fn deployment(
    cx: &mut Ctx<'_>,
    i: usize,
    name: &str,
    e: &Exec,
    needs: &[Source],
) -> Option<NodeSpec> {
    let remote = external(cx, i, name, e);
    let replicas = match &remote {
        Some(r) => r.replicas.len(),
        None => count(cx, i, name, "replicas", e.replicas),
    };
    let shards = count(cx, i, name, "shards", e.shards);
    if let Some((shard, of)) = e.shard_of {
        if shards != 1 {
            cx.error(
                i,
                name,
                Some("shards"),
                format!(
                    "a Deployment serving shard {shard} of {of} runs that one shard, not {shards}"
                ),
            );
        } else if shard >= of {
            cx.error(
                i,
                name,
                Some("shard_id"),
                format!("shard id {shard} is not below the number of shards, {of}"),
            );
        }
    }
    let stateful = stateful(cx, i, name, e, replicas, shards, remote.is_some());
    let polling = polling(cx, i, name, e.polling.as_ref());
    let executor = cx.factory(i, name, "uses", e.uses.as_deref(), e.uses_factory.as_ref());
    let uses_with = e.uses_with.clone().unwrap_or(serde_json::Value::Null);
    if let Some((uses, f)) = &executor
        && let Err(msg) = f.check(&uses_with)
    {
        cx.error(
            i,
            name,
            Some("uses_with"),
            format!("does not fit Executor '{uses}': {msg}"),
        );
    }
    let helper =
        |cx: &mut Ctx<'_>, key: &str, uses: &Option<String>, given: &Option<SharedFactory>| {
            if uses.is_none() && given.is_none() {
                return None;
            }
            cx.factory(i, name, key, uses.as_deref(), given.as_ref())
                .map(|(uses, factory)| ExecutorSpec {
                    uses,
                    factory,
                    uses_with: serde_json::Value::Null,
                })
        };
    let uses_before = helper(cx, "uses_before", &e.uses_before, &e.uses_before_factory);
    let uses_after = helper(cx, "uses_after", &e.uses_after, &e.uses_after_factory);
    let when = match &e.when {
        None => None,
        Some(q) => match Query::parse(q) {
            Ok(q) => Some(q),
            Err(err) => {
                cx.error(i, name, Some("when"), err.to_string());
                None
            }
        },
    };
    let env: BTreeMap<String, String> = e
        .env
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect();
    let cuda = env
        .get("CUDA_VISIBLE_DEVICES")
        .cloned()
        .or_else(|| cx.env.cuda_visible_devices.clone());
    let devices = match cuda {
        Some(spec) if spec.starts_with("RR") => {
            if let Err(err) = gpu::check_spec(&spec) {
                cx.error(i, name, Some("env"), err.to_string());
                None
            } else {
                let count = cx.devices();
                match gpu::assign_devices(&spec, replicas, count) {
                    Ok(Some(d)) => Some(d),
                    Ok(None) => {
                        tracing::warn!(
                            executor = name,
                            "CUDA_VISIBLE_DEVICES={spec}: no GPU found; devices not assigned"
                        );
                        None
                    }
                    Err(err) => {
                        cx.error(i, name, Some("env"), err.to_string());
                        None
                    }
                }
            }
        }
        _ => None,
    };
    let queue = match e.queue_size {
        None => DEFAULT_QUEUE,
        Some(q) if q >= 0 => q as usize,
        Some(q) => {
            cx.error(
                i,
                name,
                Some("queue_size"),
                format!("must not be negative, got {q}"),
            );
            0
        }
    };
    let batching = match (&e.uses_dynamic_batching, &executor) {
        (Some(_), _) if remote.is_some() => {
            cx.error(
                i,
                name,
                Some("uses_dynamic_batching"),
                "an external Executor batches requests on its own server",
            );
            BTreeMap::new()
        }
        (Some(serde_json::Value::Object(map)), Some((uses, f))) => {
            dynamic_batching(cx, i, name, map, uses, &f.endpoints(), stateful.is_some())
        }
        (Some(v), _) if !v.is_object() => {
            cx.error(
                i,
                name,
                Some("uses_dynamic_batching"),
                format!(
                    "expected a map from endpoint to {{preferred_batch_size, timeout}}, got {v}"
                ),
            );
            BTreeMap::new()
        }
        _ => BTreeMap::new(),
    };
    if let (Some(_), Some((uses, f))) = (&stateful, &executor) {
        // Said, not refused: the Executor's own declaration is not the user's to fix here.
        for e in f
            .endpoints()
            .iter()
            .filter(|e| e.write && e.batching.is_some())
        {
            tracing::warn!(
                executor = name,
                endpoint = %e.name,
                "Executor '{uses}' declares dynamic batching on {}, a write endpoint: a stateful \
                 Executor applies writes one log entry at a time, so it is not applied there",
                e.name
            );
        }
    }
    let (uses, factory) = executor?;
    let mut d = DeploymentSpec::new(
        Arc::<str>::from(name),
        ExecutorSpec {
            uses,
            factory,
            uses_with,
        },
    );
    d.replicas = replicas;
    d.shards = shards;
    d.polling = polling;
    d.uses_before = uses_before;
    d.uses_after = uses_after;
    d.reduce = !(e.disable_reduce.unwrap_or(false) || e.no_reduce.unwrap_or(false));
    d.env = env;
    d.workspace = e.workspace.clone();
    d.devices = devices;
    d.queue = queue;
    d.remote = remote;
    d.stateful = stateful;
    d.shard_of = e.shard_of;
    d.batching = batching;
    Some(NodeSpec {
        deployment: d,
        needs: needs.to_vec(),
        when,
    })
}
