//! How an [`ArrayData`] is serialized.
//!
//! Binary formats (postcard: the Raft log, Raft messages between processes, answers of other
//! replicas) get numbers as one byte string of their little-endian bytes: bulk copies (on a
//! little-endian target straight from the numbers' memory into the output, see
//! `le::as_le_bytes`; from the input into the numbers), where serde's element-by-element
//! sequence cost a call per number (the Raft log encoded and decoded every embedding that
//! way, three decodes per write with three replicas). A write's log bytes are sized first
//! (postcard's `Size` flavor), which costs no copy of a tensor this way.
//!
//! Human-readable formats (JSON) keep serde's derived form: a list of numbers.
//!
//! Readers accept both. The variant indices of the original derive (`F32` = 0 … `Raw` = 6) are
//! kept, and the byte forms are the variants after them (`F32Le` = 7 … `I64Le` = 10), so a log
//! written before this encoding existed reads the same. A build from before cannot read the
//! byte forms: the nodes of one group run one version (the README says so).

use std::marker::PhantomData;

use serde::de::{Deserializer, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

use super::ArrayData;
use super::le::{LeNumber, from_le_bytes};

/// Serializes numbers as one byte string.
struct Le<'a, T>(&'a [T]);

impl<T: LeNumber> Serialize for Le<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[cfg(target_endian = "little")]
        return s.serialize_bytes(super::le::as_le_bytes(self.0));
        #[cfg(not(target_endian = "little"))]
        s.serialize_bytes(&super::le::to_le_bytes(self.0))
    }
}

/// Deserializes numbers from one byte string.
struct LeVec<T>(Vec<T>);

impl<'de, T: LeNumber> Deserialize<'de> for LeVec<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<T: LeNumber> Visitor<'_> for V<T> {
            type Value = LeVec<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "a byte string of {}-byte numbers", T::SIZE)
            }
            fn visit_bytes<E: serde::de::Error>(self, b: &[u8]) -> Result<LeVec<T>, E> {
                if !b.len().is_multiple_of(T::SIZE) {
                    return Err(E::invalid_length(b.len(), &self));
                }
                Ok(LeVec(from_le_bytes(b)))
            }
        }
        d.deserialize_bytes(V(PhantomData))
    }
}

