//! The `when` filter language: DocArray's Mongo-like query language, parsed once and evaluated
//! per doc.
//!
//! A Flow node with `when` only sees the docs its query keeps. The query is parsed and validated
//! when the Flow is built ([`Query::parse`]), so a typo fails the build instead of silently
//! dropping docs at run time; evaluation ([`Query::matches`]) allocates nothing.
//!
//! # The language
//! - A query is a JSON object. Several keys at one level are combined with AND.
//! - `$and`, `$or`: a list of sub-queries (or a map, read as a list of one-key maps).
//!   `$not`: one sub-query (a map).
//! - `{"<path>": {"$op": operand, …}}`: a field condition; several operators on one field are
//!   combined with AND. `{"<path>": literal}` is short for `{"<path>": {"$eq": literal}}`.
//! - Operators: `$eq`, `$ne` (also spelt `$neq`), `$gt`, `$gte`, `$lt`, `$lte`, `$in`, `$nin`
//!   (a list), `$regex` (unanchored search, like Python's `re.search`), `$size` (Python `len()`
//!   equals), `$exists` (a bool).
//! - Paths descend with `__`: the first segment is a doc field or `id`, later ones are dict keys,
//!   fields (or `id`) of nested docs, and integer indexes (negative from the end) into lists,
//!   tuples and doc lists: `tags__key`, `matches__0__id`. Type tags are looked through.
//! - A string operand `"{name}"` is a placeholder for the value of the same doc's field `name`.
//!
//! # Where this differs from docarray (`docarray/utils/filter.py`)
//! - Sibling keys are a plain AND. docarray turns keys that follow a leading `$or` into further
//!   OR branches; that ordering-dependent quirk is not reproduced.
//! - `{"<path>": literal}` means `$eq` (docarray rejects it); `$ne` is accepted besides `$neq`.
//! - A path that does not resolve makes every condition false except `$exists: false`, which is
//!   true. That includes `$ne` and `$nin` (docarray returns False for a missing path too).
//! - Where Python would raise (ordering a string against a number, `$gt` on `None`, `$regex` on
//!   a non-string, `len()` of a number), the condition is false.
//! - Bools equal only bools: `true` does not equal `1` (in Python it does).
//! - JSON has no tuples or sets, so a JSON list equals a list or tuple with equal items in order,
//!   and a set with the same items in any order.
//! - Dict keys are always strings: `tags__0` reads the key `"0"` of a dict (docarray would try the
//!   integer key `0`). The segment `id` of a doc is always its id. Tensors are not indexed, and a
//!   doc list has no column access (`matches__id` does not resolve; use `matches__0__id`).
//! - `$in` tests membership by equality: a list-valued field is compared as a whole with each
//!   element (Python's `in`, not Mongo's "any element").
//! - `$exists: true` means the path resolves to a value that is not `None`.
//! - Placeholders: the whole string must be `{name}` (spaces inside the braces allowed); any other
//!   string is a literal (docarray rejects strings that start with `{` but are not placeholders).
//!   `name` may itself be a `__` path; a missing field reads as `None`, as in docarray. `$in` and
//!   `$nin` take a placeholder for the whole list. `$regex`, `$size` and `$exists` take no
//!   placeholders: regexes are compiled at parse time.
//! - Logical operators inside a field condition (`{"f": {"$or": …}}`) are rejected: docarray
//!   silently ignores the field name there.
//! - Empty `$and`/`$or` lists or maps, empty sub-queries and empty operator maps are errors; only
//!   the whole query may be `{}`, which keeps every doc (as in docarray).

use std::cmp::Ordering;
use std::fmt;

use regex::Regex;
use serde_json::Value as J;

use crate::doc::{Doc, Value};

/// Why a query was rejected. Every message starts with where in the query the problem is: a
/// dotted chain of keys, with list positions in brackets (`$or[1].tags__key.$in`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    #[error("{at}: expected {expected}, got {found}")]
    Expected {
        at: String,
        expected: &'static str,
        found: String,
    },
    #[error("{at}: unknown operator `{op}`{hint}")]
    UnknownOperator {
        at: String,
        op: String,
        hint: &'static str,
    },
    #[error(
        "{at}: logical operator `{op}` is not allowed inside a field condition; put it at the top level"
    )]
    MisplacedLogical { at: String, op: String },
    #[error("{at}: empty {what}")]
    Empty { at: String, what: &'static str },
    #[error("{at}: invalid path `{path}`: {reason}")]
    BadPath {
        at: String,
        path: String,
        reason: &'static str,
    },
    #[error("{at}: invalid regex: {message}")]
    BadRegex { at: String, message: String },
}

/// A parsed `when` query. Cheap to evaluate and to share between threads.
#[derive(Clone, Debug)]
pub struct Query {
    root: Node,
    source: J,
}

impl Query {
    /// Parses and validates a query. All errors are found here, none at evaluation time.
    pub fn parse(q: &J) -> Result<Query, QueryError> {
        let root = match q {
            J::Object(m) if m.is_empty() => Node::All(Vec::new()),
            J::Object(_) => parse_query(q, "query", "")?,
            other => {
                return Err(QueryError::Expected {
                    at: "query".into(),
                    expected: "a map of conditions",
                    found: describe(other),
                });
            }
        };
        Ok(Query {
            root,
            source: q.clone(),
        })
    }

    /// Whether the doc passes the query.
    pub fn matches(&self, doc: &Doc) -> bool {
        self.root.eval(doc)
    }
}

impl fmt::Display for Query {
    /// The query as it was given, in compact JSON.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)
    }
}

#[derive(Clone, Debug)]
enum Node {
    /// AND; empty only for the whole query `{}`, which keeps everything.
    All(Vec<Node>),
    Any(Vec<Node>),
    Not(Box<Node>),
    /// Conditions on one field, resolved once and combined with AND.
    Field {
        path: Path,
        ops: Vec<Op>,
    },
}

