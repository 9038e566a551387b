//! Jina's default reduce (docarray v2): merging the DocLists of parallel branches and shards by
//! doc id.
//!
//! [`reduce`] is docarray's `reduce_all`, [`update`] is `BaseDoc.update`. Both move documents
//! and field values; nothing is cloned except, rarely, the id of a doc whose 64-bit id hash
//! collides with another id's.

use std::collections::HashMap;
use std::collections::hash_map::{Entry, RandomState};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

use crate::doc::{Doc, DocList, Name, Value, names};
use crate::request::Params;

/// Up to this many docs in a reduce level, ids are found by scanning instead of through a map:
/// cheaper for the small nested lists (`matches` of one query, `chunks`).
const SCAN_MAX: usize = 32;

/// Jina's `reduce_all`: left = parts[0]; for each later part, each doc: if its id is already in
/// the result, [`update`] the existing doc with it; else append it. Result order: first part's
/// order, then new ids in encounter order.
///
/// Empty parts are skipped, so the first non-empty part is the left one (as in docarray, whose
/// id map of an empty left part is rebuilt from the docs appended to it). A single non-empty part
/// is returned as it is, duplicate ids included; within the left part, a later duplicate id is
/// the one updated. No parts, or no docs at all, give an empty list.
///
/// Unlike docarray, whose id map is not extended by appended docs, an id new to the left part
/// that comes again in a later part is merged into the doc appended first, not appended twice.
///
/// The merges of nested DocLists (a query's `matches`) and docs are put off until every part has
/// been seen (see [`Deferred`]), so each nested list is reduced once, from the lists of all
/// parts, with one index. Merged part by part, as docarray does, the growing nested list would
/// be indexed again for each part: O(N²) for N parts.
pub fn reduce(parts: Vec<DocList>) -> DocList {
    let total = parts.iter().map(|p| p.len()).sum();
    reduce_parts(parts, total)
}

/// [`reduce`] of `parts`, of `total` docs in all.
fn reduce_parts(parts: impl IntoIterator<Item = DocList>, total: usize) -> DocList {
    let mut parts = parts.into_iter().filter(|p| !p.is_empty());
    let Some(mut left) = parts.next() else {
        return DocList::new();
    };
    let Some(second) = parts.next() else {
        return left;
    };
    let mut index = IdIndex::build(&left, total);
    // The merges put off for each doc of `left`; none past the last doc updated (in a level of
    // matches, where ids seldom recur, usually none at all).
    let mut deferred: Vec<Deferred> = Vec::new();
    for part in std::iter::once(second).chain(parts) {
        for doc in part {
            let Some(i) = index.position(&left, doc.id()) else {
                left.push(doc);
                continue;
            };
            if deferred.len() <= i {
                deferred.resize_with(left.len(), Deferred::new);
            }
            update_deferring(&mut left[i], doc, &mut deferred[i]);
        }
    }
    for (doc, deferred) in left.iter_mut().zip(deferred) {
        deferred.finish(doc);
    }
    left
}

/// docarray's `BaseDoc.update(other)`: merge `other` into `doc` field by field.
///
/// For each field of `other`: a `None` value is skipped; a field `doc` lacks or holds `None` is
/// taken; two DocLists are reduced by id like [`reduce`]; two nested docs are updated
/// recursively; lists are concatenated; sets are united (doc's items, then other's new
/// ones); dicts are `dict.update`d (other's keys win, first-insertion order kept); anything else,
/// including values of different kinds, is overwritten by other's value with its type tag. Type
/// tags are looked through to decide the kind; a merged value keeps `doc`'s tag. `doc`'s id is
/// never changed; fields new to `doc` are appended after its own.
///
/// docarray decides by declared field types; flotilla has none, so it decides by value kind.
/// Tuples are immutable in docarray's model, so a tuple is overwritten like a scalar.
pub fn update(doc: &mut Doc, other: Doc) {
    update_all(doc, [other]);
}

