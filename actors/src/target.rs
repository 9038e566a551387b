//! Requests aimed at some Executors of a Flow: Jina's `target_executor` and its
//! executor-specific parameters.
//!
//! - `target_executor` is a regex: only the nodes whose name it matches from the start (Python's
//!   `re.match`) run the request; the others hand it on (see `Router::pass`), no Executor
//!   called. The syntax is the `regex` crate's: Python's lookaround and backreferences are
//!   refused as invalid, as is a pattern that would compile to more than [`REGEX_BYTES`].
//! - A parameter `"<executor>__<key>"` reaches only that Executor, as `<key>`, and no other one
//!   sees it; a parameter named after an Executor whose value is a non-empty object is merged
//!   into that Executor's parameters. Keys that start or end with `__` (`__results__`) are
//!   ordinary keys. The split is Jina's: the key is what follows the last `__`, the Executor's
//!   name the pieces before it joined without separator. What an Executor sees is computed per
//!   node; the request travels on with the parameters the client sent, so every node finds its
//!   own.

use regex::{Regex, RegexBuilder};

use crate::dispatch::DispatchError;
use crate::request::Params;

const SEPARATOR: &str = "__";

/// The most memory a compiled `target_executor` may take: it comes from the network.
pub const REGEX_BYTES: usize = 1 << 20;

/// A compiled `target_executor`.
#[derive(Clone, Debug)]
pub struct TargetExecutor {
    pattern: Box<str>,
    regex: Regex,
}

impl TargetExecutor {
    /// Compiles `pattern` as it is; a pattern that is not a regex is the caller's error.
    pub fn new(pattern: &str) -> Result<Self, DispatchError> {
        RegexBuilder::new(pattern)
            .size_limit(REGEX_BYTES)
            .build()
            .map(|regex| TargetExecutor {
                pattern: pattern.into(),
                regex,
            })
            .map_err(|e| DispatchError::BadRequest {
                message: format!("target_executor {pattern:?} is not a regex: {e}"),
            })
    }

    /// The pattern it was compiled from.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Whether the node named `name` runs the request: the pattern matches at its start. (The
    /// leftmost match starts at 0 exactly when some match does.)
    pub fn matches(&self, name: &str) -> bool {
        self.regex.find(name).is_some_and(|m| m.start() == 0)
    }
}

/// Whether `key` names a parameter for one Executor.
fn is_specific(key: &str) -> bool {
    key.contains(SEPARATOR) && !key.starts_with(SEPARATOR) && !key.ends_with(SEPARATOR)
}

/// The parameters the Executor of node `name` sees, or `None` when they are `params` as they
/// are (no key is aimed at any Executor: the common case, which allocates nothing).
pub fn parameters_for(params: &Params, name: &str) -> Option<Params> {
    let merged = params
        .get(name)
        .and_then(serde_json::Value::as_object)
        .filter(|m| !m.is_empty());
    if merged.is_none() && !params.keys().any(|k| is_specific(k)) {
        return None;
    }
    let mut out = params.clone();
    for (key, value) in params {
        if !is_specific(key) {
            continue;
        }
        let mut pieces: Vec<&str> = key.split(SEPARATOR).collect();
        let own_key = pieces.pop().unwrap_or_default();
        if pieces.concat() == name {
            out.insert(own_key.to_owned(), value.clone());
        }
        // In place, as Python's `del` leaves the other keys.
        out.shift_remove(key);
    }
    if let Some(m) = merged {
        for (k, v) in m {
            out.insert(k.clone(), v.clone());
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(v: serde_json::Value) -> Params {
        v.as_object().expect("an object").clone()
    }

    #[test]
    fn plain_parameters_are_left_alone() {
        let p = params(json!({"limit": 3, "__results__": {"a": 1}, "x__": 1, "__y": 2}));
        assert_eq!(parameters_for(&p, "indexer"), None);
    }

    #[test]
    fn a_specific_key_reaches_its_executor_only() {
        let p = params(json!({"limit": 3, "indexer__limit": 5, "ranker__depth": 2}));
        assert_eq!(
            parameters_for(&p, "indexer"),
            Some(params(json!({"limit": 5})))
        );
        assert_eq!(
            parameters_for(&p, "ranker"),
            Some(params(json!({"limit": 3, "depth": 2})))
        );
        assert_eq!(
            parameters_for(&p, "other"),
            Some(params(json!({"limit": 3})))
        );
    }

    #[test]
    fn the_split_is_jinas() {
        // The key after the last separator; the pieces before it joined without one.
        let p = params(json!({"my__exec__k": 1, "a___b": 2}));
        assert_eq!(parameters_for(&p, "myexec"), Some(params(json!({"k": 1}))));
        assert_eq!(parameters_for(&p, "a"), Some(params(json!({"_b": 2}))));
        assert_eq!(parameters_for(&p, "my__exec"), Some(Params::new()));
    }

    #[test]
    fn an_object_named_after_the_executor_is_merged() {
        let p = params(json!({"limit": 3, "indexer": {"limit": 7, "deep": true}}));
        assert_eq!(
            parameters_for(&p, "indexer"),
            Some(params(
                json!({"limit": 7, "indexer": {"limit": 7, "deep": true}, "deep": true})
            ))
        );
        assert_eq!(parameters_for(&p, "ranker"), None);
        // Not an object, or empty: nothing to merge.
        let p = params(json!({"indexer": 1, "ranker": {}}));
        assert_eq!(parameters_for(&p, "indexer"), None);
        assert_eq!(parameters_for(&p, "ranker"), None);
    }

    #[test]
    fn target_executor_matches_from_the_start() {
        let t = TargetExecutor::new("enc").expect("a regex");
        assert!(t.matches("encoder"));
        assert!(!t.matches("reencoder"));
        let t = TargetExecutor::new("a|b.*r").expect("a regex");
        assert!(t.matches("a1") && t.matches("bar") && !t.matches("ca"));
        let e = TargetExecutor::new("(").expect_err("not a regex");
        assert!(e.to_string().contains("target_executor \"(\""), "{e}");
        // Not anchored by rewriting: an alternative cannot escape the anchor, and a comment
        // cannot swallow it.
        let t = TargetExecutor::new("x)|(enc").map(|_| ());
        assert!(t.is_err(), "Python refuses it too");
        let t = TargetExecutor::new("(?x) enc # a comment").expect("a regex");
        assert!(t.matches("encoder") && !t.matches("reencoder"));
        let t = TargetExecutor::new("b|enc").expect("a regex");
        assert!(t.matches("encoder") && !t.matches("abc"));
        // Too big to compile from a request.
        assert!(TargetExecutor::new("(a{1000}){1000}").is_err());
    }
}