impl Node {
    fn eval(&self, doc: &Doc) -> bool {
        match self {
            Node::All(v) => v.iter().all(|n| n.eval(doc)),
            Node::Any(v) => v.iter().any(|n| n.eval(doc)),
            Node::Not(n) => !n.eval(doc),
            Node::Field { path, ops } => {
                let target = path.resolve(doc);
                ops.iter().all(|op| op.eval(target, doc))
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum CmpOp {
    Gt,
    Gte,
    Lt,
    Lte,
}

#[derive(Clone, Debug)]
enum Op {
    Eq(Operand),
    Ne(Operand),
    Cmp(CmpOp, Operand),
    In(Members),
    Nin(Members),
    Regex(Regex),
    Size(usize),
    Exists(bool),
}

/// A comparison operand: a literal, or a placeholder read from the same doc.
#[derive(Clone, Debug)]
enum Operand {
    Lit(Value),
    Field(Path),
}

/// The operand of `$in`/`$nin`.
#[derive(Clone, Debug)]
enum Members {
    Lit(Vec<Value>),
    Field(Path),
}

/// `None` for placeholders naming a missing field (docarray's `getattr(doc, name, None)`).
static NONE: Value = Value::None;

impl Operand {
    fn get<'a>(&'a self, doc: &'a Doc) -> View<'a> {
        match self {
            Operand::Lit(v) => View::Val(v),
            Operand::Field(p) => p.resolve(doc).unwrap_or(View::Val(&NONE)),
        }
    }
}

impl Op {
    fn eval(&self, target: Option<View<'_>>, doc: &Doc) -> bool {
        let Some(t) = target else {
            return matches!(self, Op::Exists(false));
        };
        match self {
            Op::Eq(o) => view_eq(t, o.get(doc)),
            Op::Ne(o) => !view_eq(t, o.get(doc)),
            Op::Cmp(op, o) => match view_cmp(t, o.get(doc)) {
                None => false,
                Some(ord) => match op {
                    CmpOp::Gt => ord == Ordering::Greater,
                    CmpOp::Gte => ord != Ordering::Less,
                    CmpOp::Lt => ord == Ordering::Less,
                    CmpOp::Lte => ord != Ordering::Greater,
                },
            },
            Op::In(m) => m.contains(t, doc) == Some(true),
            Op::Nin(m) => m.contains(t, doc) == Some(false),
            Op::Regex(re) => t.as_str().is_some_and(|s| re.is_match(s)),
            Op::Size(n) => t.len() == Some(*n),
            Op::Exists(want) => t.exists() == *want,
        }
    }
}

impl Members {
    /// Python's `t in members`; `None` where Python would raise.
    fn contains(&self, t: View<'_>, doc: &Doc) -> Option<bool> {
        let container = match self {
            Members::Lit(items) => return Some(items.iter().any(|x| view_eq(t, View::Val(x)))),
            Members::Field(p) => p.resolve(doc)?,
        };
        match container {
            View::Str(s) => t.as_str().map(|needle| s.contains(needle)),
            View::Doc(_) => None,
            View::Val(v) => match v.untyped() {
                Value::List(items) | Value::Set(items) | Value::Tuple(items) => {
                    Some(items.iter().any(|x| view_eq(t, View::Val(x))))
                }
                Value::Text(s) => t.as_str().map(|needle| s.contains(needle)),
                Value::Dict(d) => Some(t.as_str().is_some_and(|k| d.contains_key(k))),
                Value::DocList(l) => Some(match t {
                    View::Doc(d) => l.contains(d),
                    View::Val(v) => v.as_doc().is_some_and(|d| l.contains(d)),
                    View::Str(_) => false,
                }),
                _ => None,
            },
        }
    }
}

/// What a path resolves to: a value, or what is not stored as a [`Value`]: a doc id, or an item
/// of a doc list.
#[derive(Clone, Copy, Debug)]
enum View<'a> {
    Val(&'a Value),
    Str(&'a str),
    Doc(&'a Doc),
}

impl<'a> View<'a> {
    fn as_str(self) -> Option<&'a str> {
        match self {
            View::Val(v) => v.as_str(),
            View::Str(s) => Some(s),
            View::Doc(_) => None,
        }
    }

    fn len(self) -> Option<usize> {
        match self {
            View::Val(v) => v.len(),
            View::Str(s) => Some(s.chars().count()),
            View::Doc(_) => None,
        }
    }

    fn exists(self) -> bool {
        match self {
            View::Val(v) => !v.is_none(),
            View::Str(_) | View::Doc(_) => true,
        }
    }
}

/// One `__`-separated path segment; `index` is set when it reads as an integer.
#[derive(Clone, Debug)]
struct Seg {
    key: String,
    index: Option<i64>,
}

/// A parsed path: at least one segment, none empty.
#[derive(Clone, Debug)]
struct Path {
    segs: Vec<Seg>,
}

impl Path {
    fn parse(raw: &str, at: &str) -> Result<Path, QueryError> {
        let bad = |reason| QueryError::BadPath {
            at: at.to_owned(),
            path: raw.to_owned(),
            reason,
        };
        if raw.is_empty() {
            return Err(bad("the path is empty"));
        }
        let mut segs = Vec::new();
        for s in raw.split("__") {
            if s.is_empty() {
                return Err(bad("empty segment (a stray or doubled `__`)"));
            }
            segs.push(Seg {
                key: s.to_owned(),
                index: s.parse().ok(),
            });
        }
        Ok(Path { segs })
    }

    fn resolve<'a>(&self, doc: &'a Doc) -> Option<View<'a>> {
        let (first, rest) = self.segs.split_first()?;
        let mut cur = doc_field(doc, first);
        for seg in rest {
            cur = step(cur?, seg);
        }
        cur
    }
}

fn doc_field<'a>(doc: &'a Doc, seg: &Seg) -> Option<View<'a>> {
    if seg.key == "id" {
        Some(View::Str(doc.id()))
    } else {
        doc.get(&seg.key).map(View::Val)
    }
}

fn step<'a>(cur: View<'a>, seg: &Seg) -> Option<View<'a>> {
    let v = match cur {
        View::Val(v) => v,
        View::Doc(d) => return doc_field(d, seg),
        View::Str(_) => return None,
    };
    match v.untyped() {
        Value::Dict(d) => d.get(&seg.key).map(View::Val),
        Value::Doc(d) => doc_field(d, seg),
        Value::DocList(l) => nth(l, seg.index?).map(View::Doc),
        Value::List(items) | Value::Tuple(items) => nth(items, seg.index?).map(View::Val),
        _ => None,
    }
}

