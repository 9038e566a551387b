//! Field names and tensor type tags as they are decoded: the common ones come back as the
//! `&'static str` they were built from, so decoding a document (a follower's Raft log entry,
//! another process's answer) allocates no name. Every field of every decoded doc used to be a
//! fresh `String` (two per doc with an embedding: its name and its tag).

use std::borrow::Cow;
use std::fmt;

use serde::Deserializer;
use serde::de::{SeqAccess, Visitor};

use super::{Name, Value};

/// Names and tags common enough to keep static.
const COMMON: &[&str] = &[
    "embedding",
    "text",
    "tensor",
    "tags",
    "matches",
    "chunks",
    "scores",
    "url",
    "uri",
    "blob",
    super::TAG_NDARRAY,
    super::TAG_EMBEDDING,
];

/// `s`, borrowed from [`COMMON`] when it is one of them.
pub(super) fn intern(s: &str) -> Name {
    match COMMON.iter().find(|c| **c == s) {
        Some(c) => Cow::Borrowed(c),
        None => Cow::Owned(s.to_owned()),
    }
}

/// A name deserialized through [`intern`].
struct Interned(Name);

impl<'de> serde::Deserialize<'de> for Interned {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Interned;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a name")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Interned, E> {
                Ok(Interned(intern(s)))
            }
            fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Interned, E> {
                Ok(Interned(match COMMON.iter().find(|c| **c == s) {
                    Some(c) => Cow::Borrowed(c),
                    None => Cow::Owned(s),
                }))
            }
        }
        d.deserialize_str(V)
    }
}

/// `#[serde(deserialize_with)]` for a name or tag.
pub(super) fn deserialize_name<'de, D: Deserializer<'de>>(d: D) -> Result<Name, D::Error> {
    serde::Deserialize::deserialize(d).map(|Interned(n)| n)
}

/// `#[serde(deserialize_with)]` for a doc's fields: the derived form (a sequence of
/// (name, value) pairs), the names interned.
pub(super) fn deserialize_fields<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<(Name, Value)>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<(Name, Value)>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a sequence of (name, value) pairs")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            // The hint is the sender's word: a few fields are allocated up front at most.
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
            while let Some((Interned(name), value)) = seq.next_element::<(Interned, Value)>()? {
                out.push((name, value));
            }
            Ok(out)
        }
    }
    d.deserialize_seq(V)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::{Doc, NdArray};

    #[test]
    fn decoded_common_names_are_static_and_docs_round_trip() {
        let doc = Doc::with_id("a")
            .with_text("hi")
            .with_embedding(NdArray::from_f32(vec![1.0, 2.0]))
            .with("my_field", Value::Int(3));
        for bytes in [
            postcard::to_stdvec(&doc).unwrap(),
            serde_json::to_vec(&doc).unwrap(),
        ] {
            let back: Doc = match bytes.first() {
                Some(b'{') => serde_json::from_slice(&bytes).unwrap(),
                _ => postcard::from_bytes(&bytes).unwrap(),
            };
            assert_eq!(back, doc);
            let names: Vec<bool> = back
                .fields
                .iter()
                .map(|(n, _)| matches!(n, Cow::Borrowed(_)))
                .collect();
            assert_eq!(names, [true, true, false], "text and embedding are static");
            let tag = &back.embedding().unwrap().tag;
            assert!(matches!(tag, Cow::Borrowed(_)), "{tag:?}");
        }
    }
}
