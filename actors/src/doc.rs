//! Documents: the data that flows through a Flow.
//!
//! A [`Doc`] is an id plus named fields, the way a docarray v2 `BaseDoc` is: every field docarray
//! puts on the wire (`NodeProto`) has a [`Value`] variant here, including the type tags docarray
//! uses to rebuild tensors, URLs and byte blobs, so a document that arrives over gRPC leaves again
//! unchanged. Typed accessors ([`Doc::text`], [`Doc::embedding`], [`Doc::tags`], [`Doc::matches`],
//! [`Doc::scores`] …) make Executor code read like Jina's.

use std::borrow::Cow;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

mod array_wire;
pub mod le;
pub mod names;

/// A field name. The common names are `&'static str`, so building a doc allocates no names.
pub type Name = Cow<'static, str>;

/// A JSON-like map with string keys in insertion order (docarray's `Dict[str, Any]`, e.g. `tags`).
pub type Dict = IndexMap<String, Value>;

/// One field value. The variants mirror docarray's `NodeProto` content kinds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// Python `None`: an empty node on the wire.
    #[default]
    None,
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Bytes(#[serde(with = "serde_bytes")] Vec<u8>),
    NdArray(NdArray),
    Doc(Box<Doc>),
    DocList(DocList),
    List(Vec<Value>),
    Set(Vec<Value>),
    Tuple(Vec<Value>),
    Dict(Dict),
    /// A value carrying a docarray type tag that is not implied by its kind (`image_url`,
    /// `image_bytes`, …). Tensors keep their tag in [`NdArray::tag`] instead.
    Typed(Box<Typed>),
}

/// A value with an explicit docarray type tag (`NodeProto.type`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Typed {
    pub ty: String,
    pub value: Value,
}

impl Value {
    /// The value without its type tag, if it has one.
    pub fn untyped(&self) -> &Value {
        match self {
            Value::Typed(t) => t.value.untyped(),
            v => v,
        }
    }

    /// Mutable access to the value without its type tag.
    pub fn untyped_mut(&mut self) -> &mut Value {
        match self {
            Value::Typed(t) => t.value.untyped_mut(),
            v => v,
        }
    }