/// Python indexing: negative counts from the end.
fn nth<T>(items: &[T], i: i64) -> Option<&T> {
    let i = if i < 0 {
        i64::try_from(items.len()).ok()?.checked_add(i)?
    } else {
        i
    };
    items.get(usize::try_from(i).ok()?)
}

// ---------------------------------------------------------------------------------------------
// Python-like equality and ordering.

fn view_eq(a: View<'_>, b: View<'_>) -> bool {
    match (a, b) {
        (View::Str(x), View::Str(y)) => x == y,
        (View::Str(s), View::Val(v)) | (View::Val(v), View::Str(s)) => v.as_str() == Some(s),
        (View::Val(x), View::Val(y)) => py_eq(x, y),
        (View::Doc(x), View::Doc(y)) => x == y,
        (View::Doc(d), View::Val(v)) | (View::Val(v), View::Doc(d)) => v.as_doc() == Some(d),
        (View::Doc(_), View::Str(_)) | (View::Str(_), View::Doc(_)) => false,
    }
}

fn view_cmp(a: View<'_>, b: View<'_>) -> Option<Ordering> {
    match (a, b) {
        (View::Val(x), View::Val(y)) => py_cmp(x, y),
        _ => Some(a.as_str()?.cmp(b.as_str()?)),
    }
}

#[derive(Clone, Copy)]
enum Num {
    I(i64),
    F(f64),
}

fn num(v: &Value) -> Option<Num> {
    match v {
        Value::Int(i) => Some(Num::I(*i)),
        Value::Float(f) => Some(Num::F(*f)),
        _ => None,
    }
}

/// Exact int/float comparison, as Python does (no rounding of large ints through f64).
fn num_cmp(a: Num, b: Num) -> Option<Ordering> {
    match (a, b) {
        (Num::I(x), Num::I(y)) => Some(x.cmp(&y)),
        (Num::F(x), Num::F(y)) => x.partial_cmp(&y),
        (Num::I(x), Num::F(y)) => int_float_cmp(x, y),
        (Num::F(x), Num::I(y)) => int_float_cmp(y, x).map(Ordering::reverse),
    }
}

fn int_float_cmp(i: i64, f: f64) -> Option<Ordering> {
    // 2^63 as f64 is exact; every finite f64 in [-2^63, 2^63) truncates into i64.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if f.is_nan() {
        return None;
    }
    if f >= LIMIT {
        return Some(Ordering::Less);
    }
    if f < -LIMIT {
        return Some(Ordering::Greater);
    }
    let t = f.trunc();
    match i.cmp(&(t as i64)) {
        Ordering::Equal => 0.0f64.partial_cmp(&(f - t)),
        other => Some(other),
    }
}

fn py_eq(a: &Value, b: &Value) -> bool {
    let (a, b) = (a.untyped(), b.untyped());
    if let (Some(x), Some(y)) = (num(a), num(b)) {
        return num_cmp(x, y) == Some(Ordering::Equal);
    }
    match (a, b) {
        (Value::None, Value::None) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Text(x), Value::Text(y)) => x == y,
        (Value::Bytes(x), Value::Bytes(y)) => x == y,
        (Value::List(x) | Value::Tuple(x), Value::List(y) | Value::Tuple(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| py_eq(p, q))
        }
        (Value::Set(x), Value::Set(y) | Value::List(y) | Value::Tuple(y))
        | (Value::List(x) | Value::Tuple(x), Value::Set(y)) => {
            x.len() == y.len()
                && x.iter().all(|p| y.iter().any(|q| py_eq(p, q)))
                && y.iter().all(|q| x.iter().any(|p| py_eq(p, q)))
        }
        (Value::Dict(x), Value::Dict(y)) => {
            x.len() == y.len() && x.iter().all(|(k, p)| y.get(k).is_some_and(|q| py_eq(p, q)))
        }
        (Value::Doc(x), Value::Doc(y)) => x == y,
        (Value::DocList(x), Value::DocList(y)) => x == y,
        (Value::NdArray(x), Value::NdArray(y)) => x == y,
        _ => false,
    }
}

