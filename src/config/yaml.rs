//! Jina's YAML: `jtype: Flow` with `executors:`, `jtype: Deployment` with `with:` (or its keys
//! at the top level). The YAML becomes the same [`Exec`] entries the builder writes, and serde's
//! errors keep their line; later errors get theirs from [`Lines`].

use std::path::Path;

use serde::Deserialize;

use super::error::{ConfigError, ConfigErrors, Place};
use super::exec::{Exec, Scalar};
use super::locate::Lines;
use crate::deployment::Deployment;
use crate::error::Error;
use crate::flow::Flow;

/// A Flow's own settings (`with:` at the top of a Flow YAML).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FlowWith {
    pub name: Option<String>,
    /// The gateway's port.
    pub port: Option<u16>,
    /// Only `grpc` is served.
    pub protocol: Option<String>,
    /// Requests in flight per client stream.
    pub prefetch: Option<usize>,
    /// The gateway serves over TLS with this certificate chain (PEM; `flotilla flow`).
    pub ssl_certfile: Option<String>,
    /// The certificate's private key (PEM).
    pub ssl_keyfile: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowDoc {
    #[allow(dead_code)]
    jtype: String,
    #[allow(dead_code)]
    version: Option<Scalar>,
    with: Option<FlowWith>,
    #[serde(default)]
    executors: Vec<Exec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeploymentDoc {
    #[allow(dead_code)]
    jtype: String,
    #[allow(dead_code)]
    version: Option<Scalar>,
    with: Exec,
}

/// What a YAML file describes.
pub enum Loaded {
    Flow(Box<Flow>),
    Deployment(Box<Deployment>),
}

impl Loaded {
    /// The Flow, if the YAML was a Flow.
    pub fn into_flow(self) -> Option<Flow> {
        match self {
            Loaded::Flow(f) => Some(*f),
            Loaded::Deployment(_) => None,
        }
    }

    /// The Deployment, if the YAML was a Deployment.
    pub fn into_deployment(self) -> Option<Deployment> {
        match self {
            Loaded::Deployment(d) => Some(*d),
            Loaded::Flow(_) => None,
        }
    }
}

fn error(file: Option<&str>, line: Option<usize>, message: impl Into<String>) -> ConfigErrors {
    ConfigErrors(vec![ConfigError {
        place: Place {
            file: file.map(str::to_owned),
            line,
            ..Place::default()
        },
        message: message.into(),
    }])
}

fn serde_error(file: Option<&str>, e: &serde_yaml::Error) -> ConfigErrors {
    // serde_yaml appends " at line L column C"; the place says it already.
    let text = e.to_string();
    let message = match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    };
    error(file, e.location().map(|l| l.line()), message)
}

/// Reads a YAML file.
pub fn load(path: impl AsRef<Path>) -> Result<Loaded, Error> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(parse(&text, Some(&path.display().to_string()))?)
}

/// Parses YAML text; `file` is only used in error messages.
pub fn parse(text: &str, file: Option<&str>) -> Result<Loaded, ConfigErrors> {
    let doc: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| serde_error(file, &e))?;
    let Some(map) = doc.as_mapping() else {
        return Err(error(
            file,
            Some(1),
            "expected a mapping with `jtype: Flow` or `jtype: Deployment`",
        ));
    };
    let lines_of = |key: &str| Lines::flow(text, file).top_key(key);
    let jtype = match map.get("jtype") {
        Some(serde_yaml::Value::String(s)) => s.as_str(),
        Some(_) => {
            return Err(error(
                file,
                lines_of("jtype"),
                "`jtype` must be Flow or Deployment",
            ));
        }
        None => {
            return Err(error(
                file,
                Some(1),
                "missing `jtype: Flow` or `jtype: Deployment`",
            ));
        }
    };
    match jtype {
        "Flow" => {
            let doc: FlowDoc = serde_yaml::from_str(text).map_err(|e| serde_error(file, &e))?;
            let lines = Lines::flow(text, file);
            let with = doc.with.unwrap_or_default();
            if let Some(p) = &with.protocol
                && !p.eq_ignore_ascii_case("grpc")
            {
                return Err(error(
                    file,
                    lines.top_key("with"),
                    format!("protocol '{p}' is not served; flotilla speaks grpc"),
                ));
            }
            Ok(Loaded::Flow(Box::new(Flow::new().with_yaml(
                doc.executors,
                lines,
                with,
            ))))
        }
        "Deployment" => {
            let exec = if map.contains_key("with") {
                let doc: DeploymentDoc =
                    serde_yaml::from_str(text).map_err(|e| serde_error(file, &e))?;
                doc.with
            } else {
                let mut rest = map.clone();
                rest.remove("jtype");
                rest.remove("version");
                serde_yaml::from_value::<Exec>(serde_yaml::Value::Mapping(rest)).map_err(|e| {
                    let lines = Lines::flow(text, file);
                    let text = e.to_string();
                    let line = text
                        .strip_prefix("unknown field `")
                        .and_then(|r| r.split('`').next())
                        .and_then(|key| lines.top_key(key));
                    error(file, line, text)
                })?
            };
            Ok(Loaded::Deployment(Box::new(
                Deployment::of(exec).with_yaml(Lines::deployment(text, file)),
            )))
        }
        other => Err(error(
            file,
            lines_of("jtype"),
            format!("unknown jtype '{other}' (expected Flow or Deployment)"),
        )),
    }
}