/// [`update`] of `doc` with each of `others` in turn, nested merges put off to the end.
fn update_all(doc: &mut Doc, others: impl IntoIterator<Item = Doc>) {
    let mut deferred = Deferred::new();
    for other in others {
        update_deferring(doc, other, &mut deferred);
    }
    deferred.finish(doc);
}

/// [`update`], except that merges of nested DocLists and docs are added to `deferred`, to be
/// done by [`Deferred::finish`] once `doc` has been updated with every doc of its id.
fn update_deferring(doc: &mut Doc, mut other: Doc, deferred: &mut Deferred) {
    for (name, value) in other.fields_mut() {
        let value = std::mem::take(value);
        if value.is_none() {
            continue;
        }
        match doc.get_mut(name) {
            Some(slot) => merge_value(slot, value, name, deferred),
            None => doc.set(names::field(name), value),
        }
    }
}

/// The merges into nested DocList and doc fields of one doc, put off while the doc is updated
/// with the other docs of its id, by field name.
///
/// Putting them off changes nothing but the cost: a merge keeps the field's kind and tag, which
/// is all that decides what the next update does with the field, and a field overwritten later
/// drops what was put off for it, as it would drop the merged value. Done at the end, a nested
/// list is reduced once from its own list and all the others ([`reduce`] of several parts gives
/// what reducing them two at a time gives), a nested doc updated with all the others at once.
struct Deferred(Vec<(Name, Pending)>);

/// What is put off for one field, in update order.
enum Pending {
    /// The lists to reduce into the field's own.
    Lists(Vec<DocList>),
    /// The docs to update the field with.
    Docs(Vec<Doc>),
}

impl Deferred {
    fn new() -> Self {
        Deferred(Vec::new())
    }

    /// What is put off for field `name`, begun with `begin()` if nothing is yet.
    fn pending(&mut self, name: &str, begin: impl FnOnce() -> Pending) -> &mut Pending {
        let i = match self.0.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                self.0.push((names::field(name), begin()));
                self.0.len() - 1
            }
        };
        &mut self.0[i].1
    }

    /// Puts off reducing `list` into the DocList field `name`.
    fn push_list(&mut self, name: &str, list: DocList) {
        match self.pending(name, || Pending::Lists(Vec::new())) {
            Pending::Lists(lists) => lists.push(list),
            Pending::Docs(_) => unreachable!("a field that changes kind forgets what was put off"),
        }
    }

    /// Puts off updating the doc field `name` with `doc`.
    fn push_doc(&mut self, name: &str, doc: Doc) {
        match self.pending(name, || Pending::Docs(Vec::new())) {
            Pending::Docs(docs) => docs.push(doc),
            Pending::Lists(_) => unreachable!("a field that changes kind forgets what was put off"),
        }
    }

    /// Forgets what was put off for field `name`, which was overwritten.
    fn forget(&mut self, name: &str) {
        if let Some(i) = self.0.iter().position(|(n, _)| n == name) {
            self.0.swap_remove(i);
        }
    }

    /// Does the merges put off for `doc`.
    fn finish(self, doc: &mut Doc) {
        for (name, pending) in self.0 {
            // Every field with merges put off is in `doc`: fields are never removed.
            let Some(slot) = doc.get_mut(&name) else {
                continue;
            };
            match (slot.untyped_mut(), pending) {
                (Value::DocList(a), Pending::Lists(others)) => {
                    let own = std::mem::take(a);
                    let total = own.len() + others.iter().map(|l| l.len()).sum::<usize>();
                    *a = reduce_parts(std::iter::once(own).chain(others), total);
                }
                (Value::Doc(a), Pending::Docs(docs)) => update_all(a, docs),
                _ => unreachable!("a field that changes kind forgets what was put off"),
            }
        }
    }
}

