//! Helpers for the config tests: the errors a YAML text compiles to.
#![allow(dead_code)]

use flotilla::config::ConfigErrors;
use flotilla::config::yaml::{self, Loaded};

/// The errors `text` (as if read from `file`) gives, from parsing or from compiling its graph.
pub fn errors(file: &str, text: &str) -> ConfigErrors {
    match yaml::parse(text, Some(file)) {
        Err(e) => e,
        Ok(Loaded::Flow(f)) => f.graph().expect_err("an invalid Flow"),
        Ok(Loaded::Deployment(d)) => d.graph().expect_err("an invalid Deployment"),
    }
}

/// `text` is refused with an error that contains `want`.
pub fn expect(file: &str, text: &str, want: &str) {
    let e = errors(file, text);
    assert!(e.mentions(want), "expected «{want}» in:\n{e}");
}
