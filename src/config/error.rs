//! Config errors, each naming its place: file and line, Executor, key.

use std::fmt;

/// Where in the config something is wrong.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Place {
    /// The YAML file, if the config came from one.
    pub file: Option<String>,
    /// The 1-based line in that file.
    pub line: Option<usize>,
    /// The Executor's name (or `executors[i]` when it has none yet).
    pub executor: Option<String>,
    /// The key, such as `needs` or `polling`.
    pub key: Option<String>,
}

/// One thing wrong with a config.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub place: Place,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.place;
        match (&p.file, p.line) {
            (Some(file), Some(line)) => write!(f, "{file}:{line}: ")?,
            (Some(file), None) => write!(f, "{file}: ")?,
            (None, Some(line)) => write!(f, "line {line}: ")?,
            (None, None) => {}
        }
        match (&p.executor, &p.key) {
            (Some(e), Some(k)) => write!(f, "executor '{e}', key '{k}': ")?,
            (Some(e), None) => write!(f, "executor '{e}': ")?,
            (None, Some(k)) => write!(f, "key '{k}': ")?,
            (None, None) => {}
        }
        f.write_str(&self.message)
    }
}

/// Every error found in one config, in order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl ConfigErrors {
    /// Whether any error's text contains `needle` (for tests and tools).
    pub fn mentions(&self, needle: &str) -> bool {
        self.0.iter().any(|e| e.to_string().contains(needle))
    }
}