/// Merge of `__results__` maps: union, later parts win per key (a key already present keeps
/// its position).
pub fn merge_results(into: &mut Params, from: Params) {
    if into.is_empty() {
        *into = from;
    } else {
        into.extend(from);
    }
}

/// Merges `value` (not `None`) into the value `slot` of field `name`; a merge of DocLists or
/// docs is put off in `deferred`.
fn merge_value(slot: &mut Value, value: Value, name: &str, deferred: &mut Deferred) {
    if slot.is_none() || !same_container(slot.untyped(), value.untyped()) {
        *slot = value;
        deferred.forget(name);
        return;
    }
    match (slot.untyped_mut(), into_untyped(value)) {
        (Value::DocList(_), Value::DocList(b)) => deferred.push_list(name, b),
        (Value::Doc(_), Value::Doc(b)) => deferred.push_doc(name, *b),
        (Value::List(a), Value::List(b)) => a.extend(b),
        (Value::Set(a), Value::Set(b)) => {
            for item in b {
                if !a.contains(&item) {
                    a.push(item);
                }
            }
        }
        // `IndexMap::extend` inserts in order: existing keys keep their position.
        (Value::Dict(a), Value::Dict(b)) => a.extend(b),
        _ => unreachable!("same_container checked the kinds"),
    }
}

/// Whether both values are containers of the same kind, merged rather than overwritten.
fn same_container(a: &Value, b: &Value) -> bool {
    matches!(
        (a, b),
        (Value::DocList(_), Value::DocList(_))
            | (Value::Doc(_), Value::Doc(_))
            | (Value::List(_), Value::List(_))
            | (Value::Set(_), Value::Set(_))
            | (Value::Dict(_), Value::Dict(_))
    )
}

/// The value without its type tags, moved out.
fn into_untyped(value: Value) -> Value {
    match value {
        Value::Typed(t) => into_untyped(t.value),
        v => v,
    }
}

/// Where each id sits in the list being reduced into, built once per reduce level.
enum IdIndex {
    /// Few docs: scan the list (from the end, so a duplicate id in the left part resolves to its
    /// last occurrence, as docarray's id map does).
    Scan,
    /// Id hash to position. The map holds no id strings, so it borrows nothing from the list it
    /// indexes: an id is confirmed by comparing it with the doc at the position found. The rare
    /// id whose hash is taken by another id goes to `spill`.
    Map {
        state: RandomState,
        slots: HashMap<u64, usize, BuildHasherDefault<PassThrough>>,
        spill: HashMap<String, usize>,
    },
}

impl IdIndex {
    /// The index of `left`, for a reduce level of `total` docs in all.
    fn build(left: &DocList, total: usize) -> Self {
        if total <= SCAN_MAX {
            return IdIndex::Scan;
        }
        let state = RandomState::new();
        let mut slots = HashMap::with_capacity_and_hasher(total, BuildHasherDefault::default());
        let mut spill = HashMap::new();
        for (i, d) in left.iter().enumerate() {
            match slots.entry(state.hash_one(d.id())) {
                Entry::Vacant(v) => {
                    v.insert(i);
                }
                Entry::Occupied(mut o) => {
                    if left[*o.get()].id() == d.id() {
                        o.insert(i);
                    } else {
                        spill.insert(d.id().to_owned(), i);
                    }
                }
            }
        }
        IdIndex::Map {
            state,
            slots,
            spill,
        }
    }

    /// The position of the doc of id `id` in `left`, the list this index describes; `None` for
    /// an id new to `left`, which is then indexed at `left.len()`: the caller appends its doc.
    fn position(&mut self, left: &DocList, id: &str) -> Option<usize> {
        match self {
            IdIndex::Scan => left.iter().rposition(|d| d.id() == id),
            IdIndex::Map {
                state,
                slots,
                spill,
            } => match slots.entry(state.hash_one(id)) {
                Entry::Vacant(v) => {
                    v.insert(left.len());
                    None
                }
                Entry::Occupied(o) => {
                    let i = *o.get();
                    if left[i].id() == id {
                        return Some(i);
                    } else if let Some(&j) = spill.get(id) {
                        return Some(j);
                    }
                    spill.insert(id.to_owned(), left.len());
                    None
                }
            },
        }
    }
}