/// The serialized form, borrowing (variant order is the format: see the module's docs).
#[derive(Serialize)]
#[serde(rename = "ArrayData")]
enum Out<'a> {
    F32(&'a [f32]),
    F64(&'a [f64]),
    I32(&'a [i32]),
    I64(&'a [i64]),
    U8(&'a [u8]),
    Bool(&'a [bool]),
    Raw { dtype: &'a str, bytes: &'a [u8] },
    F32Le(Le<'a, f32>),
    F64Le(Le<'a, f64>),
    I32Le(Le<'a, i32>),
    I64Le(Le<'a, i64>),
}

/// The serialized form, owned (the same variants in the same order as [`Out`]).
#[derive(Deserialize)]
#[serde(rename = "ArrayData")]
enum In {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    U8(Vec<u8>),
    Bool(Vec<bool>),
    Raw { dtype: String, bytes: Vec<u8> },
    F32Le(LeVec<f32>),
    F64Le(LeVec<f64>),
    I32Le(LeVec<i32>),
    I64Le(LeVec<i64>),
}

impl Serialize for ArrayData {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let compact = !s.is_human_readable();
        let out = match self {
            ArrayData::F32(v) if compact => Out::F32Le(Le(v)),
            ArrayData::F64(v) if compact => Out::F64Le(Le(v)),
            ArrayData::I32(v) if compact => Out::I32Le(Le(v)),
            ArrayData::I64(v) if compact => Out::I64Le(Le(v)),
            ArrayData::F32(v) => Out::F32(v),
            ArrayData::F64(v) => Out::F64(v),
            ArrayData::I32(v) => Out::I32(v),
            ArrayData::I64(v) => Out::I64(v),
            ArrayData::U8(v) => Out::U8(v),
            ArrayData::Bool(v) => Out::Bool(v),
            ArrayData::Raw { dtype, bytes } => Out::Raw { dtype, bytes },
        };
        out.serialize(s)
    }
}

impl<'de> Deserialize<'de> for ArrayData {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match In::deserialize(d)? {
            In::F32(v) | In::F32Le(LeVec(v)) => ArrayData::F32(v),
            In::F64(v) | In::F64Le(LeVec(v)) => ArrayData::F64(v),
            In::I32(v) | In::I32Le(LeVec(v)) => ArrayData::I32(v),
            In::I64(v) | In::I64Le(LeVec(v)) => ArrayData::I64(v),
            In::U8(v) => ArrayData::U8(v),
            In::Bool(v) => ArrayData::Bool(v),
            In::Raw { dtype, bytes } => ArrayData::Raw { dtype, bytes },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<ArrayData> {
        vec![
            ArrayData::F32(vec![1.5, -0.0, f32::MAX, f32::MIN_POSITIVE, 3.25e-7]),
            ArrayData::F64(vec![0.1, -2.0e300]),
            ArrayData::I32(vec![i32::MIN, 0, 7]),
            ArrayData::I64(vec![i64::MAX, -1]),
            ArrayData::U8(vec![0, 255, 9]),
            ArrayData::Bool(vec![true, false]),
            ArrayData::Raw {
                dtype: "<f2".into(),
                bytes: vec![0, 60],
            },
            ArrayData::F32(Vec::new()),
        ]
    }

    #[test]
    fn postcard_round_trips_every_kind_and_writes_numbers_as_bytes() {
        for a in all() {
            let bytes = postcard::to_stdvec(&a).expect("encodes");
            let back: ArrayData = postcard::from_bytes(&bytes).expect("decodes");
            assert_eq!(back, a);
        }
        let bytes = postcard::to_stdvec(&ArrayData::F32(vec![1.0, 2.0])).expect("encodes");
        // Variant 7 (F32Le), 8 bytes, then the numbers' little-endian bytes.
        let mut want = vec![7, 8];
        want.extend(1.0f32.to_le_bytes());
        want.extend(2.0f32.to_le_bytes());
        assert_eq!(bytes, want);
    }

    #[test]
    fn the_derived_encoding_of_older_logs_still_reads() {
        // What `#[derive(Serialize)]` on `ArrayData` wrote: the variant's index, then the
        // numbers one by one. `Out`'s first variants are that derive.
        let old = [
            (Out::F32(&[1.5, -2.0]), ArrayData::F32(vec![1.5, -2.0])),
            (Out::I64(&[-3, 4]), ArrayData::I64(vec![-3, 4])),
            (Out::U8(&[1, 2]), ArrayData::U8(vec![1, 2])),
            (
                Out::Raw {
                    dtype: ">i4",
                    bytes: &[0, 0, 0, 1],
                },
                ArrayData::Raw {
                    dtype: ">i4".into(),
                    bytes: vec![0, 0, 0, 1],
                },
            ),
        ];
        for (out, want) in old {
            let bytes = postcard::to_stdvec(&out).expect("encodes");
            let back: ArrayData = postcard::from_bytes(&bytes).expect("decodes");
            assert_eq!(back, want);
        }
        // The old F32 form is variant 0 with a count and raw 4-byte floats.
        let bytes = postcard::to_stdvec(&Out::F32(&[1.0])).expect("encodes");
        assert_eq!(bytes[..2], [0, 1]);
    }

    #[test]
    fn json_keeps_lists_of_numbers() {
        for a in all() {
            let j = serde_json::to_value(&a).expect("encodes");
            let back: ArrayData = serde_json::from_value(j).expect("decodes");
            assert_eq!(back, a);
        }
        let j = serde_json::to_value(ArrayData::I32(vec![1, 2])).expect("encodes");
        assert_eq!(j, serde_json::json!({"I32": [1, 2]}));
    }

    #[test]
    fn a_byte_string_of_the_wrong_length_is_an_error() {
        // F32Le with 3 bytes, then with 4.
        assert!(postcard::from_bytes::<ArrayData>(&[7, 3, 1, 2, 3]).is_err());
        let one: ArrayData = postcard::from_bytes(&[7, 4, 0, 0, 128, 63]).expect("decodes");
        assert_eq!(one, ArrayData::F32(vec![1.0]));
    }
}
