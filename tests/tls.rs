//! TLS as Jina offers it: a gateway given a certificate and key (`ssl_certfile`, `ssl_keyfile`)
//! serves over TLS only; flotilla's client speaks it to `grpcs://`, trusting the CA it is given;
//! a client that does not trust the certificate, or speaks plain gRPC, is refused and the
//! gateway keeps serving; unusable certificate files are named before anything is served.

mod common;

use std::sync::Arc;

use common::{free_port, within};
use flotilla::actors::executor::factory;
use flotilla::actors::prelude::*;
use flotilla::grpc::client::{Client, ClientError};
use flotilla::grpc::server::{ServeOptions, Server};
use flotilla::grpc::service::Role;
use flotilla::grpc::tls::ServerTls;
use flotilla::{Deployment, Error};

/// Uppercases each doc's text: an answer that shows the Executor ran.
struct Upper;

impl Executor for Upper {
    fn requests(r: &mut Requests<Self>) {
        r.default(|_: &mut Upper, req: &mut Request, _: &Context| {
            for d in req.docs.iter_mut() {
                if let Some(t) = d.text().map(str::to_uppercase) {
                    d.set_text(t);
                }
            }
        });
    }
}

/// A self-signed certificate for `localhost` and its key, PEM.
fn self_signed() -> (String, String) {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .expect("rcgen makes a certificate");
    (c.cert.pem(), c.signing_key.serialize_pem())
}

async fn tls_gateway(cert: &str, key: &str) -> Server {
    let running = Deployment::new()
        .name("upper")
        .uses_factory("Upper", factory(|_| Ok(Upper)))
        .start()
        .expect("the Deployment starts");
    let mut opts = ServeOptions::new(Role::Gateway);
    opts.tls = Some(ServerTls::from_pem(cert, key).expect("PEM blocks"));
    Server::start(Arc::new(running), "127.0.0.1:0".parse().unwrap(), opts)
        .await
        .expect("the TLS gateway starts")
}

fn docs() -> DocList {
    (0..3)
        .map(|i| Doc::with_id(format!("d{i}")).with_text(format!("hello {i}")))
        .collect()
}

fn texts(docs: &DocList) -> Vec<String> {
    docs.iter()
        .map(|d| d.text().unwrap_or_default().to_owned())
        .collect()
}