    pub fn is_none(&self) -> bool {
        matches!(self.untyped(), Value::None)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self.untyped() {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a number, for ints, floats and bools (as 0/1), the way Python compares them.
    pub fn as_f64(&self) -> Option<f64> {
        match self.untyped() {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Bool(b) => Some(f64::from(u8::from(*b))),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self.untyped() {
            Value::Int(i) => Some(*i),
            Value::Float(f) if f.fract() == 0.0 => Some(*f as i64),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self.untyped() {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_dict(&self) -> Option<&Dict> {
        match self.untyped() {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    pub fn as_doc(&self) -> Option<&Doc> {
        match self.untyped() {
            Value::Doc(d) => Some(d),
            _ => None,
        }
    }

    pub fn as_doc_list(&self) -> Option<&DocList> {
        match self.untyped() {
            Value::DocList(d) => Some(d),
            _ => None,
        }
    }

    pub fn as_ndarray(&self) -> Option<&NdArray> {
        match self.untyped() {
            Value::NdArray(a) => Some(a),
            _ => None,
        }
    }

    /// The items of a list, set or tuple.
    pub fn as_items(&self) -> Option<&[Value]> {
        match self.untyped() {
            Value::List(v) | Value::Set(v) | Value::Tuple(v) => Some(v),
            _ => None,
        }
    }

    /// Python's `len()` of the value, where it has one.
    pub fn len(&self) -> Option<usize> {
        match self.untyped() {
            Value::Text(s) => Some(s.chars().count()),
            Value::Bytes(b) => Some(b.len()),
            Value::List(v) | Value::Set(v) | Value::Tuple(v) => Some(v.len()),
            Value::Dict(d) => Some(d.len()),
            Value::DocList(d) => Some(d.len()),
            Value::NdArray(a) => Some(a.shape.first().copied().unwrap_or(0)),
            _ => None,
        }
    }

    /// Whether Python's `len()` of the value is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl From<i32> for Value {
    fn from(i: i32) -> Self {
        Value::Int(i64::from(i))
    }
}
impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<NdArray> for Value {
    fn from(a: NdArray) -> Self {
        Value::NdArray(a)
    }
}
impl From<Doc> for Value {
    fn from(d: Doc) -> Self {
        Value::Doc(Box::new(d))
    }
}
impl From<DocList> for Value {
    fn from(d: DocList) -> Self {
        Value::DocList(d)
    }
}
impl From<Dict> for Value {
    fn from(d: Dict) -> Self {
        Value::Dict(d)
    }
}
impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(v: Vec<T>) -> Self {
        Value::List(v.into_iter().map(Into::into).collect())
    }
}

impl From<&serde_json::Value> for Value {
    /// JSON into a document value: integers stay integers, objects become dicts.
    fn from(v: &serde_json::Value) -> Self {
        use serde_json::Value as J;
        match v {
            J::Null => Value::None,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            J::String(s) => Value::Text(s.clone()),
            J::Array(a) => Value::List(a.iter().map(Value::from).collect()),
            J::Object(o) => {
                Value::Dict(o.iter().map(|(k, v)| (k.clone(), Value::from(v))).collect())
            }
        }
    }
}

/// Numpy element types flotilla keeps natively; anything else travels as raw bytes. Binary
/// serializers get numbers as their little-endian bytes (see `array_wire.rs`).
#[derive(Clone, Debug, PartialEq)]
pub enum ArrayData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    U8(Vec<u8>),
    Bool(Vec<bool>),
    /// Any other numpy dtype (`<f2`, `>i4`, …), kept as its dtype string and C-order bytes.
    Raw {
        dtype: String,
        bytes: Vec<u8>,
    },
}

impl ArrayData {
    /// The numpy `dtype.str` of the elements.
    pub fn dtype(&self) -> &str {
        match self {
            ArrayData::F32(_) => "<f4",
            ArrayData::F64(_) => "<f8",
            ArrayData::I32(_) => "<i4",
            ArrayData::I64(_) => "<i8",
            ArrayData::U8(_) => "|u1",
            ArrayData::Bool(_) => "|b1",
            ArrayData::Raw { dtype, .. } => dtype,
        }
    }

    /// The number of elements (for raw data: unknown element size, so bytes).
    pub fn len(&self) -> usize {
        match self {
            ArrayData::F32(v) => v.len(),
            ArrayData::F64(v) => v.len(),
            ArrayData::I32(v) => v.len(),
            ArrayData::I64(v) => v.len(),
            ArrayData::U8(v) => v.len(),
            ArrayData::Bool(v) => v.len(),
            ArrayData::Raw { bytes, .. } => bytes.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The docarray type tag of a plain numpy tensor field.
pub const TAG_NDARRAY: &str = "ndarray";
/// The docarray type tag of an `AnyEmbedding` field holding a numpy array (`TextDoc.embedding`).
pub const TAG_EMBEDDING: &str = "ndarray_embedding";

/// A dense n-dimensional array in C order, with the docarray type tag it travels under.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NdArray {
    pub shape: Vec<usize>,
    pub data: ArrayData,
    /// docarray's `NodeProto.type` for this tensor: `ndarray`, `ndarray_embedding`, `torch_tensor` …
    #[serde(deserialize_with = "names::deserialize_tag")]
    pub tag: Cow<'static, str>,
}

impl NdArray {
    /// A 1-d f32 array (an embedding).
    pub fn from_f32(v: Vec<f32>) -> Self {
        NdArray {
            shape: vec![v.len()],
            data: ArrayData::F32(v),
            tag: Cow::Borrowed(TAG_NDARRAY),
        }
    }

    /// An f32 array of the given shape; `None` when the shape does not hold `v.len()` elements.
    pub fn from_f32_shaped(v: Vec<f32>, shape: Vec<usize>) -> Option<Self> {
        if shape.iter().product::<usize>() != v.len() {
            return None;
        }
        Some(NdArray {
            shape,
            data: ArrayData::F32(v),
            tag: Cow::Borrowed(TAG_NDARRAY),
        })
    }

    /// A 1-d f64 array.
    pub fn from_f64(v: Vec<f64>) -> Self {
        NdArray {
            shape: vec![v.len()],
            data: ArrayData::F64(v),
            tag: Cow::Borrowed(TAG_NDARRAY),
        }
    }

    /// The same array under another docarray type tag.
    pub fn tagged(mut self, tag: impl Into<Cow<'static, str>>) -> Self {
        self.tag = tag.into();
        self
    }

    /// The elements as f32 without copying, when they are stored as f32.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            ArrayData::F32(v) => Some(v),
            _ => None,
        }
    }

    /// The elements as f32, converting numeric types (f64 from numpy's default `rand` …).
    pub fn to_f32(&self) -> Option<Cow<'_, [f32]>> {
        Some(match &self.data {
            ArrayData::F32(v) => Cow::Borrowed(v.as_slice()),
            ArrayData::F64(v) => Cow::Owned(v.iter().map(|&x| x as f32).collect()),
            ArrayData::I32(v) => Cow::Owned(v.iter().map(|&x| x as f32).collect()),
            ArrayData::I64(v) => Cow::Owned(v.iter().map(|&x| x as f32).collect()),
            ArrayData::U8(v) => Cow::Owned(v.iter().map(|&x| f32::from(x)).collect()),
            ArrayData::Bool(v) => Cow::Owned(v.iter().map(|&x| f32::from(u8::from(x))).collect()),
            ArrayData::Raw { .. } => return None,
        })
    }

    /// The number of elements the shape describes.
    pub fn size(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A document: an id and named fields.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Doc {
    id: String,
    #[serde(deserialize_with = "names::deserialize_fields")]
    fields: Vec<(Name, Value)>,
}

impl Default for Doc {
    fn default() -> Self {
        Doc::new()
    }
}

impl fmt::Debug for Doc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Doc");
        s.field("id", &self.id);
        for (k, v) in &self.fields {
            s.field(k, v);
        }
        s.finish()
    }
}

impl Doc {
    /// A document with a fresh unique id and no fields.
    pub fn new() -> Self {
        Doc {
            id: fresh_id(),
            fields: Vec::new(),
        }
    }

    /// A document with the given id.
    pub fn with_id(id: impl Into<String>) -> Self {
        Doc {
            id: id.into(),
            fields: Vec::new(),
        }
    }

    /// A fresh document with a `text` field (docarray's `TextDoc(text=...)`).
    pub fn text_doc(text: impl Into<String>) -> Self {
        Doc::new().with_text(text)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn set_id(&mut self, id: impl Into<String>) {
        self.id = id.into();
    }

    /// The field, if the document has it (a field set to `None` is present).
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Value> {
        self.fields
            .iter_mut()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// Sets a field, replacing its value in place (the field keeps its position) or appending it.
    pub fn set(&mut self, name: impl Into<Name>, value: impl Into<Value>) {
        let name = name.into();
        let value = value.into();
        match self.fields.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => self.fields.push((name, value)),
        }
    }

    /// Builder form of [`Doc::set`].
    pub fn with(mut self, name: impl Into<Name>, value: impl Into<Value>) -> Self {
        self.set(name, value);
        self
    }

    pub fn remove(&mut self, name: &str) -> Option<Value> {
        let i = self.fields.iter().position(|(k, _)| k == name)?;
        Some(self.fields.remove(i).1)
    }

    /// The fields in order (the `id` is not among them).
    pub fn fields(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.fields.iter().map(|(k, v)| (k.as_ref(), v))
    }

    pub fn fields_mut(&mut self) -> impl Iterator<Item = (&str, &mut Value)> {
        self.fields.iter_mut().map(|(k, v)| (&**k, v))
    }

    /// The field, created with `make` if absent or `None`.
    fn entry(&mut self, name: &'static str, make: impl FnOnce() -> Value) -> &mut Value {
        let i = match self.fields.iter().position(|(k, _)| k == name) {
            Some(i) => {
                if self.fields[i].1.is_none() {
                    self.fields[i].1 = make();
                }
                i
            }
            None => {
                self.fields.push((Cow::Borrowed(name), make()));
                self.fields.len() - 1
            }
        };
        self.fields[i].1.untyped_mut()
    }

    pub fn text(&self) -> Option<&str> {
        self.get("text").and_then(Value::as_str)
    }

    pub fn set_text(&mut self, text: impl Into<String>) {
        self.set("text", Value::Text(text.into()));
    }

    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.set_text(text);
        self
    }

    /// The `embedding` tensor.
    pub fn embedding(&self) -> Option<&NdArray> {
        self.get("embedding").and_then(Value::as_ndarray)
    }

    /// Sets the `embedding`, tagged as docarray's `AnyEmbedding` unless it already has a
    /// non-default tag.
    pub fn set_embedding(&mut self, mut e: NdArray) {
        if e.tag == TAG_NDARRAY {
            e.tag = Cow::Borrowed(TAG_EMBEDDING);
        }
        self.set("embedding", Value::NdArray(e));
    }

    pub fn with_embedding(mut self, e: NdArray) -> Self {
        self.set_embedding(e);
        self
    }

    /// The `tensor` field.
    pub fn tensor(&self) -> Option<&NdArray> {
        self.get("tensor").and_then(Value::as_ndarray)
    }

    /// The `tags` dict.
    pub fn tags(&self) -> Option<&Dict> {
        self.get("tags").and_then(Value::as_dict)
    }

    /// The `tags` dict, created if absent.
    pub fn tags_mut(&mut self) -> &mut Dict {
        match self.entry("tags", || Value::Dict(Dict::new())) {
            Value::Dict(d) => d,
            other => {
                *other = Value::Dict(Dict::new());
                match other {
                    Value::Dict(d) => d,
                    _ => unreachable!("just set to a dict"),
                }
            }
        }
    }

    /// Sets one tag.
    pub fn with_tag(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.tags_mut().insert(key.into(), value.into());
        self
    }

    pub fn tag(&self, key: &str) -> Option<&Value> {
        self.tags().and_then(|t| t.get(key))
    }

    fn doc_list(&self, name: &str) -> Option<&DocList> {
        self.get(name).and_then(Value::as_doc_list)
    }

    fn doc_list_mut(&mut self, name: &'static str) -> &mut DocList {
        match self.entry(name, || Value::DocList(DocList::new())) {
            Value::DocList(d) => d,
            other => {
                *other = Value::DocList(DocList::new());
                match other {
                    Value::DocList(d) => d,
                    _ => unreachable!("just set to a doc list"),
                }
            }
        }
    }

    /// The nested `matches`.
    pub fn matches(&self) -> Option<&DocList> {
        self.doc_list("matches")
    }

    /// The nested `matches`, created if absent.
    pub fn matches_mut(&mut self) -> &mut DocList {
        self.doc_list_mut("matches")
    }

    /// The nested `chunks`.
    pub fn chunks(&self) -> Option<&DocList> {
        self.doc_list("chunks")
    }

    /// The nested `chunks`, created if absent.
    pub fn chunks_mut(&mut self) -> &mut DocList {
        self.doc_list_mut("chunks")
    }

    /// The `scores` dict: score name to a number or a `NamedScore` doc with a `value`.
    pub fn scores(&self) -> Option<&Dict> {
        self.get("scores").and_then(Value::as_dict)
    }

    /// One named score (`doc.scores['cosine'].value` in Jina).
    pub fn score(&self, name: &str) -> Option<f64> {
        let v = self.scores()?.get(name)?;
        match v.untyped() {
            Value::Doc(d) => d.get("value").and_then(Value::as_f64),
            other => other.as_f64(),
        }
    }

    /// Sets one named score, as a plain number: what an untyped docarray v2 document (Jina's
    /// `LegacyDocumentJina.scores: Dict[str, Any]`) can decode. A `NamedScore` doc there would
    /// fail to decode in Python.
    pub fn set_score(&mut self, name: impl Into<String>, value: f64) {
        match self.entry("scores", || Value::Dict(Dict::new())) {
            Value::Dict(d) => {
                d.insert(name.into(), Value::Float(value));
            }
            other => {
                let mut d = Dict::new();
                d.insert(name.into(), Value::Float(value));
                *other = Value::Dict(d);
            }
        }
    }

    pub fn with_score(mut self, name: impl Into<String>, value: f64) -> Self {
        self.set_score(name, value);
        self
    }
}

/// A list of documents (docarray's `DocList`).
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DocList(Vec<Doc>);

impl fmt::Debug for DocList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.0).finish()
    }
}

impl DocList {
    pub fn new() -> Self {
        DocList(Vec::new())
    }

    pub fn with_capacity(n: usize) -> Self {
        DocList(Vec::with_capacity(n))
    }

    /// The `text` of every doc (`""` where a doc has none), as Jina's `docs.texts`.
    pub fn texts(&self) -> Vec<&str> {
        self.0.iter().map(|d| d.text().unwrap_or("")).collect()
    }

    /// The ids of every doc.
    pub fn ids(&self) -> Vec<&str> {
        self.0.iter().map(Doc::id).collect()
    }

    pub fn into_vec(self) -> Vec<Doc> {
        self.0
    }
}

impl Deref for DocList {
    type Target = Vec<Doc>;
    fn deref(&self) -> &Vec<Doc> {
        &self.0
    }
}

impl DerefMut for DocList {
    fn deref_mut(&mut self) -> &mut Vec<Doc> {
        &mut self.0
    }
}

impl From<Vec<Doc>> for DocList {
    fn from(v: Vec<Doc>) -> Self {
        DocList(v)
    }
}

impl From<Doc> for DocList {
    fn from(d: Doc) -> Self {
        DocList(vec![d])
    }
}

impl FromIterator<Doc> for DocList {
    fn from_iter<I: IntoIterator<Item = Doc>>(iter: I) -> Self {
        DocList(iter.into_iter().collect())
    }
}

impl IntoIterator for DocList {
    type Item = Doc;
    type IntoIter = std::vec::IntoIter<Doc>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a DocList {
    type Item = &'a Doc;
    type IntoIter = std::slice::Iter<'a, Doc>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl Extend<Doc> for DocList {
    fn extend<I: IntoIterator<Item = Doc>>(&mut self, iter: I) {
        self.0.extend(iter)
    }
}

/// A fresh 32-hex-digit id, like docarray's `uuid4().hex`: a random per-process key mixed with a
/// counter, so ids are unique within the process and collide across processes with negligible
/// probability, without a system call per id.
pub fn fresh_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static KEY: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();
    let (k0, k1) = *KEY.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let s = std::collections::hash_map::RandomState::new();
        let mut h = s.build_hasher();
        h.write_u64(std::process::id().into());
        let a = h.finish();
        let mut h = s.build_hasher();
        h.write_u64(a ^ 0x9e37_79b9_7f4a_7c15);
        (a, h.finish())
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let hi = splitmix64(n ^ k0);
    let lo = splitmix64(n.wrapping_add(k1));
    format!("{hi:016x}{lo:016x}")
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_ids_are_unique_32_hex() {
        let a = Doc::new();
        let b = Doc::new();
        assert_ne!(a.id(), b.id());
        assert_eq!(a.id().len(), 32);
        assert!(a.id().chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn accessors_read_and_write_the_common_fields() {
        let mut d = Doc::with_id("d1")
            .with_text("hello")
            .with_embedding(NdArray::from_f32(vec![1.0, 2.0]))
            .with_tag("key", 5);
        assert_eq!(d.text(), Some("hello"));
        assert_eq!(d.embedding().unwrap().as_f32(), Some(&[1.0, 2.0][..]));
        assert_eq!(d.embedding().unwrap().tag, TAG_EMBEDDING);
        assert_eq!(d.tag("key"), Some(&Value::Int(5)));
        d.matches_mut()
            .push(Doc::with_id("m1").with_score("cosine", 0.5));
        assert_eq!(d.matches().unwrap().ids(), vec!["m1"]);
        assert_eq!(d.matches().unwrap()[0].score("cosine"), Some(0.5));
        d.set_text("again");
        assert_eq!(d.fields().next().unwrap(), ("text", &Value::from("again")));
    }

    #[test]
    fn a_none_field_is_replaced_by_the_accessors() {
        let mut d = Doc::with_id("x").with("matches", Value::None);
        d.matches_mut().push(Doc::with_id("m"));
        assert_eq!(d.matches().unwrap().len(), 1);
    }

    #[test]
    fn f64_embeddings_convert_to_f32() {
        let a = NdArray::from_f64(vec![0.5, 0.25]);
        assert_eq!(a.to_f32().unwrap().as_ref(), &[0.5f32, 0.25]);
        assert!(a.as_f32().is_none());
    }
}