/// Python's `<` family; `None` where Python raises `TypeError` (or for NaN).
fn py_cmp(a: &Value, b: &Value) -> Option<Ordering> {
    let (a, b) = (a.untyped(), b.untyped());
    if let (Some(x), Some(y)) = (num(a), num(b)) {
        return num_cmp(x, y);
    }
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Text(x), Value::Text(y)) => Some(x.cmp(y)),
        (Value::Bytes(x), Value::Bytes(y)) => Some(x.cmp(y)),
        (Value::List(x) | Value::Tuple(x), Value::List(y) | Value::Tuple(y)) => {
            // Lexicographic: the first unequal pair decides, else the shorter sequence is less.
            match x.iter().zip(y).find(|(p, q)| !py_eq(p, q)) {
                Some((p, q)) => py_cmp(p, q),
                None => Some(x.len().cmp(&y.len())),
            }
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing.

/// A short description of a JSON value for error messages.
fn describe(v: &J) -> String {
    match v {
        J::Null => "null".into(),
        J::Bool(b) => b.to_string(),
        J::Number(n) => n.to_string(),
        J::String(_) => "a string".into(),
        J::Array(_) => "a list".into(),
        J::Object(m) if m.is_empty() => "an empty map".into(),
        J::Object(_) => "a map".into(),
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// A (sub-)query: a non-empty map whose entries are combined with AND. `at` names the query in
/// messages about the query itself; `prefix` is prepended to its keys.
fn parse_query(q: &J, at: &str, prefix: &str) -> Result<Node, QueryError> {
    let J::Object(m) = q else {
        return Err(QueryError::Expected {
            at: at.to_owned(),
            expected: "a map of conditions",
            found: describe(q),
        });
    };
    if m.is_empty() {
        return Err(QueryError::Empty {
            at: at.to_owned(),
            what: "map of conditions",
        });
    }
    let mut nodes = m
        .iter()
        .map(|(k, v)| parse_entry(k, v, at, prefix))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(if nodes.len() == 1 {
        nodes.remove(0)
    } else {
        Node::All(nodes)
    })
}

fn parse_entry(key: &str, value: &J, at: &str, prefix: &str) -> Result<Node, QueryError> {
    let here = join(prefix, key);
    match key {
        "$and" | "$or" => {
            let branches = match value {
                J::Array(items) => items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        let at = format!("{here}[{i}]");
                        parse_query(item, &at, &at)
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                J::Object(m) => m
                    .iter()
                    .map(|(k, v)| parse_entry(k, v, &here, &here))
                    .collect::<Result<Vec<_>, _>>()?,
                other => {
                    return Err(QueryError::Expected {
                        at: here,
                        expected: "a list or a map of conditions",
                        found: describe(other),
                    });
                }
            };
            if branches.is_empty() {
                return Err(QueryError::Empty {
                    at: here,
                    what: "list of conditions",
                });
            }
            Ok(if key == "$and" {
                Node::All(branches)
            } else {
                Node::Any(branches)
            })
        }
        "$not" => Ok(Node::Not(Box::new(parse_query(value, &here, &here)?))),
        k if k.starts_with('$') => Err(QueryError::UnknownOperator {
            at: at.to_owned(),
            op: k.to_owned(),
            hint: "",
        }),
        _ => {
            let path = Path::parse(key, &here)?;
            let ops = match value {
                J::Object(m) => {
                    if m.is_empty() {
                        return Err(QueryError::Expected {
                            at: here,
                            expected: "a literal or a map of `$` operators",
                            found: describe(value),
                        });
                    }
                    m.iter()
                        .map(|(op, v)| parse_op(op, v, &here))
                        .collect::<Result<Vec<_>, _>>()?
                }
                literal => vec![Op::Eq(parse_operand(literal, &here)?)],
            };
            Ok(Node::Field { path, ops })
        }
    }
}

fn parse_op(op: &str, v: &J, field_at: &str) -> Result<Op, QueryError> {
    let at = join(field_at, op);
    let expected = |expected| QueryError::Expected {
        at: at.clone(),
        expected,
        found: describe(v),
    };
    Ok(match op {
        "$eq" => Op::Eq(parse_operand(v, &at)?),
        "$ne" | "$neq" => Op::Ne(parse_operand(v, &at)?),
        "$gt" => Op::Cmp(CmpOp::Gt, parse_operand(v, &at)?),
        "$gte" => Op::Cmp(CmpOp::Gte, parse_operand(v, &at)?),
        "$lt" => Op::Cmp(CmpOp::Lt, parse_operand(v, &at)?),
        "$lte" => Op::Cmp(CmpOp::Lte, parse_operand(v, &at)?),
        "$in" | "$nin" => {
            let members = match v {
                J::Array(items) => Members::Lit(items.iter().map(Value::from).collect()),
                J::String(s) => match placeholder(s) {
                    Some(name) => Members::Field(Path::parse(name, &at)?),
                    None => return Err(expected("a list or a `{field}` placeholder")),
                },
                _ => return Err(expected("a list")),
            };
            if op == "$in" {
                Op::In(members)
            } else {
                Op::Nin(members)
            }
        }
        "$regex" => {
            let J::String(s) = v else {
                return Err(expected("a regex string"));
            };
            Op::Regex(Regex::new(s).map_err(|e| QueryError::BadRegex {
                at: at.clone(),
                message: e.to_string(),
            })?)
        }
        "$size" => {
            let n = v.as_u64().and_then(|n| usize::try_from(n).ok());
            Op::Size(n.ok_or_else(|| expected("a non-negative integer"))?)
        }
        "$exists" => Op::Exists(v.as_bool().ok_or_else(|| expected("true or false"))?),
        "$and" | "$or" | "$not" => {
            return Err(QueryError::MisplacedLogical {
                at: field_at.to_owned(),
                op: op.to_owned(),
            });
        }
        _ => {
            return Err(QueryError::UnknownOperator {
                at: field_at.to_owned(),
                op: op.to_owned(),
                hint: if op.starts_with('$') {
                    ""
                } else {
                    " (to compare with a map, use {\"$eq\": {…}})"
                },
            });
        }
    })
}

fn parse_operand(v: &J, at: &str) -> Result<Operand, QueryError> {
    Ok(match v {
        J::String(s) => match placeholder(s) {
            Some(name) => Operand::Field(Path::parse(name, at)?),
            None => Operand::Lit(Value::Text(s.clone())),
        },
        other => Operand::Lit(Value::from(other)),
    })
}

/// The field name of a `"{name}"` placeholder: the whole string, spaces allowed inside the
/// braces, the name made of ASCII letters, digits and `_` (docarray's pattern).
fn placeholder(s: &str) -> Option<&str> {
    let name = s.strip_prefix('{')?.strip_suffix('}')?.trim();
    (!name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .then_some(name)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::doc::{Dict, DocList, NdArray, Typed};

    fn q(v: J) -> Query {
        match Query::parse(&v) {
            Ok(q) => q,
            Err(e) => panic!("{v} should parse: {e}"),
        }
    }

    fn err(v: J) -> String {
        match Query::parse(&v) {
            Ok(q) => panic!("{v} should be rejected, parsed as {q:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn keeps(v: J, d: &Doc) -> bool {
        q(v).matches(d)
    }

    fn tagged(key: &str, value: impl Into<Value>) -> Doc {
        Doc::with_id("d").with_tag(key, value)
    }

    #[test]
    fn seed_eq_on_a_tag_keeps_equal_ints_and_floats() {
        let query = q(json!({"tags__key": {"$eq": 5}}));
        assert!(query.matches(&tagged("key", 5)));
        assert!(!query.matches(&tagged("key", 4)));
        assert!(query.matches(&tagged("key", 5.0)));
        assert!(!query.matches(&tagged("key", 5.5)));
        assert!(!query.matches(&tagged("key", "5")));
        assert!(!query.matches(&Doc::with_id("d")));
        // A float literal against an int value too.
        assert!(keeps(json!({"tags__key": {"$eq": 5.0}}), &tagged("key", 5)));
    }

    #[test]
    fn a_literal_means_eq() {
        let d = tagged("key", 5).with_text("hello");
        assert!(keeps(json!({"tags__key": 5}), &d));
        assert!(keeps(json!({"text": "hello"}), &d));
        assert!(!keeps(json!({"text": "bye"}), &d));
        assert!(keeps(json!({"text": "hello", "tags__key": 5}), &d));
        assert!(!keeps(json!({"text": "hello", "tags__key": 6}), &d));
    }

    #[test]
    fn comparisons_are_numeric_and_lexicographic() {
        let d = tagged("x", 3).with_text("banana");
        assert!(keeps(json!({"tags__x": {"$gt": 2}}), &d));
        assert!(keeps(json!({"tags__x": {"$gt": 2.5}}), &d));
        assert!(!keeps(json!({"tags__x": {"$gt": 3}}), &d));
        assert!(keeps(json!({"tags__x": {"$gte": 3.0}}), &d));
        assert!(keeps(json!({"tags__x": {"$lt": 3.5}}), &d));
        assert!(!keeps(json!({"tags__x": {"$lt": 3}}), &d));
        assert!(keeps(json!({"tags__x": {"$lte": 3}}), &d));
        assert!(keeps(json!({"tags__x": {"$gt": 1, "$lt": 5}}), &d));
        assert!(!keeps(json!({"tags__x": {"$gt": 1, "$lt": 2}}), &d));
        assert!(keeps(
            json!({"text": {"$gt": "apple", "$lt": "cherry"}}),
            &d
        ));
        assert!(!keeps(json!({"text": {"$lt": "b"}}), &d));
        // Incomparable types are false both ways, not errors.
        assert!(!keeps(json!({"tags__x": {"$gt": "a"}}), &d));
        assert!(!keeps(json!({"tags__x": {"$lte": "a"}}), &d));
        assert!(!keeps(json!({"text": {"$gt": 1}}), &d));
        assert!(!keeps(json!({"tags__x": {"$gt": null}}), &d));
        let none = tagged("x", Value::None);
        assert!(!keeps(json!({"tags__x": {"$gt": 0}}), &none));
        assert!(!keeps(json!({"tags__x": {"$lt": 0}}), &none));
        // Lists compare lexicographically.
        let l = tagged("l", vec![1, 2, 3]);
        assert!(keeps(json!({"tags__l": {"$gt": [1, 2]}}), &l));
        assert!(keeps(json!({"tags__l": {"$lt": [1, 3]}}), &l));
    }

    #[test]
    fn ints_and_floats_compare_exactly() {
        let big = tagged("n", i64::MAX);
        assert!(!keeps(
            json!({"tags__n": {"$eq": 9.223372036854776e18}}),
            &big
        ));
        assert!(keeps(
            json!({"tags__n": {"$lt": 9.223372036854776e18}}),
            &big
        ));
        let n = tagged("n", -5);
        assert!(keeps(json!({"tags__n": {"$gt": -5.5}}), &n));
        assert!(keeps(json!({"tags__n": {"$lt": -4.5}}), &n));
        let nan = tagged("n", f64::NAN);
        assert!(!keeps(json!({"tags__n": {"$eq": 1}}), &nan));
        assert!(!keeps(json!({"tags__n": {"$gte": 1}}), &nan));
        assert!(!keeps(json!({"tags__n": {"$lt": 1}}), &nan));
    }

    #[test]
    fn bools_equal_only_bools() {
        let t = tagged("b", true);
        assert!(keeps(json!({"tags__b": true}), &t));
        assert!(!keeps(json!({"tags__b": false}), &t));
        assert!(!keeps(json!({"tags__b": 1}), &t));
        assert!(!keeps(json!({"tags__b": {"$gt": 0}}), &t));
        assert!(keeps(json!({"tags__b": {"$gt": false}}), &t));
        assert!(!keeps(json!({"tags__one": true}), &tagged("one", 1)));
    }

    #[test]
    fn ne_and_neq_are_the_negation_of_eq_on_present_paths() {
        let d = tagged("key", 5);
        for op in ["$ne", "$neq"] {
            assert!(!keeps(json!({"tags__key": {op: 5}}), &d));
            assert!(keeps(json!({"tags__key": {op: 4}}), &d));
            assert!(keeps(json!({"tags__key": {op: "5"}}), &d));
            assert!(keeps(json!({"tags__key": {op: null}}), &d));
            // Missing path: false, like every condition but `$exists: false`.
            assert!(!keeps(json!({"tags__other": {op: 5}}), &d));
        }
    }

    #[test]
    fn null_matches_none() {
        let d = tagged("n", Value::None);
        assert!(keeps(json!({"tags__n": null}), &d));
        assert!(keeps(json!({"tags__n": {"$in": [1, null]}}), &d));
        assert!(!keeps(json!({"tags__n": 0}), &d));
        assert!(!keeps(json!({"tags__missing": null}), &d));
    }

    #[test]
    fn in_and_nin() {
        let d = tagged("c", "red");
        assert!(keeps(json!({"tags__c": {"$in": ["red", "green"]}}), &d));
        assert!(!keeps(json!({"tags__c": {"$in": ["blue"]}}), &d));
        assert!(!keeps(json!({"tags__c": {"$in": []}}), &d));
        assert!(keeps(json!({"tags__c": {"$nin": ["blue"]}}), &d));
        assert!(keeps(json!({"tags__c": {"$nin": []}}), &d));
        assert!(!keeps(json!({"tags__c": {"$nin": ["red"]}}), &d));
        assert!(!keeps(json!({"tags__missing": {"$nin": ["red"]}}), &d));
        assert!(!keeps(json!({"tags__missing": {"$in": ["red"]}}), &d));
        assert!(keeps(
            json!({"tags__n": {"$in": [1, 2.0]}}),
            &tagged("n", 2)
        ));
        // A list-valued field is compared as a whole (Python's `in`).
        let l = tagged("l", vec!["a", "b"]);
        assert!(!keeps(json!({"tags__l": {"$in": ["a"]}}), &l));
        assert!(keeps(json!({"tags__l": {"$in": [["a", "b"], "x"]}}), &l));
        assert!(keeps(json!({"id": {"$in": ["x", "d"]}}), &l));
    }

    #[test]
    fn regex_searches_unanchored() {
        let d = Doc::with_id("doc-42").with_text("hello world");
        assert!(keeps(json!({"text": {"$regex": "wor"}}), &d));
        assert!(keeps(json!({"text": {"$regex": "^hello"}}), &d));
        assert!(!keeps(json!({"text": {"$regex": "^world"}}), &d));
        assert!(keeps(json!({"text": {"$regex": "(?i)HELLO"}}), &d));
        assert!(keeps(json!({"id": {"$regex": r"-\d+$"}}), &d));
        // Non-text values never match.
        assert!(!keeps(json!({"tags__n": {"$regex": "5"}}), &tagged("n", 5)));
        assert!(!keeps(
            json!({"text": {"$regex": "x*"}}),
            &Doc::with_id("d")
        ));
    }

    #[test]
    fn size_is_python_len() {
        let mut d = Doc::with_id("d")
            .with_text("héllo")
            .with_tag("l", vec![1, 2]);
        d.matches_mut().push(Doc::with_id("m0"));
        d.matches_mut().push(Doc::with_id("m1"));
        assert!(keeps(json!({"matches": {"$size": 2}}), &d));
        assert!(!keeps(json!({"matches": {"$size": 1}}), &d));
        assert!(keeps(json!({"text": {"$size": 5}}), &d));
        assert!(keeps(json!({"tags__l": {"$size": 2}}), &d));
        assert!(keeps(json!({"tags": {"$size": 1}}), &d));
        assert!(keeps(json!({"id": {"$size": 1}}), &d));
        assert!(!keeps(json!({"chunks": {"$size": 0}}), &d));
        let e = Doc::with_id("e").with_embedding(NdArray::from_f32(vec![0.0; 3]));
        assert!(keeps(json!({"embedding": {"$size": 3}}), &e));
        assert!(!keeps(json!({"tags__n": {"$size": 0}}), &tagged("n", 1)));
    }

    #[test]
    fn exists() {
        let d = tagged("k", 1).with("nothing", Value::None);
        assert!(keeps(json!({"tags__k": {"$exists": true}}), &d));
        assert!(!keeps(json!({"tags__k": {"$exists": false}}), &d));
        assert!(keeps(json!({"tags__z": {"$exists": false}}), &d));
        assert!(!keeps(json!({"tags__z": {"$exists": true}}), &d));
        assert!(keeps(json!({"text": {"$exists": false}}), &d));
        assert!(keeps(json!({"nothing": {"$exists": false}}), &d));
        assert!(keeps(json!({"id": {"$exists": true}}), &d));
        assert!(keeps(json!({"tags__k__deeper": {"$exists": false}}), &d));
        // `$exists: false` with another operator: the other one still needs the value.
        assert!(!keeps(json!({"tags__z": {"$exists": false, "$ne": 1}}), &d));
    }

    #[test]
    fn paths_descend_through_docs_lists_and_type_tags() {
        let inner = Doc::with_id("inner").with_text("deep");
        let mut d = Doc::with_id("root")
            .with("child", inner)
            .with(
                "pair",
                Value::Tuple(vec![Value::from("a"), Value::from("b")]),
            )
            .with(
                "url",
                Value::Typed(Box::new(Typed {
                    ty: "image_url".into(),
                    value: Value::from("http://x/y.png"),
                })),
            )
            .with_tag("nested", {
                let mut m = Dict::new();
                m.insert("list".into(), Value::from(vec![10, 20, 30]));
                m.insert("0".into(), Value::from("zero"));
                Value::Dict(m)
            });
        d.matches_mut()
            .push(Doc::with_id("m0").with_score("cosine", 0.9));
        d.matches_mut()
            .push(Doc::with_id("m1").with_score("cosine", 0.1));
        assert!(keeps(json!({"id": "root"}), &d));
        assert!(keeps(json!({"matches__0__id": "m0"}), &d));
        assert!(keeps(json!({"matches__1__id": "m1"}), &d));
        assert!(keeps(json!({"matches__-1__id": "m1"}), &d));
        assert!(!keeps(json!({"matches__2__id": {"$exists": true}}), &d));
        assert!(!keeps(json!({"matches__-3__id": {"$exists": true}}), &d));
        assert!(keeps(
            json!({"matches__0__scores__cosine": {"$gt": 0.5}}),
            &d
        ));
        assert!(!keeps(
            json!({"matches__1__scores__cosine": {"$gt": 0.5}}),
            &d
        ));
        assert!(keeps(json!({"child__text": "deep"}), &d));
        assert!(keeps(json!({"child__id": "inner"}), &d));
        assert!(keeps(json!({"pair__1": "b"}), &d));
        assert!(keeps(json!({"pair": ["a", "b"]}), &d));
        assert!(keeps(json!({"url": {"$regex": r"\.png$"}}), &d));
        assert!(keeps(json!({"tags__nested__list__2": 30}), &d));
        assert!(keeps(json!({"tags__nested__0": "zero"}), &d));
        assert!(keeps(json!({"tags__nested__list": [10, 20, 30]}), &d));
        assert!(!keeps(json!({"tags__nested__list": [10, 20]}), &d));
        assert!(keeps(
            json!({"tags__nested": {"$eq": {"0": "zero", "list": [10, 20, 30]}}}),
            &d
        ));
        assert!(!keeps(json!({"tags__nested": {"$eq": {"0": "zero"}}}), &d));
        // Things that do not resolve.
        assert!(!keeps(json!({"matches__id": {"$exists": true}}), &d));
        assert!(!keeps(json!({"matches__x__id": {"$exists": true}}), &d));
        assert!(!keeps(json!({"id__0": {"$exists": true}}), &d));
        assert!(!keeps(json!({"child__text__0": {"$exists": true}}), &d));
    }

    #[test]
    fn sets_compare_unordered() {
        let d = tagged("s", Value::Set(vec![Value::from(1), Value::from(2)]));
        assert!(keeps(json!({"tags__s": [2, 1]}), &d));
        assert!(!keeps(json!({"tags__s": [1, 3]}), &d));
        assert!(!keeps(json!({"tags__s": [1]}), &d));
    }

    #[test]
    fn logical_operators_nest() {
        let a = tagged("n", 1).with_text("a");
        let b = tagged("n", 2).with_text("b");
        let c = tagged("n", 3).with_text("c");
        let or = q(json!({"$or": [{"tags__n": 1}, {"text": "c"}]}));
        assert!(or.matches(&a) && !or.matches(&b) && or.matches(&c));
        let and = q(json!({"$and": [{"tags__n": {"$gte": 2}}, {"text": {"$ne": "c"}}]}));
        assert!(!and.matches(&a) && and.matches(&b) && !and.matches(&c));
        let not = q(json!({"$not": {"tags__n": 2}}));
        assert!(not.matches(&a) && !not.matches(&b) && not.matches(&c));
        let nested = q(json!({
            "$or": [
                {"$and": [{"tags__n": {"$gt": 1}}, {"$not": {"text": "c"}}]},
                {"$not": {"$or": [{"tags__n": {"$gt": 1}}, {"text": "zzz"}]}}
            ]
        }));
        assert!(nested.matches(&a) && nested.matches(&b) && !nested.matches(&c));
        // A map under `$and`/`$or` is a list of one-key maps.
        let or_map = q(json!({"$or": {"text": "a", "tags__n": 3}}));
        assert!(or_map.matches(&a) && !or_map.matches(&b) && or_map.matches(&c));
        let and_map = q(json!({"$and": {"text": "a", "tags__n": 1}}));
        assert!(and_map.matches(&a) && !and_map.matches(&b));
        // A `$not` over several keys negates their AND.
        let not_both = q(json!({"$not": {"text": "a", "tags__n": 1}}));
        assert!(!not_both.matches(&a) && not_both.matches(&b));
    }

    #[test]
    fn siblings_of_or_are_anded_not_ored() {
        // docarray would read this as `n == 1 OR text == "b" OR n == 2`.
        let query = q(json!({"$or": [{"tags__n": 1}, {"text": "b"}], "tags__n": 2}));
        assert!(!query.matches(&tagged("n", 1).with_text("a")));
        assert!(query.matches(&tagged("n", 2).with_text("b")));
        assert!(!query.matches(&tagged("n", 2).with_text("c")));
    }

    #[test]
    fn placeholders_read_fields_of_the_same_doc() {
        let d = Doc::with_id("same")
            .with_text("same")
            .with("limit", 10)
            .with("allowed", vec!["x", "y"])
            .with_tag("n", 7)
            .with_tag("copy", "same");
        assert!(keeps(json!({"id": "{text}"}), &d));
        assert!(keeps(json!({"id": {"$eq": "{ text }"}}), &d));
        assert!(keeps(json!({"tags__n": {"$lt": "{limit}"}}), &d));
        assert!(!keeps(json!({"tags__n": {"$gt": "{limit}"}}), &d));
        assert!(keeps(json!({"text": {"$ne": "{limit}"}}), &d));
        assert!(keeps(json!({"tags__copy": "{id}"}), &d));
        assert!(keeps(json!({"text": "{tags__copy}"}), &d));
        assert!(keeps(json!({"tags__n": {"$nin": "{allowed}"}}), &d));
        assert!(!keeps(json!({"tags__n": {"$in": "{allowed}"}}), &d));
        let x = d.clone().with_tag("pick", "y");
        assert!(keeps(json!({"tags__pick": {"$in": "{allowed}"}}), &x));
        // A missing field reads as None.
        assert!(keeps(
            json!({"tags__none": "{missing}"}),
            &tagged("none", Value::None)
        ));
        assert!(!keeps(json!({"tags__n": {"$gt": "{missing}"}}), &d));
        assert!(!keeps(json!({"tags__n": {"$in": "{missing}"}}), &d));
        assert!(!keeps(json!({"tags__n": {"$nin": "{missing}"}}), &d));
        // Anything that is not exactly a placeholder is a literal.
        let lit = Doc::with_id("l").with_text("{a}{b}");
        assert!(keeps(json!({"text": "{a}{b}"}), &lit));
        assert!(keeps(json!({"text": {"$ne": "{}"}}), &lit));
    }

    #[test]
    fn empty_query_keeps_everything() {
        let query = q(json!({}));
        assert!(query.matches(&Doc::new()));
        assert!(query.matches(&tagged("k", 1)));
    }

    #[test]
    fn display_shows_the_source() {
        let query = q(json!({"tags__key": {"$eq": 5}}));
        assert_eq!(query.to_string(), r#"{"tags__key":{"$eq":5}}"#);
    }

    #[test]
    fn errors_name_the_place_and_the_problem() {
        assert_eq!(
            err(json!({"tags__key": {"$foo": 1}})),
            "tags__key: unknown operator `$foo`"
        );
        assert_eq!(
            err(json!({"$and": "x"})),
            "$and: expected a list or a map of conditions, got a string"
        );
        assert_eq!(err(json!({"$and": []})), "$and: empty list of conditions");
        assert_eq!(err(json!({"$or": {}})), "$or: empty list of conditions");
        assert_eq!(
            err(json!({"$and": [{}]})),
            "$and[0]: empty map of conditions"
        );
        assert_eq!(
            err(json!({"$or": [1]})),
            "$or[0]: expected a map of conditions, got 1"
        );
        assert_eq!(
            err(json!({"$not": [{"a": 1}]})),
            "$not: expected a map of conditions, got a list"
        );
        assert_eq!(err(json!({"$nor": []})), "query: unknown operator `$nor`");
        assert_eq!(
            err(json!({"$or": [{"a": 1}, {"$xor": 1}]})),
            "$or[1]: unknown operator `$xor`"
        );
        assert_eq!(
            err(json!({"$or": [{"a": 1}, {"b": {"$in": 3}}]})),
            "$or[1].b.$in: expected a list, got 3"
        );
        assert_eq!(
            err(json!({"a": {"$nin": "abc"}})),
            "a.$nin: expected a list or a `{field}` placeholder, got a string"
        );
        assert_eq!(
            err(json!({"a": {"$exists": "yes"}})),
            "a.$exists: expected true or false, got a string"
        );
        assert_eq!(
            err(json!({"a": {"$exists": 1}})),
            "a.$exists: expected true or false, got 1"
        );
        assert!(
            err(json!({"text": {"$regex": "(unclosed"}}))
                .starts_with("text.$regex: invalid regex:")
        );
        assert_eq!(
            err(json!({"text": {"$regex": 5}})),
            "text.$regex: expected a regex string, got 5"
        );
        assert_eq!(
            err(json!({"matches": {"$size": -1}})),
            "matches.$size: expected a non-negative integer, got -1"
        );
        assert_eq!(
            err(json!({"matches": {"$size": 1.5}})),
            "matches.$size: expected a non-negative integer, got 1.5"
        );
        assert_eq!(
            err(json!([{"a": 1}])),
            "query: expected a map of conditions, got a list"
        );
        assert_eq!(
            err(json!("a")),
            "query: expected a map of conditions, got a string"
        );
        assert_eq!(
            err(json!(null)),
            "query: expected a map of conditions, got null"
        );
        assert_eq!(
            err(json!({"a": {}})),
            "a: expected a literal or a map of `$` operators, got an empty map"
        );
        assert_eq!(
            err(json!({"tags": {"k": 1}})),
            "tags: unknown operator `k` (to compare with a map, use {\"$eq\": {…}})"
        );
        assert_eq!(
            err(json!({"tags": {"$or": [{"a": 1}]}})),
            "tags: logical operator `$or` is not allowed inside a field condition; put it at the top level"
        );
        assert_eq!(
            err(json!({"tags____k": 1})),
            "tags____k: invalid path `tags____k`: empty segment (a stray or doubled `__`)"
        );
        assert_eq!(
            err(json!({"tags__": 1})),
            "tags__: invalid path `tags__`: empty segment (a stray or doubled `__`)"
        );
        assert_eq!(err(json!({"": 1})), ": invalid path ``: the path is empty");
        assert_eq!(
            err(json!({"a": {"$eq": "{b____c}"}})),
            "a.$eq: invalid path `b____c`: empty segment (a stray or doubled `__`)"
        );
    }

    #[test]
    fn errors_are_comparable_values() {
        let e = Query::parse(&json!({"a": {"$in": 1}}));
        assert_eq!(
            e.err(),
            Some(QueryError::Expected {
                at: "a.$in".into(),
                expected: "a list",
                found: "1".into(),
            })
        );
    }

    #[test]
    fn doc_list_items_compare_as_docs() {
        let m = Doc::with_id("m0").with_text("t");
        let d = Doc::with_id("d")
            .with("matches", DocList::from(vec![m.clone()]))
            .with("best", m.clone());
        assert!(keeps(json!({"matches__0": {"$exists": true}}), &d));
        assert!(!keeps(json!({"matches__0": "m0"}), &d));
        assert!(!keeps(json!({"matches__0": {"$gt": 1}}), &d));
        assert!(keeps(json!({"best": {"$in": "{matches}"}}), &d));
        assert!(keeps(json!({"matches__0": "{best}"}), &d));
    }

    #[test]
    fn queries_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Query>();
    }
}
