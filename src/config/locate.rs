//! Finds the YAML line of an Executor entry and of its keys, so that errors found after parsing
//! (unknown `needs`, a cycle, a bad `when` …) can name the line as serde's own errors do.
//!
//! serde_yaml keeps no positions once a document is parsed, so this reads the text: the entries
//! of `executors:` are the items of that block sequence, and a key is the first line of its item
//! that starts with `key:` at the item's shallowest indentation.

use super::compile::Locate;

/// Line ranges of the entries of one YAML config.
pub struct Lines {
    file: Option<String>,
    lines: Vec<String>,
    /// For each entry, its first and last line (0-based, inclusive).
    entries: Vec<(usize, usize)>,
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn is_blank(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

impl Lines {
    /// The entries of a Flow's `executors:` sequence.
    pub fn flow(text: &str, file: Option<&str>) -> Lines {
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let mut entries = Vec::new();
        if let Some(start) = lines
            .iter()
            .position(|l| indent(l) == 0 && l.starts_with("executors:"))
        {
            let mut item_indent = None;
            let mut end = lines.len();
            for (n, l) in lines.iter().enumerate().skip(start + 1) {
                if is_blank(l) {
                    continue;
                }
                let ind = indent(l);
                if ind == 0 && !l.trim_start().starts_with('-') {
                    end = n;
                    break;
                }
                let t = l.trim_start();
                if t.starts_with("- ") || t == "-" {
                    let want = *item_indent.get_or_insert(ind);
                    if ind == want {
                        if let Some(last) = entries.last_mut() {
                            let (_, e): &mut (usize, usize) = last;
                            *e = n - 1;
                        }
                        entries.push((n, n));
                    }
                }
            }
            if let Some(last) = entries.last_mut() {
                last.1 = end.saturating_sub(1);
            }
        }
        Lines {
            file: file.map(str::to_owned),
            lines,
            entries,
        }
    }

    /// The one entry of a Deployment: its `with:` block, or the whole document.
    pub fn deployment(text: &str, file: Option<&str>) -> Lines {
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let span = match lines
            .iter()
            .position(|l| indent(l) == 0 && l.starts_with("with:"))
        {
            Some(start) => {
                let end = lines
                    .iter()
                    .enumerate()
                    .skip(start + 1)
                    .find(|(_, l)| !is_blank(l) && indent(l) == 0)
                    .map_or(lines.len(), |(n, _)| n);
                (start, end.saturating_sub(1))
            }
            None => (0, lines.len().saturating_sub(1)),
        };
        Lines {
            file: file.map(str::to_owned),
            lines,
            entries: vec![span],
        }
    }

    /// The 1-based line of `key` at the top level (outside every entry).
    pub fn top_key(&self, key: &str) -> Option<usize> {
        self.lines
            .iter()
            .position(|l| indent(l) == 0 && l.starts_with(&format!("{key}:")))
            .map(|n| n + 1)
    }
}

impl Locate for Lines {
    fn line(&self, entry: usize, key: Option<&str>) -> Option<usize> {
        let &(start, end) = self.entries.get(entry)?;
        let Some(key) = key else {
            return Some(start + 1);
        };
        let prefix = format!("{key}:");
        let mut best: Option<(usize, usize)> = None;
        for n in start..=end.min(self.lines.len().saturating_sub(1)) {
            let l = &self.lines[n];
            let t = l.trim_start();
            let (t, ind) = match t.strip_prefix("- ") {
                Some(rest) => (rest.trim_start(), l.len() - rest.trim_start().len()),
                None => (t, indent(l)),
            };
            if t.starts_with(&prefix) && best.is_none_or(|(_, i)| ind < i) {
                best = Some((n, ind));
            }
        }
        best.map(|(n, _)| n + 1)
    }

    fn file(&self) -> Option<&str> {
        self.file.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOW: &str = "jtype: Flow\nwith:\n  port: 1\nexecutors:\n  - name: a\n    uses: Echo\n  # a comment\n  - name: b\n    needs: a\n    uses_with:\n      needs: 3\n  -\n    name: c\n";

    #[test]
    fn finds_entries_and_keys() {
        let l = Lines::flow(FLOW, Some("f.yml"));
        assert_eq!(l.line(0, None), Some(5));
        assert_eq!(l.line(0, Some("uses")), Some(6));
        assert_eq!(l.line(1, None), Some(8));
        // The entry's own `needs`, not the nested one.
        assert_eq!(l.line(1, Some("needs")), Some(9));
        assert_eq!(l.line(2, Some("name")), Some(13));
        assert_eq!(l.line(2, Some("needs")), None);
        assert_eq!(l.top_key("with"), Some(2));
    }

    #[test]
    fn deployment_with_block() {
        let text = "jtype: Deployment\nwith:\n  uses: Echo\n  replicas: 0\n";
        let l = Lines::deployment(text, None);
        assert_eq!(l.line(0, Some("replicas")), Some(4));
    }
}
