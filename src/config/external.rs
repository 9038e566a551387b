//! The addresses of an external Executor, by Jina's rules (jina-protocol.md §4.11): `host` and
//! `port` may each be one value or a list; one host and N ports, N hosts and one port, or N of
//! each (paired) make N replicas; a host may carry its own port (`'localhost:12345'`) and a
//! scheme: `grpc://`, or `grpcs://` for TLS (as `tls: true` does for every address).

use super::exec::{OneOrMany, Scalar};

/// One replica's address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    pub host: String,
    pub port: u16,
    /// Given as `grpcs://` (or `https://`).
    pub tls: bool,
}

fn port_of(s: &str) -> Result<u16, String> {
    s.trim()
        .parse::<u16>()
        .map_err(|_| format!("'{s}' is not a port"))
}

/// One `host` entry: `host[:port]` with an optional scheme.
struct Entry {
    host: String,
    port: Option<u16>,
    tls: bool,
}

/// `host[:port]` with an optional scheme, as given in one `host` entry.
fn split(entry: &str) -> Result<Entry, String> {
    let (rest, tls) = match entry.split_once("://") {
        Some((scheme, rest)) => match scheme {
            "grpc" | "http" => (rest, false),
            "grpcs" | "https" => (rest, true),
            other => {
                return Err(format!(
                    "'{entry}': the scheme '{other}' is not served (use grpc)"
                ));
            }
        },
        None => (entry, false),
    };
    let rest = rest.trim_end_matches('/');
    if rest.contains('/') {
        // A path would be taken for part of the host and the call sent elsewhere.
        return Err(format!(
            "'{entry}': a host is a name or an address, not a path"
        ));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !host.ends_with(':') => {
            (host.to_owned(), Some(port_of(port)?))
        }
        _ if rest.is_empty() => return Err(format!("'{entry}' names no host")),
        _ => (rest.to_owned(), None),
    };
    Ok(Entry { host, port, tls })
}

/// The replicas' addresses from `host` and `port`.
pub fn addresses(
    host: Option<&OneOrMany<String>>,
    port: Option<&OneOrMany<Scalar>>,
) -> Result<Vec<Address>, String> {
    let hosts: Vec<Entry> = match host {
        Some(h) => h
            .to_vec()
            .iter()
            .map(|e| split(e))
            .collect::<Result<_, _>>()?,
        None => vec![Entry {
            host: "localhost".to_owned(),
            port: None,
            tls: false,
        }],
    };
    let ports: Vec<u16> = match port {
        Some(p) => p
            .to_vec()
            .iter()
            .map(|s| port_of(&s.to_string()))
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    if hosts.iter().all(|e| e.port.is_some()) && ports.is_empty() {
        return Ok(hosts
            .into_iter()
            .map(|e| Address {
                host: e.host,
                port: e.port.unwrap_or_default(),
                tls: e.tls,
            })
            .collect());
    }
    if let Some(e) = hosts.iter().find(|e| e.port.is_some()) {
        return Err(format!(
            "'{}' carries a port, so `port` must not be given as well",
            e.host
        ));
    }
    let address = |e: &Entry, port: u16| Address {
        host: e.host.clone(),
        port,
        tls: e.tls,
    };
    match (hosts.len(), ports.len()) {
        (_, 0) => Err("an external Executor needs a `port` (or `host: ['host:port', …]`)".into()),
        (1, _) => Ok(ports.iter().map(|&p| address(&hosts[0], p)).collect()),
        (_, 1) => Ok(hosts.iter().map(|e| address(e, ports[0])).collect()),
        (h, p) if h == p => Ok(hosts
            .iter()
            .zip(ports)
            .map(|(e, p)| address(e, p))
            .collect()),
        (h, p) => Err(format!("{h} hosts and {p} ports cannot be paired")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(v: &[&str]) -> OneOrMany<String> {
        OneOrMany::Many(v.iter().map(|s| (*s).to_owned()).collect())
    }

    fn ports(v: &[i64]) -> OneOrMany<Scalar> {
        OneOrMany::Many(v.iter().map(|p| Scalar::Int(*p)).collect())
    }

    fn a(host: &str, port: u16) -> Address {
        Address {
            host: host.into(),
            port,
            tls: false,
        }
    }

    #[test]
    fn the_seeds_two_forms() {
        let h = hosts(&["localhost", "91.198.174.192"]);
        let p = OneOrMany::Many(vec![
            Scalar::Str("12345".into()),
            Scalar::Str("12346".into()),
        ]);
        let want = vec![a("localhost", 12345), a("91.198.174.192", 12346)];
        assert_eq!(addresses(Some(&h), Some(&p)).unwrap(), want);
        let h = hosts(&["localhost:12345", "91.198.174.192:12346"]);
        assert_eq!(addresses(Some(&h), None).unwrap(), want);
        let h = hosts(&["grpc://localhost:12345", "91.198.174.192:12346"]);
        assert_eq!(addresses(Some(&h), None).unwrap(), want);
    }

    #[test]
    fn grpcs_is_tls_per_address() {
        let h = hosts(&["grpcs://a:443", "b:1"]);
        let got = addresses(Some(&h), None).unwrap();
        assert_eq!(got.iter().map(|a| a.tls).collect::<Vec<_>>(), [true, false]);
        assert_eq!(got[0].host, "a");
        let one = OneOrMany::One("https://c".to_owned());
        let got = addresses(Some(&one), Some(&ports(&[1, 2]))).unwrap();
        assert!(got.iter().all(|a| a.tls && a.host == "c"));
    }

    #[test]
    fn one_host_many_ports_and_many_hosts_one_port() {
        let one = OneOrMany::One("h".to_owned());
        assert_eq!(
            addresses(Some(&one), Some(&ports(&[1, 2]))).unwrap(),
            vec![a("h", 1), a("h", 2)]
        );
        assert_eq!(
            addresses(Some(&hosts(&["a", "b"])), Some(&ports(&[7]))).unwrap(),
            vec![a("a", 7), a("b", 7)]
        );
        assert_eq!(
            addresses(None, Some(&ports(&[9]))).unwrap(),
            vec![a("localhost", 9)]
        );
    }

    #[test]
    fn errors() {
        assert!(
            addresses(Some(&hosts(&["a", "b", "c"])), Some(&ports(&[1, 2])))
                .unwrap_err()
                .contains("paired")
        );
        assert!(
            addresses(Some(&hosts(&["a"])), None)
                .unwrap_err()
                .contains("needs a `port`")
        );
        assert!(
            addresses(Some(&hosts(&["grpc://a/b:5"])), None)
                .unwrap_err()
                .contains("not a path")
        );
        assert!(
            addresses(Some(&hosts(&["a:x"])), None)
                .unwrap_err()
                .contains("not a port")
        );
        assert!(
            addresses(Some(&hosts(&["a:1"])), Some(&ports(&[2])))
                .unwrap_err()
                .contains("carries a port")
        );
    }
}
