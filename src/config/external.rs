//! The addresses of an external Executor, by Jina's rules (jina-protocol.md §4.11): `host` and
//! `port` may each be one value or a list; one host and N ports, N hosts and one port, or N of
//! each (paired) make N replicas; a host may carry its own port (`'localhost:12345'`) and a
//! scheme (`grpc://`). TLS to an external Executor (`grpcs://`, `https://`) is not spoken yet
//! and is an error.

use super::exec::{OneOrMany, Scalar};

/// One replica's address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    pub host: String,
    pub port: u16,
}

fn port_of(s: &str) -> Result<u16, String> {
    s.trim()
        .parse::<u16>()
        .map_err(|_| format!("'{s}' is not a port"))
}

/// `host[:port]` with an optional scheme, as given in one `host` entry.
fn split(entry: &str) -> Result<(String, Option<u16>), String> {
    let rest = match entry.split_once("://") {
        Some((scheme, rest)) => match scheme {
            "grpc" | "http" => rest,
            "grpcs" | "https" => {
                return Err(format!("'{entry}': TLS (grpcs) is not supported yet"));
            }
            other => {
                return Err(format!(
                    "'{entry}': the scheme '{other}' is not served (use grpc)"
                ));
            }
        },
        None => entry,
    };
    let rest = rest.trim_end_matches('/');
    match rest.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !host.ends_with(':') => {
            Ok((host.to_owned(), Some(port_of(port)?)))
        }
        _ if rest.is_empty() => Err(format!("'{entry}' names no host")),
        _ => Ok((rest.to_owned(), None)),
    }
}

/// The replicas' addresses from `host` and `port`.
pub fn addresses(
    host: Option<&OneOrMany<String>>,
    port: Option<&OneOrMany<Scalar>>,
) -> Result<Vec<Address>, String> {
    let hosts: Vec<(String, Option<u16>)> = match host {
        Some(h) => h
            .to_vec()
            .iter()
            .map(|e| split(e))
            .collect::<Result<_, _>>()?,
        None => vec![("localhost".to_owned(), None)],
    };
    let ports: Vec<u16> = match port {
        Some(p) => p
            .to_vec()
            .iter()
            .map(|s| port_of(&s.to_string()))
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    if hosts.iter().all(|(_, p)| p.is_some()) && ports.is_empty() {
        return Ok(hosts
            .into_iter()
            .map(|(host, port)| Address {
                host,
                port: port.unwrap_or_default(),
            })
            .collect());
    }
    if let Some((h, _)) = hosts.iter().find(|(_, p)| p.is_some()) {
        return Err(format!(
            "'{h}' carries a port, so `port` must not be given as well"
        ));
    }
    let hosts: Vec<String> = hosts.into_iter().map(|(h, _)| h).collect();
    let pairs: Vec<(String, u16)> = match (hosts.len(), ports.len()) {
        (_, 0) => {
            return Err("an external Executor needs a `port` (or `host: ['host:port', …]`)".into());
        }
        (1, _) => ports.iter().map(|&p| (hosts[0].clone(), p)).collect(),
        (_, 1) => hosts.iter().map(|h| (h.clone(), ports[0])).collect(),
        (h, p) if h == p => hosts.into_iter().zip(ports).collect(),
        (h, p) => return Err(format!("{h} hosts and {p} ports cannot be paired")),
    };
    Ok(pairs
        .into_iter()
        .map(|(host, port)| Address { host, port })
        .collect::<Vec<_>>())
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
            addresses(Some(&hosts(&["grpcs://a:443"])), None)
                .unwrap_err()
                .contains("TLS")
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