/// A hasher for keys that are already hashes.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::{NdArray, Typed};

    #[test]
    fn the_last_shard_wins_for_scalars() {
        let a = DocList::from(Doc::with_id("q").with_text("shard0"));
        let b = DocList::from(Doc::with_id("q").with_text("shard1"));
        let r = reduce(vec![a, b]);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].id(), "q");
        assert_eq!(r[0].text(), Some("shard1"));
    }

    #[test]
    fn tags_dicts_are_merged_right_wins_per_key_first_order_kept() {
        let a = Doc::with_id("q")
            .with_tag("a", 1)
            .with_tag("shared", "left");
        let b = Doc::with_id("q")
            .with_tag("b", 2)
            .with_tag("shared", "right");
        let r = reduce(vec![a.into(), b.into()]);
        let tags = r[0].tags().unwrap();
        let keys: Vec<&str> = tags.keys().map(String::as_str).collect();
        assert_eq!(keys, ["a", "shared", "b"]);
        assert_eq!(tags["shared"], Value::from("right"));
        assert_eq!(tags["a"], Value::Int(1));
        assert_eq!(tags["b"], Value::Int(2));
    }

    #[test]
    fn list_fields_are_concatenated() {
        let a = Doc::with_id("q").with("labels", vec!["l0"]);
        let b = Doc::with_id("q").with("labels", vec!["l1"]);
        let r = reduce(vec![a.into(), b.into()]);
        assert_eq!(r[0].get("labels"), Some(&Value::from(vec!["l0", "l1"])));
    }

    #[test]
    fn tuples_concatenate_and_sets_unite() {
        let mut a = Doc::with_id("q")
            .with("t", Value::Tuple(vec![1.into()]))
            .with("s", Value::Set(vec![1.into(), 2.into()]));
        let b = Doc::with_id("q")
            .with("t", Value::Tuple(vec![2.into()]))
            .with("s", Value::Set(vec![2.into(), 3.into(), 3.into()]));
        update(&mut a, b);
        assert_eq!(
            a.get("t"),
            Some(&Value::Tuple(vec![2.into()])),
            "tuples are overwritten"
        );
        assert_eq!(
            a.get("s"),
            Some(&Value::Set(vec![1.into(), 2.into(), 3.into()]))
        );
    }

    #[test]
    fn matches_are_appended_and_same_id_matches_merged() {
        let a = Doc::with_id("q").with(
            "matches",
            DocList::from(vec![
                Doc::with_id("m0").with_text("m0"),
                Doc::with_id("shared")
                    .with_tag("from", "a")
                    .with_tag("a", true),
            ]),
        );
        let b = Doc::with_id("q").with(
            "matches",
            DocList::from(vec![
                Doc::with_id("m1").with_text("m1"),
                Doc::with_id("shared").with_tag("from", "b").with_text("s"),
            ]),
        );
        let r = reduce(vec![a.into(), b.into()]);
        let m = r[0].matches().unwrap();
        assert_eq!(m.ids(), ["m0", "shared", "m1"]);
        assert_eq!(m[1].tag("from"), Some(&Value::from("b")));
        assert_eq!(m[1].tag("a"), Some(&Value::Bool(true)));
        assert_eq!(m[1].text(), Some("s"));
    }

    #[test]
    fn new_ids_are_appended_in_encounter_order() {
        let a = DocList::from(vec![Doc::with_id("x"), Doc::with_id("y")]);
        let b = DocList::from(vec![
            Doc::with_id("z"),
            Doc::with_id("x"),
            Doc::with_id("w"),
        ]);
        let c = DocList::from(vec![Doc::with_id("v"), Doc::with_id("z").with_text("z!")]);
        let r = reduce(vec![a, b, c]);
        assert_eq!(r.ids(), ["x", "y", "z", "w", "v"]);
        assert_eq!(r[2].text(), Some("z!"));
    }

    #[test]
    fn foo_bar_baz() {
        let foo_a = Doc::with_id("foo").with_text("foo from a");
        let foo_b = Doc::with_id("foo").with_text("foo from b");
        let a = DocList::from(vec![foo_a, Doc::with_id("bar").with_text("bar")]);
        let b = DocList::from(vec![foo_b, Doc::with_id("baz").with_text("baz")]);
        let r = reduce(vec![a, b]);
        assert_eq!(r.texts(), ["foo from b", "bar", "baz"]);
    }

    #[test]
    fn none_fields_do_not_overwrite_and_are_overwritten() {
        let mut a = Doc::with_id("q")
            .with_text("keep")
            .with("empty", Value::None);
        let b = Doc::with_id("other-id")
            .with("text", Value::None)
            .with(
                "empty",
                Value::Typed(Box::new(Typed {
                    ty: "image_url".into(),
                    value: "http://x".into(),
                })),
            )
            .with("tags", Value::None);
        update(&mut a, b);
        assert_eq!(a.id(), "q");
        assert_eq!(a.text(), Some("keep"));
        assert_eq!(a.get("empty").and_then(Value::as_str), Some("http://x"));
        assert!(
            a.get("tags").is_none(),
            "a None field of other is not added"
        );
    }

    #[test]
    fn tags_are_looked_through_and_overwrites_take_the_whole_value() {
        let tagged = |ty: &str, v: Value| {
            Value::Typed(Box::new(Typed {
                ty: ty.into(),
                value: v,
            }))
        };
        let mut a = Doc::with_id("q")
            .with("l", tagged("mine", vec![1].into()))
            .with("u", tagged("image_url", "a".into()))
            .with("mixed", vec![1]);
        let b = Doc::with_id("q")
            .with("l", vec![2])
            .with("u", tagged("text_url", "b".into()))
            .with("mixed", 5);
        update(&mut a, b);
        assert_eq!(a.get("l"), Some(&tagged("mine", vec![1, 2].into())));
        assert_eq!(a.get("u"), Some(&tagged("text_url", "b".into())));
        assert_eq!(a.get("mixed"), Some(&Value::Int(5)));
    }

    #[test]
    fn tensors_and_new_fields() {
        let mut a = Doc::with_id("q").with_embedding(NdArray::from_f32(vec![1.0]));
        let b = Doc::with_id("q")
            .with_embedding(NdArray::from_f32(vec![2.0]))
            .with("custom", 3)
            .with_text("t");
        update(&mut a, b);
        assert_eq!(a.embedding().unwrap().as_f32(), Some(&[2.0f32][..]));
        let names: Vec<&str> = a.fields().map(|(k, _)| k).collect();
        assert_eq!(names, ["embedding", "custom", "text"]);
    }

    #[test]
    fn nested_docs_are_updated_recursively() {
        let mut a =
            Doc::with_id("q").with("inner", Doc::with_id("i").with_text("x").with_tag("a", 1));
        let b = Doc::with_id("q").with("inner", Doc::with_id("j").with_tag("b", 2));
        update(&mut a, b);
        let inner = a.get("inner").and_then(Value::as_doc).unwrap();
        assert_eq!(inner.id(), "i");
        assert_eq!(inner.text(), Some("x"));
        assert_eq!(inner.tag("a"), Some(&Value::Int(1)));
        assert_eq!(inner.tag("b"), Some(&Value::Int(2)));
    }

    #[test]
    fn empty_parts() {
        assert!(reduce(vec![]).is_empty());
        assert!(reduce(vec![DocList::new(), DocList::new()]).is_empty());
        let only = DocList::from(vec![Doc::with_id("a"), Doc::with_id("a")]);
        assert_eq!(reduce(vec![only.clone()]), only);
        assert_eq!(
            reduce(vec![DocList::new(), only.clone(), DocList::new()]),
            only
        );
        let r = reduce(vec![
            DocList::new(),
            DocList::from(Doc::with_id("a").with_text("1")),
            DocList::from(Doc::with_id("a").with_text("2")),
        ]);
        assert_eq!(r.ids(), ["a"]);
        assert_eq!(r[0].text(), Some("2"));
        let mut d = Doc::with_id("q").with("matches", DocList::new());
        update(
            &mut d,
            Doc::with_id("q").with("matches", DocList::from(Doc::with_id("m"))),
        );
        assert_eq!(d.matches().unwrap().ids(), ["m"]);
    }

    #[test]
    fn nested_chunks_inside_matches_are_reduced() {
        let part = |shard: &str| {
            let chunk = Doc::with_id("c0").with_tag(shard, true);
            let new_chunk = Doc::with_id(format!("c-{shard}"));
            let m = Doc::with_id("m").with("chunks", DocList::from(vec![chunk, new_chunk]));
            DocList::from(Doc::with_id("q").with("matches", DocList::from(m)))
        };
        let r = reduce(vec![part("s0"), part("s1")]);
        let m = r[0].matches().unwrap();
        assert_eq!(m.ids(), ["m"]);
        let chunks = m[0].chunks().unwrap();
        assert_eq!(chunks.ids(), ["c0", "c-s0", "c-s1"]);
        assert_eq!(chunks[0].tag("s0"), Some(&Value::Bool(true)));
        assert_eq!(chunks[0].tag("s1"), Some(&Value::Bool(true)));
    }

    #[test]
    fn large_levels_use_the_map_with_the_same_result() {
        let n = 200;
        let shard = |s: usize| -> DocList {
            (0..n)
                .map(|i| {
                    Doc::with_id(format!("d{i}"))
                        .with_text(format!("s{s}"))
                        .with("matches", DocList::from(Doc::with_id(format!("m{s}-{i}"))))
                })
                .chain(std::iter::once(Doc::with_id(format!("only{s}"))))
                .collect()
        };
        let r = reduce(vec![shard(0), shard(1), shard(2)]);
        assert_eq!(r.len(), n + 3);
        assert!(r[..n].iter().all(|d| d.text() == Some("s2")));
        assert_eq!(r[7].matches().unwrap().ids(), ["m0-7", "m1-7", "m2-7"]);
        assert_eq!(
            r[n..].iter().map(Doc::id).collect::<Vec<_>>(),
            ["only0", "only1", "only2"]
        );
    }

    #[test]
    fn all_parts_at_once_is_two_at_a_time() {
        // Shard `s` of 6: each query has matches of its own and a shared match with chunks,
        // enough to index the matches by map; a nested doc; a field that is a DocList in some
        // shards and a scalar in others, so merges put off for it are dropped and begun again.
        let shard = |s: usize| -> DocList {
            (0..5)
                .map(|q| {
                    let shared = Doc::with_id("shared").with(
                        "chunks",
                        DocList::from(vec![
                            Doc::with_id("c").with_tag(format!("s{s}"), true),
                            Doc::with_id(format!("c{s}")),
                        ]),
                    );
                    let matches: DocList = (0..8)
                        .map(|m| Doc::with_id(format!("m{s}-{m}")).with_score("cosine", 0.5))
                        .chain([shared])
                        .collect();
                    let flip = if (s + q) % 3 == 2 {
                        Value::Int(s as i64)
                    } else {
                        DocList::from(Doc::with_id(format!("f{s}"))).into()
                    };
                    Doc::with_id(format!("q{q}"))
                        .with_text(format!("s{s}"))
                        .with("matches", matches)
                        .with(
                            "inner",
                            Doc::with_id("i").with("chunks", Doc::with_id(format!("ic{s}"))),
                        )
                        .with("flip", flip)
                })
                .collect()
        };
        let parts: Vec<DocList> = (0..6).map(shard).collect();
        let two_at_a_time = parts
            .iter()
            .cloned()
            .reduce(|acc, p| reduce(vec![acc, p]))
            .unwrap();
        let at_once = reduce(parts);
        assert_eq!(at_once, two_at_a_time);
        let m = at_once[0].matches().unwrap();
        assert_eq!(m.len(), 6 * 8 + 1);
        assert_eq!(
            m[8].chunks().unwrap().ids(),
            ["c", "c0", "c1", "c2", "c3", "c4", "c5"]
        );
        assert_eq!(at_once[0].get("flip"), Some(&Value::Int(5)));
        // q2: an int from shards 0 and 3, so shard 2's list is dropped with shard 1's.
        let flip = at_once[2].get("flip").and_then(Value::as_doc_list).unwrap();
        assert_eq!(flip.ids(), ["f4", "f5"]);
    }

    #[test]
    fn duplicate_ids_in_the_left_part_resolve_to_the_last_one() {
        for n in [2, 40] {
            let mut left: DocList = (0..n).map(|i| Doc::with_id(format!("f{i}"))).collect();
            left.push(Doc::with_id("dup").with_text("first"));
            left.push(Doc::with_id("dup").with_text("second"));
            let right = DocList::from(Doc::with_id("dup").with_tag("hit", true));
            let r = reduce(vec![left, right]);
            assert_eq!(r.len(), n + 2);
            assert_eq!(r[n].tag("hit"), None);
            assert_eq!(r[n + 1].tag("hit"), Some(&Value::Bool(true)));
        }
    }

    #[test]
    fn hash_collisions_fall_back_to_the_spill_map() {
        // Pretend `d1` and `x` hash onto `d0`'s slot: `d1` sits in the spill map, `x` is new.
        let mut left = DocList::from(vec![Doc::with_id("d0"), Doc::with_id("d1")]);
        let state = RandomState::new();
        let mut slots: HashMap<u64, usize, BuildHasherDefault<PassThrough>> = HashMap::default();
        for id in ["d0", "d1", "x"] {
            slots.insert(state.hash_one(id), 0);
        }
        let spill = HashMap::from([("d1".to_owned(), 1)]);
        let mut index = IdIndex::Map {
            state,
            slots,
            spill,
        };
        let right = DocList::from(vec![
            Doc::with_id("d1").with_text("1"),
            Doc::with_id("x").with_text("x"),
            Doc::with_id("d0").with_text("0"),
        ]);
        let again = Doc::with_id("x").with_tag("again", true);
        for doc in right.into_iter().chain([again]) {
            match index.position(&left, doc.id()) {
                Some(i) => update(&mut left[i], doc),
                None => left.push(doc),
            }
        }
        assert_eq!(left.ids(), ["d0", "d1", "x"]);
        assert_eq!(left.texts(), ["0", "1", "x"]);
        assert_eq!(left[2].tag("again"), Some(&Value::Bool(true)));
    }

    #[test]
    fn results_are_united_later_wins() {
        let mut into = Params::new();
        merge_results(
            &mut into,
            serde_json::from_str(r#"{"a": 1, "b": 1}"#).unwrap(),
        );
        merge_results(
            &mut into,
            serde_json::from_str(r#"{"b": 2, "c": 3}"#).unwrap(),
        );
        let keys: Vec<&str> = into.keys().map(String::as_str).collect();
        assert_eq!(keys, ["a", "b", "c"]);
        assert_eq!(
            serde_json::Value::Object(into),
            serde_json::json!({"a": 1, "b": 2, "c": 3})
        );
    }
}