fn trusting(port: u16, ca: &str) -> Client {
    Client::builder(&format!("grpcs://localhost:{port}"))
        .ca_certificate(ca)
        .build()
        .expect("a valid address")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_trusts_the_certificate_posts_over_tls() {
    let (cert, key) = self_signed();
    let server = tls_gateway(&cert, &key).await;
    let port = server.local_addr().port();
    let client = trusting(port, &cert);
    assert_eq!(client.addr(), format!("grpcs://localhost:{port}"));
    let out = within(30, client.post("/index", docs()))
        .await
        .expect("posted over TLS");
    assert_eq!(texts(&out), ["HELLO 0", "HELLO 1", "HELLO 2"]);
    assert!(within(30, client.is_ready()).await, "health over TLS");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_and_plain_clients_are_refused_and_the_gateway_keeps_serving() {
    let (cert, key) = self_signed();
    let server = tls_gateway(&cert, &key).await;
    let port = server.local_addr().port();

    // A certificate from another CA than the one the client trusts.
    let (other, _) = self_signed();
    let err = within(30, trusting(port, &other).post("/index", docs()))
        .await
        .expect_err("an untrusted certificate");
    let text = format!("{err}: {err:?}");
    assert!(matches!(err, ClientError::Status(_)), "{text}");
    assert!(text.to_lowercase().contains("certificate"), "{text}");

    // Plain gRPC to a TLS port.
    let plain = Client::new(&format!("grpc://127.0.0.1:{port}")).unwrap();
    let err = within(30, plain.post("/index", docs()))
        .await
        .expect_err("plain gRPC to a TLS gateway");
    assert!(matches!(err, ClientError::Status(_)), "{err:?}");

    // `tls(true)` on a bare address is the same as grpcs://.
    let bare = Client::builder(&format!("localhost:{port}"))
        .tls(true)
        .ca_certificate(cert.as_str())
        .build()
        .unwrap();
    assert_eq!(bare.addr(), format!("grpcs://localhost:{port}"));
    let out = within(30, bare.post("/index", docs()))
        .await
        .expect("still serving");
    assert_eq!(texts(&out), ["HELLO 0", "HELLO 1", "HELLO 2"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_certificate_files_are_named_before_anything_is_served() {
    let (cert, key) = self_signed();
    let dir = tempfile::tempdir().unwrap();
    let cert_file = dir.path().join("cert.pem");
    let key_file = dir.path().join("key.pem");
    std::fs::write(&cert_file, &cert).unwrap();
    std::fs::write(&key_file, &key).unwrap();
    assert!(ServerTls::from_files(&cert_file, &key_file).is_ok());

    let missing = dir.path().join("missing.pem");
    let e = ServerTls::from_files(&missing, &key_file).unwrap_err();
    assert!(
        e.to_string().starts_with(&missing.display().to_string()),
        "{e}"
    );
    // Certificate and key swapped: each file lacks its block, and the message names it.
    let e = ServerTls::from_files(&key_file, &cert_file).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: no PEM block \"CERTIFICATE\" (expected -----BEGIN CERTIFICATE-----)",
            key_file.display()
        )
    );

    // A key block that holds no key: refused when the server starts, before it serves.
    let broken = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    let running = Deployment::new()
        .name("upper")
        .uses_factory("Upper", factory(|_| Ok(Upper)))
        .start()
        .unwrap();
    let mut opts = ServeOptions::new(Role::Gateway);
    opts.tls = Some(ServerTls::from_pem(cert.as_str(), broken).unwrap());
    match Server::start(Arc::new(running), "127.0.0.1:0".parse().unwrap(), opts).await {
        Err(Error::Serve(m)) => {
            assert!(
                m.starts_with("TLS with the given certificate and key: "),
                "{m}"
            )
        }
        Err(e) => panic!("not a serve error: {e}"),
        Ok(_) => panic!("a broken key was accepted"),
    }
}

/// `flotilla flow` with `with: {ssl_certfile, ssl_keyfile}` in its YAML, pinged over TLS by
/// `flotilla ping grpcs://…`, which trusts the CA named by `GRPC_DEFAULT_SSL_ROOTS_FILE_PATH`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flotilla_flow_serves_tls_from_its_yaml_and_ping_checks_it() {
    let (cert, key) = self_signed();
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_file, &cert).unwrap();
    std::fs::write(&key_file, &key).unwrap();
    let port = free_port();
    let yaml = dir.path().join("flow.yml");
    let flow = |keys: &str| {
        format!(
            "jtype: Flow\nwith:\n  port: {port}\n{keys}executors:\n  - name: echo\n    uses: Echo\n"
        )
    };
    let both = format!(
        "  ssl_certfile: {}\n  ssl_keyfile: {}\n",
        cert_file.display(),
        key_file.display()
    );
    std::fs::write(&yaml, flow(&both)).unwrap();

    let mut gateway = tokio::process::Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args(["flow", "--host", "127.0.0.1", "--uses"])
        .arg(&yaml)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    assert_eq!(
        serving_line(&mut gateway).await,
        format!("serving on grpcs://127.0.0.1:{port}")
    );

    let ping = |trust: Option<&std::path::Path>| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_flotilla"));
        cmd.args(["ping", &format!("grpcs://localhost:{port}")])
            .env_remove(flotilla::grpc::tls::ROOTS_ENV)
            .kill_on_drop(true);
        if let Some(ca) = trust {
            cmd.env(flotilla::grpc::tls::ROOTS_ENV, ca);
        }
        cmd.output()
    };
    let ok = within(60, ping(Some(&cert_file))).await.unwrap();
    assert!(ok.status.success(), "{ok:?}");
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "SERVING");
    // Without the CA, the system's roots do not vouch for a self-signed certificate.
    let refused = within(60, ping(None)).await.unwrap();
    assert!(!refused.status.success(), "{refused:?}");
    gateway.kill().await.unwrap();

    // One of the two keys alone, or a file that is not there: refused before serving.
    let only_cert = format!("  ssl_certfile: {}\n", cert_file.display());
    std::fs::write(&yaml, flow(&only_cert)).unwrap();
    let run = || {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_flotilla"))
            .args(["flow", "--host", "127.0.0.1", "--uses"])
            .arg(&yaml)
            .kill_on_drop(true)
            .output()
    };
    let out = within(60, run()).await.unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ssl_certfile is given without ssl_keyfile"),
        "{err}"
    );
    let missing = dir.path().join("nope.pem");
    let bad_key = format!(
        "  ssl_certfile: {}\n  ssl_keyfile: {}\n",
        cert_file.display(),
        missing.display()
    );
    std::fs::write(&yaml, flow(&bad_key)).unwrap();
    let out = within(60, run()).await.unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("TLS: {}: ", missing.display())),
        "{err}"
    );
}

/// Waits for `serving on …` on a child's stdout and returns that line.
async fn serving_line(child: &mut tokio::process::Child) -> String {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    within(60, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.starts_with("serving on ") {
                return line;
            }
        }
        panic!("the process ended before serving");
    })
    .await
}

