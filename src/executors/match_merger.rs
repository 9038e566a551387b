use std::cmp::Ordering;

use flotilla_actors::prelude::*;
use flotilla_actors::reduce;
use serde::Deserialize;

/// Merges the matches that several shards found for the same query and keeps the best `top_k`
/// by score — what Jina's default reduce does not do (it concatenates, unsorted,
/// `top_k × shards` matches). Use it as `uses_after` of a sharded search.
///
/// The score is the named score `score_name`, or each match's first score when unset; higher is
/// better unless `higher_is_better` is false (distances). Matches without the score go last.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MatchMerger {
    pub top_k: usize,
    pub score_name: Option<String>,
    pub higher_is_better: bool,
}

impl Default for MatchMerger {
    fn default() -> Self {
        MatchMerger {
            top_k: 10,
            score_name: None,
            higher_is_better: true,
        }
    }
}

impl Executor for MatchMerger {
    fn requests(r: &mut Requests<Self>) {
        r.default(MatchMerger::merge);
        // Usually a few microseconds: callers run it themselves while that holds.
        r.inline();
    }
}

impl MatchMerger {
    fn score(&self, d: &Doc) -> Option<f64> {
        match &self.score_name {
            Some(name) => d.score(name),
            None => {
                let (name, _) = d.scores()?.first()?;
                d.score(name)
            }
        }
    }

    fn merge(&mut self, req: &mut Request, _ctx: &Context) -> DocList {
        // One DocList per shard; without a matrix (a single part) merge the docs themselves.
        let parts: Vec<DocList> = if req.docs_matrix.is_empty() {
            vec![std::mem::take(&mut req.docs)]
        } else {
            req.docs_matrix.drain(..).map(|p| p.docs).collect()
        };
        let mut docs = reduce::reduce(parts);
        let limit = req
            .parameter("top_k")
            .or_else(|| req.parameter("limit"))
            .and_then(serde_json::Value::as_u64)
            .map_or(self.top_k, |k| k as usize);
        for d in docs.iter_mut() {
            if d.matches().is_none() {
                continue;
            }
            let m = d.matches_mut();
            let mut scored: Vec<(Option<f64>, Doc)> =
                m.drain(..).map(|x| (self.score(&x), x)).collect();
            scored.sort_by(|(a, _), (b, _)| match (a, b) {
                (Some(a), Some(b)) => {
                    let o = a.partial_cmp(b).unwrap_or(Ordering::Equal);
                    if self.higher_is_better {
                        o.reverse()
                    } else {
                        o
                    }
                }
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            });
            scored.truncate(limit);
            m.extend(scored.into_iter().map(|(_, x)| x));
        }
        docs
    }
}
