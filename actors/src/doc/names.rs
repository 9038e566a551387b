//! The common field names and tensor type tags, as `&'static str`: the one list every place
//! that names a field from a string uses (the gRPC codec, `reduce`, and serde decoding of a
//! follower's Raft log entry or another process's answer), so a common name never costs an
//! allocation. Decoded with serde, every field name and tag used to be a fresh `String` (two
//! per doc with an embedding).

use std::borrow::Cow;
use std::fmt;

use serde::Deserializer;
use serde::de::{SeqAccess, Visitor};

use super::{Name, TAG_EMBEDDING, TAG_NDARRAY, Value};

/// The static copy of `s` when it is a common field name (docarray's and Jina's own).
fn common_field(s: &str) -> Option<&'static str> {
    Some(match s {
        "text" => "text",
        "embedding" => "embedding",
        "tensor" => "tensor",
        "tags" => "tags",
        "matches" => "matches",
        "chunks" => "chunks",
        "scores" => "scores",
        "url" => "url",
        "uri" => "uri",
        "blob" => "blob",
        "bytes_" => "bytes_",
        "value" => "value",
        "parent_id" => "parent_id",
        "granularity" => "granularity",
        "adjacency" => "adjacency",
        "modality" => "modality",
        "mime_type" => "mime_type",
        "offset" => "offset",
        "location" => "location",
        "weight" => "weight",
        _ => return None,
    })
}

/// The static copy of `s` when it is a common tensor type tag.
fn common_tag(s: &str) -> Option<&'static str> {
    match s {
        TAG_NDARRAY => Some(TAG_NDARRAY),
        TAG_EMBEDDING => Some(TAG_EMBEDDING),
        _ => None,
    }
}

/// A field name: static when it is a common one, else a copy of `s`.
pub fn field(s: &str) -> Name {
    common_field(s).map_or_else(|| Cow::Owned(s.to_owned()), Cow::Borrowed)
}

/// A field name from a decoded `String`: static when it is a common one, else `s` itself.
pub fn field_owned(s: String) -> Name {
    common_field(&s).map_or(Cow::Owned(s), Cow::Borrowed)
}

/// A tensor type tag from a decoded `String`: static when it is a common one, else `s`.
pub fn tag_owned(s: String) -> Cow<'static, str> {
    common_tag(&s).map_or(Cow::Owned(s), Cow::Borrowed)
}

/// A string deserialized static when `common` knows it.
fn deserialize_common<'de, D: Deserializer<'de>>(
    d: D,
    common: fn(&str) -> Option<&'static str>,
) -> Result<Name, D::Error> {
    struct V(fn(&str) -> Option<&'static str>);
    impl Visitor<'_> for V {
        type Value = Name;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a name")
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Name, E> {
            Ok((self.0)(s).map_or_else(|| Cow::Owned(s.to_owned()), Cow::Borrowed))
        }
        fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Name, E> {
            Ok((self.0)(&s).map_or(Cow::Owned(s), Cow::Borrowed))
        }
    }
    d.deserialize_str(V(common))
}

/// A field name, deserialized through [`field`].
struct FieldName(Name);

impl<'de> serde::Deserialize<'de> for FieldName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_common(d, common_field).map(FieldName)
    }
}

/// `#[serde(deserialize_with)]` for a tensor's type tag.
pub(super) fn deserialize_tag<'de, D: Deserializer<'de>>(d: D) -> Result<Name, D::Error> {
    deserialize_common(d, common_tag)
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
            while let Some((FieldName(name), value)) = seq.next_element::<(FieldName, Value)>()? {
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