fn vector(id: &str, v: [f32; 2]) -> Doc {
    Doc::with_id(id).with_embedding(NdArray::from_f32(v.to_vec()))
}

/// A `flotilla executor` serving TLS (`--ssl-certfile/--ssl-keyfile`) is an external Executor
/// of a `flotilla flow` at `grpcs://` (Jina's scheme), trusted through
/// `GRPC_DEFAULT_SSL_ROOTS_FILE_PATH`: docs indexed through the Flow are found by a search
/// through it. The same address in plain gRPC, or over TLS without trusting the CA, fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_calls_an_external_executor_over_tls() {
    let (cert, key) = self_signed();
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_file, &cert).unwrap();
    std::fs::write(&key_file, &key).unwrap();
    let (exec_port, flow_port) = (free_port(), free_port());

    let mut executor = tokio::process::Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args([
            "executor",
            "--uses",
            "ExactNNIndexer",
            "--uses-with",
            r#"{"dim": 2}"#,
        ])
        .args(["--host", "127.0.0.1", "--port", &exec_port.to_string()])
        .arg("--ssl-certfile")
        .arg(&cert_file)
        .arg("--ssl-keyfile")
        .arg(&key_file)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    assert_eq!(
        serving_line(&mut executor).await,
        format!("serving on grpcs://127.0.0.1:{exec_port}")
    );

    let yaml = dir.path().join("flow.yml");
    std::fs::write(
        &yaml,
        format!(
            "jtype: Flow\nwith:\n  port: {flow_port}\nexecutors:\n  - name: idx\n    \
             external: true\n    host: grpcs://localhost:{exec_port}\n"
        ),
    )
    .unwrap();
    let mut flow = tokio::process::Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args(["flow", "--host", "127.0.0.1", "--uses"])
        .arg(&yaml)
        .env(flotilla::grpc::tls::ROOTS_ENV, &cert_file)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    serving_line(&mut flow).await;

    let client = Client::new(&format!("grpc://127.0.0.1:{flow_port}")).expect("an address");
    let index: DocList = [
        vector("east", [1.0, 0.0]),
        vector("north", [0.0, 1.0]),
        vector("west", [-1.0, 0.0]),
    ]
    .into_iter()
    .collect();
    within(30, client.post("/index", index))
        .await
        .expect("indexed through the TLS Executor");
    let found = within(30, client.post("/search", vector("q", [0.9, 0.2])))
        .await
        .expect("searched through the TLS Executor");
    let matches: Vec<&str> = found[0]
        .matches()
        .expect("matches")
        .iter()
        .map(|m| m.id())
        .collect();
    assert_eq!(matches, ["east", "north", "west"]);

    // The Executor serves TLS only: the same address spoken to in plain gRPC is refused, and
    // over TLS (`tls: true`) without trusting its CA the handshake fails; neither reaches it.
    for tls in [false, true] {
        let plain = flotilla::Flow::new()
            .add(
                flotilla::Exec::new()
                    .name("idx")
                    .external_at(vec![format!("localhost:{exec_port}")])
                    .tls(tls),
            )
            .start()
            .expect("the Flow starts (connections are made on first use)");
        let err = within(30, plain.post("/search", vector("q", [0.9, 0.2])))
            .await
            .expect_err("refused");
        assert!(
            err.to_string().contains(&format!("localhost:{exec_port}")),
            "tls {tls}: {err}"
        );
        plain.close();
    }
    executor.kill().await.unwrap();
    flow.kill().await.unwrap();
}

/// A roots file (`GRPC_DEFAULT_SSL_ROOTS_FILE_PATH`) that holds no certificate is named, once,
/// under the key that asked for TLS, before anything starts.
#[test]
fn a_roots_file_without_a_certificate_is_named_once() {
    let dir = tempfile::tempdir().unwrap();
    let roots = dir.path().join("roots.pem");
    std::fs::write(&roots, "not a certificate\n").unwrap();
    let yaml = dir.path().join("flow.yml");
    std::fs::write(
        &yaml,
        "jtype: Flow\nexecutors:\n  - name: idx\n    external: true\n    host: localhost\n    \
         port: [7001, 7002]\n    tls: true\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args(["flow", "--dry-run", "--uses"])
        .arg(&yaml)
        .env(flotilla::grpc::tls::ROOTS_ENV, &roots)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let want = format!(
        "executor 'idx', key 'tls': TLS to localhost:7001: {}={}: no PEM block \"CERTIFICATE\"",
        flotilla::grpc::tls::ROOTS_ENV,
        roots.display()
    );
    assert!(err.contains(&want), "{err}");
    assert_eq!(err.matches("no PEM block").count(), 1, "{err}");
}
