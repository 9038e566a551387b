//! The lossless codec between the kernel's types ([`Doc`], [`Value`], [`Request`] …) and the wire
//! messages of Jina 3.x with docarray v2 ([`DocProto`], [`NodeProto`], [`DataRequestProto`] …).
//!
//! Mapping (`Value` ⇄ `NodeProto`, docarray's `_to_node_protobuf` rules):
//!
//! | `Value` | `NodeProto` |
//! |---|---|
//! | `None` | empty node (no content, no type) |
//! | `Text` | `text` |
//! | `Int` | `integer` (int32 on the wire); an `i64` outside the int32 range is sent as `float`, since Python cannot send or receive such ints in `integer` at all |
//! | `Float` | `float` |
//! | `Bool` | `boolean` |
//! | `Bytes` | `blob` |
//! | `NdArray` | `ndarray{dense{buffer, shape, dtype}}` with `type` = [`NdArray::tag`] (always set on output; `ndarray` when the tag is empty; a typeless ndarray is accepted on input as `ndarray`) |
//! | `Doc` | `doc` |
//! | `DocList` | `doc_array` (an empty list is `doc_array{}`) |
//! | `List` / `Set` / `Tuple` | `list` / `set` / `tuple` |
//! | `Dict` | `dict` |
//! | `Typed{ty, value}` | the node of `value` with `type` = `ty` |
//!
//! The document id travels as the field `id` = `{text: id, type: "id"}`. On input the `type` may
//! be missing (Jina's gateway drops it after a `when` filter), an int32 id is turned into text,
//! and a missing or empty-node id gets a [`fresh_id`]. A field named `id` inside [`Doc`]'s fields
//! is never sent: the doc's own id wins.
//!
//! Field order: map fields are generated as `BTreeMap`s (see `build.rs`), so we emit fields sorted
//! by name, exactly like Python protobuf's deterministic serialization (which is what makes the
//! golden vectors of the protocol notes reproducible byte for byte), and decoded documents list
//! their fields in alphabetical order. A document whose fields were not in alphabetical order
//! comes back with the same fields and values, sorted.
//!
//! Arrays: `buffer` is the raw little-endian C-order element bytes, `dtype` numpy's `dtype.str`.
//! `<f4 <f8 <i4 <i8 |u1 |b1` (and the native-order spellings `=f4`/`f4`, `<u1`, `?` …) decode
//! into the typed [`ArrayData`] variants; every other dtype (`<f2`, `>f4`, `<U3` …) is kept as
//! [`ArrayData::Raw`] and goes out unchanged. The buffer length is checked against
//! shape × itemsize whenever the itemsize is known. An empty buffer with a non-zero element count
//! means zeros (docarray's rule); docarray makes them float64, we keep the declared dtype.
//!
//! Parameters (`google.protobuf.Struct`) carry every number as a double, as in Jina: an int
//! parameter `1` comes back as the JSON float `1.0` ([`struct_to_params`] does not guess which
//! doubles were ints). Non-finite doubles, which JSON cannot hold, become `null`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use flotilla_actors::doc::le::{from_le_bytes, to_le_bytes};
use prost::Message as _;
use prost_types::value::Kind;

use super::pb::docarray::node_proto::{Content, DocarrayType};
use super::pb::docarray::{
    DenseNdArrayProto, DictOfAnyProto, DocListProto, DocProto, ListOfAnyProto, NdArrayProto,
    NodeProto,
};
use super::pb::jina::data_request_proto::DataContentProto;
use super::pb::jina::data_request_proto::data_content_proto::Documents;
use super::pb::jina::{DataRequestProto, HeaderProto, RouteProto};
use crate::actors::doc::{
    ArrayData, Dict, Doc, DocList, Name, NdArray, TAG_NDARRAY, Typed, Value, fresh_id, names,
};
use crate::actors::request::{Params, Request};

/// The parameters key under which Jina carries the results Executors returned.
pub const RESULTS_KEY: &str = "__results__";

/// The `NodeProto.type` of a document id.
const TAG_ID: &str = "id";

/// The largest array of zeros an empty buffer may expand to (1 GiB): a few bytes on the wire must
/// not be able to make us allocate without bound.
const MAX_ZEROS_BYTES: usize = 1 << 30;

/// A wire message that does not describe valid documents. Every variant names the field path
/// (`docs[3].embedding`, `docs[0].tags.l[2]` …).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CodecError {
    #[error(
        "{path}: ndarray buffer has {actual} bytes, but shape {shape:?} of dtype `{dtype}` needs {expected}"
    )]
    NdArrayLength {
        path: String,
        dtype: String,
        shape: Vec<usize>,
        expected: usize,
        actual: usize,
    },
    #[error("{path}: ndarray shape {shape:?} of dtype `{dtype}` is too large")]
    NdArrayTooLarge {
        path: String,
        dtype: String,
        shape: Vec<usize>,
    },
    #[error("{path}: ndarray with neither a buffer nor a shape")]
    NdArrayEmpty { path: String },
    #[error("{path}: a document id must be text, found {found}")]
    InvalidId { path: String, found: &'static str },
    #[error("data.docs_bytes: not a serialized DocListProto: {0}")]
    DocsBytes(prost::DecodeError),
}

// ---------------------------------------------------------------------------------------------
// Field paths, rendered only when an error is reported.

/// Where a node sits in the message: a linked list on the stack, so the happy path allocates
/// nothing for it.
#[derive(Clone, Copy)]
enum Path<'a> {
    Root(&'a str),
    Field(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root(s) => f.write_str(s),
            Path::Field(Path::Root(""), k) => f.write_str(k),
            Path::Field(p, k) => write!(f, "{p}.{k}"),
            Path::Index(p, i) => write!(f, "{p}[{i}]"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding.

/// A document as docarray's `DocProto`: `id` (typed `id`) plus one entry per field.
pub fn doc_to_proto(doc: &Doc) -> DocProto {
    let mut data = BTreeMap::new();
    data.insert(TAG_ID.to_owned(), id_node(doc.id()));
    for (k, v) in doc.fields() {
        if k != TAG_ID {
            data.insert(k.to_owned(), value_to_node(v));
        }
    }
    DocProto { data }
}

/// A document list as docarray's `DocListProto`.
pub fn docs_to_proto(docs: &DocList) -> DocListProto {
    DocListProto {
        docs: docs.iter().map(doc_to_proto).collect(),
    }
}

fn id_node(id: &str) -> NodeProto {
    NodeProto {
        content: Some(Content::Text(id.to_owned())),
        docarray_type: Some(DocarrayType::Type(TAG_ID.to_owned())),
    }
}

fn list_to_proto(items: &[Value]) -> ListOfAnyProto {
    ListOfAnyProto {
        data: items.iter().map(value_to_node).collect(),
    }
}

fn dict_to_proto(d: &Dict) -> DictOfAnyProto {
    DictOfAnyProto {
        data: d
            .iter()
            .map(|(k, v)| (k.clone(), value_to_node(v)))
            .collect(),
    }
}

/// One value as a `NodeProto` (see the module docs for the mapping).
pub fn value_to_node(v: &Value) -> NodeProto {
    let content = match v {
        Value::None => None,
        Value::Text(s) => Some(Content::Text(s.clone())),
        Value::Int(i) => Some(match i32::try_from(*i) {
            Ok(i) => Content::Integer(i),
            // Outside int32: Python cannot take it in `integer`; a double keeps the magnitude.
            Err(_) => Content::Float(*i as f64),
        }),
        Value::Float(f) => Some(Content::Float(*f)),
        Value::Bool(b) => Some(Content::Boolean(*b)),
        Value::Bytes(b) => Some(Content::Blob(b.clone())),
        Value::NdArray(a) => return ndarray_to_node(a),
        Value::Doc(d) => Some(Content::Doc(doc_to_proto(d))),
        Value::DocList(l) => Some(Content::DocArray(docs_to_proto(l))),
        Value::List(items) => Some(Content::List(list_to_proto(items))),
        Value::Set(items) => Some(Content::Set(list_to_proto(items))),
        Value::Tuple(items) => Some(Content::Tuple(list_to_proto(items))),
        Value::Dict(d) => Some(Content::Dict(dict_to_proto(d))),
        Value::Typed(t) => {
            let mut node = value_to_node(&t.value);
            node.docarray_type = Some(DocarrayType::Type(t.ty.clone()));
            return node;
        }
    };
    NodeProto {
        content,
        docarray_type: None,
    }
}

fn ndarray_to_node(a: &NdArray) -> NodeProto {
    let buffer = match &a.data {
        ArrayData::F32(v) => to_le_bytes(v),
        ArrayData::F64(v) => to_le_bytes(v),
        ArrayData::I32(v) => to_le_bytes(v),
        ArrayData::I64(v) => to_le_bytes(v),
        ArrayData::U8(v) => v.clone(),
        ArrayData::Bool(v) => v.iter().map(|&b| u8::from(b)).collect(),
        ArrayData::Raw { bytes, .. } => bytes.clone(),
    };
    let tag = if a.tag.is_empty() {
        TAG_NDARRAY
    } else {
        &a.tag
    };
    NodeProto {
        content: Some(Content::Ndarray(NdArrayProto {
            dense: Some(DenseNdArrayProto {
                buffer,
                shape: a
                    .shape
                    .iter()
                    .map(|&d| u32::try_from(d).unwrap_or(u32::MAX))
                    .collect(),
                dtype: a.data.dtype().to_owned(),
            }),
            parameters: None,
        })),
        docarray_type: Some(DocarrayType::Type(tag.to_owned())),
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding.

/// A `DocProto` as a document. Errors name the path from `doc`.
pub fn doc_from_proto(p: DocProto) -> Result<Doc, CodecError> {
    decode_doc(p, &Path::Root("doc"))
}

/// A `DocListProto` as a document list. Errors name the path from `docs` (`docs[3].embedding`).
pub fn docs_from_proto(p: DocListProto) -> Result<DocList, CodecError> {
    decode_docs(p, &Path::Root("docs"))
}

/// One `NodeProto` as a value; `path` names it in errors (`""` for none).
pub fn node_to_value(n: NodeProto, path: &str) -> Result<Value, CodecError> {
    decode_node(n, &Path::Root(path))
}

fn decode_docs(p: DocListProto, path: &Path<'_>) -> Result<DocList, CodecError> {
    let mut out = DocList::with_capacity(p.docs.len());
    for (i, d) in p.docs.into_iter().enumerate() {
        out.push(decode_doc(d, &Path::Index(path, i))?);
    }
    Ok(out)
}

fn decode_doc(p: DocProto, path: &Path<'_>) -> Result<Doc, CodecError> {
    let mut doc = Doc::with_id(String::new());
    let mut id = None;
    for (k, n) in p.data {
        if k == TAG_ID {
            id = decode_id(n, &Path::Field(path, TAG_ID))?;
        } else {
            let v = decode_node(n, &Path::Field(path, &k))?;
            doc.set(intern(k), v);
        }
    }
    doc.set_id(id.unwrap_or_else(fresh_id));
    Ok(doc)
}

fn decode_id(n: NodeProto, path: &Path<'_>) -> Result<Option<String>, CodecError> {
    match n.content {
        None => Ok(None),
        Some(Content::Text(s)) => Ok(Some(s)),
        // docarray's ID type takes ints too.
        Some(Content::Integer(i)) => Ok(Some(i.to_string())),
        Some(other) => Err(CodecError::InvalidId {
            path: path.to_string(),
            found: content_kind(&other),
        }),
    }
}

fn content_kind(c: &Content) -> &'static str {
    match c {
        Content::Text(_) => "text",
        Content::Integer(_) => "integer",
        Content::Float(_) => "float",
        Content::Boolean(_) => "boolean",
        Content::Blob(_) => "blob",
        Content::Ndarray(_) => "ndarray",
        Content::Doc(_) => "doc",
        Content::DocArray(_) => "doc_array",
        Content::List(_) => "list",
        Content::Set(_) => "set",
        Content::Tuple(_) => "tuple",
        Content::Dict(_) => "dict",
    }
}

/// A decoded field name, static when it is a common one (see `doc::names`).
fn intern(k: String) -> Name {
    names::field_owned(k)
}

/// A decoded tensor tag; docarray's empty tag is a plain ndarray.
fn intern_tag(t: String) -> Cow<'static, str> {
    if t.is_empty() {
        return Cow::Borrowed(TAG_NDARRAY);
    }
    names::tag_owned(t)
}

fn decode_list(l: ListOfAnyProto, path: &Path<'_>) -> Result<Vec<Value>, CodecError> {
    let mut out = Vec::with_capacity(l.data.len());
    for (i, n) in l.data.into_iter().enumerate() {
        out.push(decode_node(n, &Path::Index(path, i))?);
    }
    Ok(out)
}

fn decode_dict(d: DictOfAnyProto, path: &Path<'_>) -> Result<Dict, CodecError> {
    let mut out = Dict::with_capacity(d.data.len());
    for (k, n) in d.data {
        let v = decode_node(n, &Path::Field(path, &k))?;
        out.insert(k, v);
    }
    Ok(out)
}

fn decode_node(n: NodeProto, path: &Path<'_>) -> Result<Value, CodecError> {
    let ty = n.docarray_type.map(|DocarrayType::Type(t)| t);
    let value = match n.content {
        None => Value::None,
        Some(Content::Text(s)) => Value::Text(s),
        Some(Content::Integer(i)) => Value::Int(i64::from(i)),
        Some(Content::Float(f)) => Value::Float(f),
        Some(Content::Boolean(b)) => Value::Bool(b),
        Some(Content::Blob(b)) => Value::Bytes(b),
        Some(Content::Ndarray(a)) => {
            // A typeless ndarray is refused by docarray; we take it as a plain `ndarray`.
            let tag = intern_tag(ty.unwrap_or_default());
            return Ok(Value::NdArray(decode_ndarray(a, tag, path)?));
        }
        Some(Content::Doc(d)) => Value::Doc(Box::new(decode_doc(d, path)?)),
        Some(Content::DocArray(l)) => Value::DocList(decode_docs(l, path)?),
        Some(Content::List(l)) => Value::List(decode_list(l, path)?),
        Some(Content::Set(l)) => Value::Set(decode_list(l, path)?),
        Some(Content::Tuple(l)) => Value::Tuple(decode_list(l, path)?),
        Some(Content::Dict(d)) => Value::Dict(decode_dict(d, path)?),
    };
    Ok(match ty {
        Some(ty) => Value::Typed(Box::new(Typed { ty, value })),
        None => value,
    })
}

/// The element types with a native [`ArrayData`] variant.
#[derive(Clone, Copy)]
enum Elem {
    F32,
    F64,
    I32,
    I64,
    U8,
    Bool,
}

impl Elem {
    fn parse(dtype: &str) -> Option<Elem> {
        // numpy's `dtype.str` always has an explicit order (`<`, `>` or `|`); `=` and no prefix
        // mean native order, which is little-endian only on little-endian hosts.
        let native = cfg!(target_endian = "little");
        let (order, code) = match dtype.as_bytes().first() {
            Some(b'<') => ('<', &dtype[1..]),
            Some(b'>') => ('>', &dtype[1..]),
            Some(b'|') => ('|', &dtype[1..]),
            Some(b'=') => ('=', &dtype[1..]),
            _ => ('=', dtype),
        };
        let little = order == '<' || (order == '=' && native);
        match code {
            "u1" | "B" => Some(Elem::U8),
            "b1" | "?" => Some(Elem::Bool),
            "f4" | "f" if little => Some(Elem::F32),
            "f8" | "d" if little => Some(Elem::F64),
            "i4" if little => Some(Elem::I32),
            "i8" if little => Some(Elem::I64),
            _ => None,
        }
    }

    fn size(self) -> usize {
        match self {
            Elem::F32 | Elem::I32 => 4,
            Elem::F64 | Elem::I64 => 8,
            Elem::U8 | Elem::Bool => 1,
        }
    }

    fn decode(self, buffer: Vec<u8>) -> ArrayData {
        match self {
            Elem::F32 => ArrayData::F32(from_le_bytes(&buffer)),
            Elem::F64 => ArrayData::F64(from_le_bytes(&buffer)),
            Elem::I32 => ArrayData::I32(from_le_bytes(&buffer)),
            Elem::I64 => ArrayData::I64(from_le_bytes(&buffer)),
            Elem::U8 => ArrayData::U8(buffer),
            Elem::Bool => ArrayData::Bool(buffer.into_iter().map(|b| b != 0).collect()),
        }
    }
}

/// The element size of a numpy `dtype.str` we keep raw, when it can be read off the string
/// (`<f2` ⇒ 2, `<U3` ⇒ 12, `<M8[ns]` ⇒ 8); `None` for object arrays and anything unusual.
fn raw_itemsize(dtype: &str) -> Option<usize> {
    let code = dtype.strip_prefix(['<', '>', '|', '=']).unwrap_or(dtype);
    let mut chars = code.chars();
    let kind = chars.next()?;
    let rest = chars.as_str();
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let (digits, tail) = rest.split_at(end);
    let n: usize = digits.parse().ok()?;
    let unit_ok = tail.is_empty() || (matches!(kind, 'M' | 'm') && tail.starts_with('['));
    match kind {
        'b' | 'i' | 'u' | 'f' | 'c' | 'S' | 'a' | 'V' | 'M' | 'm' if unit_ok => Some(n),
        'U' if tail.is_empty() => n.checked_mul(4),
        _ => None,
    }
}

fn decode_ndarray(
    a: NdArrayProto,
    tag: Cow<'static, str>,
    path: &Path<'_>,
) -> Result<NdArray, CodecError> {
    let DenseNdArrayProto {
        buffer,
        shape,
        dtype,
    } = a.dense.unwrap_or_default();
    if buffer.is_empty() && shape.is_empty() {
        return Err(CodecError::NdArrayEmpty {
            path: path.to_string(),
        });
    }
    let shape: Vec<usize> = shape.into_iter().map(|d| d as usize).collect();
    let too_large = |dtype: &str, shape: &[usize]| CodecError::NdArrayTooLarge {
        path: path.to_string(),
        dtype: dtype.to_owned(),
        shape: shape.to_vec(),
    };
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| too_large(&dtype, &shape))?;
    let elem = Elem::parse(&dtype);
    let itemsize = match elem {
        Some(e) => Some(e.size()),
        None => raw_itemsize(&dtype),
    };
    let mut buffer = buffer;
    if let Some(itemsize) = itemsize {
        let expected = count
            .checked_mul(itemsize)
            .ok_or_else(|| too_large(&dtype, &shape))?;
        if buffer.is_empty() && expected > 0 {
            // docarray: an empty buffer with a shape means zeros.
            if expected > MAX_ZEROS_BYTES {
                return Err(too_large(&dtype, &shape));
            }
            buffer = vec![0u8; expected];
        } else if buffer.len() != expected {
            return Err(CodecError::NdArrayLength {
                path: path.to_string(),
                dtype,
                shape,
                expected,
                actual: buffer.len(),
            });
        }
    }
    let data = match elem {
        Some(e) => e.decode(buffer),
        None => ArrayData::Raw {
            dtype,
            bytes: buffer,
        },
    };
    Ok(NdArray { shape, data, tag })
}

// ---------------------------------------------------------------------------------------------
// Parameters.

/// JSON parameters as a `google.protobuf.Struct` (every number becomes a double).
pub fn params_to_struct(p: &Params) -> prost_types::Struct {
    prost_types::Struct {
        fields: p
            .iter()
            .map(|(k, v)| (k.clone(), json_to_proto(v)))
            .collect(),
    }
}

/// A `google.protobuf.Struct` as JSON parameters. Numbers stay doubles (`1` comes back as
/// `1.0`, as in Jina); non-finite numbers and unset values become `null`.
pub fn struct_to_params(s: prost_types::Struct) -> Params {
    s.fields
        .into_iter()
        .map(|(k, v)| (k, proto_to_json(v)))
        .collect()
}

fn json_to_proto(v: &serde_json::Value) -> prost_types::Value {
    use serde_json::Value as J;
    let kind = match v {
        J::Null => Kind::NullValue(0),
        J::Bool(b) => Kind::BoolValue(*b),
        J::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        J::String(s) => Kind::StringValue(s.clone()),
        J::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.iter().map(json_to_proto).collect(),
        }),
        J::Object(o) => Kind::StructValue(params_to_struct(o)),
    };
    prost_types::Value { kind: Some(kind) }
}

fn proto_to_json(v: prost_types::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v.kind {
        None | Some(Kind::NullValue(_)) => J::Null,
        Some(Kind::BoolValue(b)) => J::Bool(b),
        Some(Kind::NumberValue(f)) => serde_json::Number::from_f64(f).map_or(J::Null, J::Number),
        Some(Kind::StringValue(s)) => J::String(s),
        Some(Kind::ListValue(l)) => J::Array(l.values.into_iter().map(proto_to_json).collect()),
        Some(Kind::StructValue(s)) => J::Object(struct_to_params(s)),
    }
}

// ---------------------------------------------------------------------------------------------
// Requests.

/// A request as Jina's `DataRequestProto`: `header.request_id` = id, `header.exec_endpoint` =
/// endpoint (unset when empty), `parameters` = the parameters plus `__results__` when there are
/// results (no `parameters` field at all when both are empty), one `RouteProto{executor}` per
/// route, and the docs in `data.docs`. `docs_matrix` does not travel.
pub fn request_to_proto(r: &Request) -> DataRequestProto {
    let parameters = if r.parameters.is_empty() && r.results.is_empty() {
        None
    } else {
        let mut s = params_to_struct(&r.parameters);
        if !r.results.is_empty() {
            s.fields.insert(
                RESULTS_KEY.to_owned(),
                prost_types::Value {
                    kind: Some(Kind::StructValue(params_to_struct(&r.results))),
                },
            );
        }
        Some(s)
    };
    DataRequestProto {
        header: Some(HeaderProto {
            request_id: r.id.clone(),
            exec_endpoint: (!r.endpoint.is_empty()).then(|| r.endpoint.to_string()),
            ..HeaderProto::default()
        }),
        parameters,
        routes: r
            .routes
            .iter()
            .map(|e| RouteProto {
                executor: e.to_string(),
                ..RouteProto::default()
            })
            .collect(),
        data: Some(DataContentProto {
            documents: Some(Documents::Docs(docs_to_proto(&r.docs))),
        }),
    }
}

/// A `DataRequestProto` as a request. Reads `data.docs` or `data.docs_bytes` (a serialized
/// `DocListProto`); no data means no docs; an empty `request_id` gets a fresh id; an unset
/// endpoint is `""`; a `__results__` object is moved out of the parameters into
/// [`Request::results`].
pub fn request_from_proto(p: DataRequestProto) -> Result<Request, CodecError> {
    let DataRequestProto {
        header,
        parameters,
        routes,
        data,
    } = p;
    let header = header.unwrap_or_default();
    let id = if header.request_id.is_empty() {
        fresh_id()
    } else {
        header.request_id
    };
    let endpoint: Arc<str> = header.exec_endpoint.unwrap_or_default().into();
    let target_executor = header
        .target_executor
        .filter(|t| !t.is_empty())
        .map(Arc::from);
    let mut results = Params::new();
    let params = match parameters {
        None => Params::new(),
        Some(mut s) => {
            if let Some(v) = s.fields.remove(RESULTS_KEY) {
                match v.kind {
                    Some(Kind::StructValue(r)) => results = struct_to_params(r),
                    // Not an object: not ours to interpret, keep it where it was.
                    kind => {
                        s.fields
                            .insert(RESULTS_KEY.to_owned(), prost_types::Value { kind });
                    }
                }
            }
            struct_to_params(s)
        }
    };
    let root = Path::Root("docs");
    let docs = match data.and_then(|d| d.documents) {
        None => DocList::new(),
        Some(Documents::Docs(l)) => decode_docs(l, &root)?,
        Some(Documents::DocsBytes(b)) => {
            let l = DocListProto::decode(b.as_slice()).map_err(CodecError::DocsBytes)?;
            decode_docs(l, &root)?
        }
    };
    Ok(Request {
        id,
        endpoint,
        parameters: Arc::new(params),
        docs,
        docs_matrix: Vec::new(),
        results,
        routes: routes.into_iter().map(|r| Arc::from(r.executor)).collect(),
        target_executor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::doc::TAG_EMBEDDING;
    use serde_json::json;

    const GOLDEN_PYTHON: &str = concat!(
        "0a0a0a0272311a042f666f6f12130a110a0b5f5f726573756c74735f5f12022a0022460a440a420a0a0a0662797465735f1200",
        "0a0d0a09656d62656464696e6712000a0e0a02696412080a0264316a0269640a0c0a047465787412040a0268690a070a0375726c1200",
    );
    const GOLDEN_MINIMAL: &str = "0a0a0a0272311a042f666f6f22220a200a1e0a0e0a02696412080a0264316a0269640a0c0a047465787412040a026869";

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn decode_request(bytes: &[u8]) -> DataRequestProto {
        DataRequestProto::decode(bytes).expect("valid DataRequestProto")
    }

    fn round_trip(doc: &Doc) -> Doc {
        let bytes = doc_to_proto(doc).encode_to_vec();
        doc_from_proto(DocProto::decode(bytes.as_slice()).unwrap()).unwrap()
    }

    fn round_trip_value(v: &Value) -> Value {
        let bytes = value_to_node(v).encode_to_vec();
        node_to_value(NodeProto::decode(bytes.as_slice()).unwrap(), "v").unwrap()
    }

    fn params(v: serde_json::Value) -> Params {
        match v {
            serde_json::Value::Object(o) => o,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn golden_python_request_decodes() {
        let bytes = unhex(GOLDEN_PYTHON);
        assert_eq!(bytes.len(), 105);
        let r = request_from_proto(decode_request(&bytes)).unwrap();
        assert_eq!(r.id, "r1");
        assert_eq!(&*r.endpoint, "/foo");
        assert!(r.parameters.is_empty(), "{:?}", r.parameters);
        assert!(r.results.is_empty());
        assert!(r.routes.is_empty());
        assert_eq!(r.docs.len(), 1);
        let d = &r.docs[0];
        assert_eq!(d.id(), "d1");
        assert_eq!(d.text(), Some("hi"));
        for none in ["bytes_", "embedding", "url"] {
            assert_eq!(d.get(none), Some(&Value::None), "{none}");
        }
        let names: Vec<&str> = d.fields().map(|(k, _)| k).collect();
        assert_eq!(names, ["bytes_", "embedding", "text", "url"]);
    }

    #[test]
    fn golden_minimal_request_decodes() {
        let bytes = unhex(GOLDEN_MINIMAL);
        assert_eq!(bytes.len(), 48);
        let r = request_from_proto(decode_request(&bytes)).unwrap();
        assert_eq!((r.id.as_str(), &*r.endpoint), ("r1", "/foo"));
        assert!(r.parameters.is_empty() && r.results.is_empty());
        assert_eq!(r.docs.len(), 1);
        assert_eq!(r.docs[0].id(), "d1");
        assert_eq!(r.docs[0].text(), Some("hi"));
        assert_eq!(r.docs[0].fields().count(), 1);
    }

    #[test]
    fn our_minimal_request_is_byte_identical_to_the_golden_vector() {
        let golden = unhex(GOLDEN_MINIMAL);
        let built = Request {
            id: "r1".into(),
            endpoint: "/foo".into(),
            docs: Doc::with_id("d1").with_text("hi").into(),
            ..Request::default()
        };
        assert_eq!(request_to_proto(&built).encode_to_vec(), golden);
        // And decode → encode reproduces it too.
        let decoded = request_from_proto(decode_request(&golden)).unwrap();
        let again = request_to_proto(&decoded).encode_to_vec();
        assert_eq!(again, golden);
        assert_eq!(decode_request(&again), decode_request(&golden));
    }

    #[test]
    fn golden_python_request_reencodes_to_the_same_message() {
        let golden = decode_request(&unhex(GOLDEN_PYTHON));
        let ours = request_to_proto(&request_from_proto(golden.clone()).unwrap()).encode_to_vec();
        // Ours leaves out `parameters {"__results__": {}}` (21 bytes), and prost writes a map
        // entry whose value is the default message (a None field) without the value (`12 00`,
        // 2 bytes × 3 None fields), which protobuf decodes as the default: the same message.
        assert_eq!(ours.len(), 105 - 21 - 3 * 2);
        let expected = DataRequestProto {
            parameters: None,
            ..golden.clone()
        };
        assert_eq!(decode_request(&ours), expected);
        let mut expected_bytes = unhex(GOLDEN_PYTHON);
        expected_bytes.drain(12..33);
        assert_eq!(decode_request(&expected_bytes), decode_request(&ours));
        // And it decodes to the same request.
        let a = request_from_proto(decode_request(&ours)).unwrap();
        let b = request_from_proto(golden).unwrap();
        assert_eq!((a.id, a.endpoint, a.docs), (b.id, b.endpoint, b.docs));
    }

    #[test]
    fn request_fields_round_trip() {
        let mut results = Params::new();
        results.insert("exec/rep-0".into(), json!({"n": 3, "ok": true}));
        let r = Request {
            id: "abc".into(),
            endpoint: "/index".into(),
            parameters: Arc::new(params(
                json!({"k": 1, "s": "x", "l": [1, null, {"a": false}]}),
            )),
            docs: vec![Doc::with_id("a").with_text("x"), Doc::with_id("b")].into(),
            results,
            routes: vec!["gateway".into(), "exec".into()],
            ..Request::default()
        };
        let p = request_to_proto(&r);
        assert_eq!(p.routes.len(), 2);
        assert_eq!(p.routes[1].executor, "exec");
        assert!(
            p.parameters
                .as_ref()
                .unwrap()
                .fields
                .contains_key(RESULTS_KEY)
        );
        let back = request_from_proto(decode_request(&p.encode_to_vec())).unwrap();
        assert_eq!(back.id, "abc");
        assert_eq!(&*back.endpoint, "/index");
        assert_eq!(back.docs, r.docs);
        assert_eq!(back.routes, r.routes);
        // Numbers come back as doubles, as in Jina.
        assert_eq!(
            *back.parameters,
            params(json!({"k": 1.0, "s": "x", "l": [1.0, null, {"a": false}]}))
        );
        assert_eq!(
            back.results,
            params(json!({"exec/rep-0": {"n": 3.0, "ok": true}}))
        );
        assert!(!back.parameters.contains_key(RESULTS_KEY));
    }

    #[test]
    fn request_defaults_and_docs_bytes() {
        // No header, no data: fresh id, empty endpoint, no docs.
        let r = request_from_proto(DataRequestProto::default()).unwrap();
        assert_eq!(r.id.len(), 32);
        assert_eq!(&*r.endpoint, "");
        assert!(r.docs.is_empty());
        // docs_bytes holds a serialized DocListProto.
        let docs: DocList = vec![Doc::with_id("x").with_text("t")].into();
        let p = DataRequestProto {
            data: Some(DataContentProto {
                documents: Some(Documents::DocsBytes(docs_to_proto(&docs).encode_to_vec())),
            }),
            ..DataRequestProto::default()
        };
        assert_eq!(request_from_proto(p).unwrap().docs, docs);
        let bad = DataRequestProto {
            data: Some(DataContentProto {
                documents: Some(Documents::DocsBytes(vec![0x0a, 0x05, 0x01])),
            }),
            ..DataRequestProto::default()
        };
        let e = request_from_proto(bad).unwrap_err();
        assert!(e.to_string().starts_with("data.docs_bytes: "), "{e}");
        // A non-object `__results__` is left in the parameters.
        let p = DataRequestProto {
            parameters: Some(params_to_struct(&params(json!({"__results__": "odd"})))),
            ..DataRequestProto::default()
        };
        let r = request_from_proto(p).unwrap();
        assert!(r.results.is_empty());
        assert_eq!(r.parameters.get(RESULTS_KEY), Some(&json!("odd")));
    }

    #[test]
    fn every_scalar_kind_round_trips() {
        let values = [
            Value::None,
            Value::Text(String::new()),
            Value::Text("héllo".into()),
            Value::Int(0),
            Value::Int(-7),
            Value::Int(i64::from(i32::MAX)),
            Value::Int(i64::from(i32::MIN)),
            Value::Float(2.5),
            Value::Float(-0.0),
            Value::Bool(true),
            Value::Bool(false),
            Value::Bytes(vec![0, 1, 255]),
            Value::Bytes(Vec::new()),
        ];
        for v in &values {
            assert_eq!(&round_trip_value(v), v);
        }
    }

    #[test]
    fn ints_outside_int32_travel_as_floats() {
        let big = i64::from(i32::MAX) + 1;
        let n = value_to_node(&Value::Int(big));
        assert_eq!(n.content, Some(Content::Float(big as f64)));
        assert_eq!(
            round_trip_value(&Value::Int(big)),
            Value::Float(2_147_483_648.0)
        );
        assert_eq!(
            round_trip_value(&Value::Int(-(1 << 40))),
            Value::Float(-(2f64.powi(40)))
        );
    }

    fn arrays() -> Vec<NdArray> {
        vec![
            NdArray::from_f32_shaped(vec![1.0, -2.5, 3.0, 4.0, 5.0, f32::MAX], vec![2, 3]).unwrap(),
            NdArray::from_f32((0..128).map(|i| i as f32 / 7.0).collect()).tagged(TAG_EMBEDDING),
            NdArray::from_f64(vec![0.1, 0.2, f64::MIN_POSITIVE, -1e300]),
            NdArray {
                shape: vec![2, 2],
                data: ArrayData::I32(vec![1, -2, i32::MAX, i32::MIN]),
                tag: "ndarray".into(),
            },
            NdArray {
                shape: vec![3],
                data: ArrayData::I64(vec![i64::MIN, 0, i64::MAX]),
                tag: "torch_tensor".into(),
            },
            NdArray {
                shape: vec![5],
                data: ArrayData::U8(vec![0, 1, 2, 128, 255]),
                tag: "image_ndarray".into(),
            },
            NdArray {
                shape: vec![1, 3],
                data: ArrayData::Bool(vec![true, false, true]),
                tag: "ndarray".into(),
            },
            NdArray {
                shape: vec![3],
                data: ArrayData::Raw {
                    dtype: "<f2".into(),
                    bytes: vec![0, 60, 0, 64, 0, 0],
                },
                tag: "ndarray".into(),
            },
            NdArray {
                shape: vec![2],
                data: ArrayData::Raw {
                    dtype: ">i4".into(),
                    bytes: vec![0, 0, 0, 1, 0, 0, 0, 2],
                },
                tag: "ndarray".into(),
            },
            NdArray {
                shape: vec![1],
                data: ArrayData::Raw {
                    dtype: "<U2".into(),
                    bytes: vec![b'a', 0, 0, 0, b'b', 0, 0, 0],
                },
                tag: "ndarray".into(),
            },
            NdArray {
                shape: vec![2],
                data: ArrayData::Raw {
                    dtype: "|O".into(),
                    bytes: vec![1, 2, 3],
                },
                tag: "ndarray".into(),
            },
            // Zero-size and 0-d arrays.
            NdArray::from_f32_shaped(Vec::new(), vec![0, 128]).unwrap(),
            NdArray {
                shape: Vec::new(),
                data: ArrayData::F64(vec![42.0]),
                tag: "ndarray".into(),
            },
        ]
    }

    #[test]
    fn arrays_round_trip_with_dtype_shape_and_tag() {
        for a in arrays() {
            let n = value_to_node(&Value::NdArray(a.clone()));
            let Some(Content::Ndarray(p)) = &n.content else {
                panic!()
            };
            let dense = p.dense.as_ref().unwrap();
            assert_eq!(dense.dtype, a.data.dtype());
            assert_eq!(dense.shape.len(), a.shape.len());
            assert_eq!(n.docarray_type, Some(DocarrayType::Type(a.tag.to_string())));
            assert_eq!(
                round_trip_value(&Value::NdArray(a.clone())),
                Value::NdArray(a)
            );
        }
    }

    #[test]
    fn f32_buffers_are_little_endian_c_order() {
        let a = NdArray::from_f32(vec![1.0, 2.0]);
        let Some(Content::Ndarray(p)) = value_to_node(&Value::NdArray(a)).content else {
            panic!()
        };
        let d = p.dense.unwrap();
        assert_eq!(d.buffer, [0, 0, 0x80, 0x3f, 0, 0, 0, 0x40]);
        assert_eq!(d.shape, [2]);
        assert_eq!(d.dtype, "<f4");
    }

    fn ndarray_node(buffer: Vec<u8>, shape: Vec<u32>, dtype: &str, ty: Option<&str>) -> NodeProto {
        NodeProto {
            content: Some(Content::Ndarray(NdArrayProto {
                dense: Some(DenseNdArrayProto {
                    buffer,
                    shape,
                    dtype: dtype.into(),
                }),
                parameters: None,
            })),
            docarray_type: ty.map(|t| DocarrayType::Type(t.into())),
        }
    }

    #[test]
    fn lenient_array_input() {
        // No type tag: accepted as `ndarray`, and re-emitted with one.
        let v = node_to_value(
            ndarray_node(vec![0, 0, 0x80, 0x3f], vec![1], "<f4", None),
            "x",
        )
        .unwrap();
        let a = v.as_ndarray().unwrap();
        assert_eq!(a.tag, TAG_NDARRAY);
        assert_eq!(a.as_f32(), Some(&[1.0f32][..]));
        assert_eq!(
            value_to_node(&v).docarray_type,
            Some(DocarrayType::Type("ndarray".into()))
        );
        // Native-order spellings.
        for dt in ["=f4", "f4"] {
            let v = node_to_value(ndarray_node(vec![0, 0, 0x80, 0x3f], vec![1], dt, None), "x")
                .unwrap();
            assert_eq!(
                v.as_ndarray().unwrap().as_f32(),
                Some(&[1.0f32][..]),
                "{dt}"
            );
        }
        let v = node_to_value(ndarray_node(vec![7], vec![1], "<u1", None), "x").unwrap();
        assert_eq!(v.as_ndarray().unwrap().data, ArrayData::U8(vec![7]));
        // An empty buffer with a shape means zeros (in the declared dtype).
        let v = node_to_value(
            ndarray_node(Vec::new(), vec![2, 3], "<f4", Some("ndarray")),
            "x",
        )
        .unwrap();
        let a = v.as_ndarray().unwrap();
        assert_eq!(a.shape, [2, 3]);
        assert_eq!(a.as_f32(), Some(&[0.0f32; 6][..]));
        let v = node_to_value(ndarray_node(Vec::new(), vec![2], "<f2", None), "x").unwrap();
        assert_eq!(
            v.as_ndarray().unwrap().data,
            ArrayData::Raw {
                dtype: "<f2".into(),
                bytes: vec![0; 4]
            }
        );
        // An empty tag encodes as `ndarray`.
        let a = NdArray::from_f32(vec![1.0]).tagged("");
        assert_eq!(
            value_to_node(&Value::NdArray(a)).docarray_type,
            Some(DocarrayType::Type("ndarray".into()))
        );
    }

    #[test]
    fn nested_docs_matches_scores_tags_and_typed_values_round_trip() {
        // Fields in alphabetical order: that is the order decoding gives back.
        let mut tags = Dict::new();
        tags.insert("i".into(), Value::Int(0));
        tags.insert("param".into(), Value::from("x"));
        tags.insert("seen".into(), Value::Bool(true));
        tags.insert(
            "l".into(),
            Value::from(vec![Value::Int(1), Value::from("x"), Value::None]),
        );
        let mut nested = Dict::new();
        nested.insert("a".into(), Value::None);
        nested.insert("f".into(), Value::Float(1.5));
        tags.insert("nested".into(), Value::Dict(nested));
        tags.insert("empty".into(), Value::Dict(Dict::new()));

        let m0 = Doc::with_id("m-d0")
            .with("bytes_", Value::None)
            .with_embedding(NdArray::from_f32(vec![0.5; 4]))
            .with_score("cosine", 0.25)
            .with_text("match");
        let m1 = Doc::with_id("m-d1")
            .with_score("cosine", 0.125)
            .with_score("l2", 3.0);
        let doc = Doc::with_id("d0")
            .with("blob", Value::Bytes(b"\x00raw".to_vec()))
            .with("chunks", Value::DocList(DocList::new()))
            .with_embedding(NdArray::from_f32((0..128).map(|i| i as f32).collect()))
            .with(
                "image",
                Value::Typed(Box::new(Typed {
                    ty: "image_bytes".into(),
                    value: Value::Bytes(vec![1, 2, 3]),
                })),
            )
            .with("matches", Value::DocList(vec![m0, m1].into()))
            .with("missing", Value::None)
            .with("n", Value::Int(-3))
            .with(
                "parent",
                Value::Doc(Box::new(Doc::with_id("p").with_text("up"))),
            )
            .with("set", Value::Set(vec![Value::Int(1), Value::Int(2)]))
            .with("tags", Value::Dict(tags))
            .with("tensor", NdArray::from_f64(vec![1.0, 2.0]))
            .with_text("t0")
            .with(
                "tuple",
                Value::Tuple(vec![
                    Value::from("a"),
                    Value::Float(1.0),
                    Value::Bool(false),
                ]),
            )
            .with(
                "untyped_none",
                Value::Typed(Box::new(Typed {
                    ty: "image_url".into(),
                    value: Value::None,
                })),
            )
            .with(
                "url",
                Value::Typed(Box::new(Typed {
                    ty: "image_url".into(),
                    value: Value::from("https://x/y.png"),
                })),
            );
        let back = round_trip(&doc);
        assert_eq!(back, doc);
        assert_eq!(back.matches().unwrap()[1].score("l2"), Some(3.0));
        assert_eq!(back.embedding().unwrap().tag, TAG_EMBEDDING);
        // Interned names are static.
        let (name, _) = back.fields().find(|(k, _)| *k == "embedding").unwrap();
        assert_eq!(name, "embedding");

        // The doc list as a whole, and via docs_to_proto / docs_from_proto.
        let list: DocList = vec![doc.clone(), Doc::with_id("other")].into();
        let bytes = docs_to_proto(&list).encode_to_vec();
        assert_eq!(
            docs_from_proto(DocListProto::decode(bytes.as_slice()).unwrap()).unwrap(),
            list
        );
    }

    #[test]
    fn id_and_field_order_rules() {
        // The id goes out typed, fields sorted by name.
        let d = Doc::with_id("z").with_text("b").with("a", Value::Int(1));
        let p = doc_to_proto(&d);
        assert_eq!(p.data["id"], id_node("z"));
        assert_eq!(p.data.keys().collect::<Vec<_>>(), ["a", "id", "text"]);
        let back = doc_from_proto(p).unwrap();
        assert_eq!(
            back.fields().map(|(k, _)| k).collect::<Vec<_>>(),
            ["a", "text"]
        );
        assert_eq!(back.get("a"), d.get("a"));
        // A field named `id` never shadows the doc id.
        let d = Doc::with_id("real").with("id", "fake");
        assert_eq!(round_trip(&d).id(), "real");
        // An empty id (a NamedScore) stays empty; no id or a None id gets a fresh one.
        assert_eq!(round_trip(&Doc::with_id("")).id(), "");
        let fresh = doc_from_proto(DocProto::default()).unwrap();
        assert_eq!(fresh.id().len(), 32);
        let mut p = DocProto::default();
        p.data.insert("id".into(), NodeProto::default());
        assert_eq!(doc_from_proto(p).unwrap().id().len(), 32);
        // An id without the `id` type, or an int id, is accepted.
        let mut p = DocProto::default();
        p.data
            .insert("id".into(), value_to_node(&Value::from("plain")));
        assert_eq!(doc_from_proto(p).unwrap().id(), "plain");
        let mut p = DocProto::default();
        p.data.insert("id".into(), value_to_node(&Value::Int(12)));
        assert_eq!(doc_from_proto(p).unwrap().id(), "12");
        // Anything else is an error naming the path.
        let mut p = DocProto::default();
        p.data
            .insert("id".into(), value_to_node(&Value::Bool(true)));
        let e = doc_from_proto(p).unwrap_err();
        assert_eq!(
            e.to_string(),
            "doc.id: a document id must be text, found boolean"
        );
    }

    fn request_with_doc_field(i: usize, field: &str, node: NodeProto) -> DataRequestProto {
        let mut docs: Vec<DocProto> = (0..=i)
            .map(|k| doc_to_proto(&Doc::with_id(format!("d{k}"))))
            .collect();
        docs[i].data.insert(field.into(), node);
        DataRequestProto {
            data: Some(DataContentProto {
                documents: Some(Documents::Docs(DocListProto { docs })),
            }),
            ..DataRequestProto::default()
        }
    }

    #[test]
    fn malformed_arrays_are_errors_naming_the_path() {
        let node = ndarray_node(vec![0; 10], vec![3], "<f4", Some("ndarray"));
        let e = request_from_proto(request_with_doc_field(3, "embedding", node)).unwrap_err();
        assert_eq!(
            e,
            CodecError::NdArrayLength {
                path: "docs[3].embedding".into(),
                dtype: "<f4".into(),
                shape: vec![3],
                expected: 12,
                actual: 10,
            }
        );
        assert_eq!(
            e.to_string(),
            "docs[3].embedding: ndarray buffer has 10 bytes, but shape [3] of dtype `<f4` needs 12"
        );

        // Deep inside matches, tags and lists.
        let bad = ndarray_node(vec![1, 2, 3], vec![2], "<f2", None);
        let mut m = doc_to_proto(&Doc::with_id("m"));
        let mut inner = DictOfAnyProto::default();
        inner.data.insert(
            "l".into(),
            NodeProto {
                content: Some(Content::List(ListOfAnyProto {
                    data: vec![NodeProto::default(), bad],
                })),
                docarray_type: None,
            },
        );
        m.data.insert(
            "tags".into(),
            NodeProto {
                content: Some(Content::Dict(inner)),
                docarray_type: None,
            },
        );
        let matches = NodeProto {
            content: Some(Content::DocArray(DocListProto {
                docs: vec![doc_to_proto(&Doc::with_id("m0")), m],
            })),
            docarray_type: None,
        };
        let e = request_from_proto(request_with_doc_field(0, "matches", matches)).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("docs[0].matches[1].tags.l[1]: ndarray buffer has 3 bytes"),
            "{e}"
        );

        // No buffer and no shape; a shape too large to hold.
        let e = node_to_value(ndarray_node(Vec::new(), Vec::new(), "<f4", None), "t").unwrap_err();
        assert_eq!(
            e.to_string(),
            "t: ndarray with neither a buffer nor a shape"
        );
        let huge = ndarray_node(Vec::new(), vec![u32::MAX, u32::MAX, u32::MAX], "<f8", None);
        assert!(matches!(
            node_to_value(huge, "t"),
            Err(CodecError::NdArrayTooLarge { .. })
        ));
        let huge = ndarray_node(Vec::new(), vec![1 << 20, 1 << 20], "<f8", None);
        assert!(matches!(
            node_to_value(huge, "t"),
            Err(CodecError::NdArrayTooLarge { .. })
        ));
        // A raw dtype whose itemsize is unknown is not checked.
        let v = node_to_value(ndarray_node(vec![1, 2, 3], vec![7], "|O", None), "t").unwrap();
        assert!(matches!(
            v.as_ndarray().unwrap().data,
            ArrayData::Raw { .. }
        ));
    }

    #[test]
    fn raw_itemsizes() {
        assert_eq!(raw_itemsize("<f2"), Some(2));
        assert_eq!(raw_itemsize(">c16"), Some(16));
        assert_eq!(raw_itemsize("<U3"), Some(12));
        assert_eq!(raw_itemsize("|S5"), Some(5));
        assert_eq!(raw_itemsize("<M8[ns]"), Some(8));
        assert_eq!(raw_itemsize("|O"), None);
        assert_eq!(raw_itemsize(""), None);
        assert_eq!(raw_itemsize("<f2x"), None);
    }

    #[test]
    fn params_struct_conversion() {
        let p = params(json!({"a": 1, "b": [true, "s", null], "c": {"d": -2.5}, "big": u64::MAX}));
        let s = params_to_struct(&p);
        assert_eq!(s.fields["a"].kind, Some(Kind::NumberValue(1.0)));
        let back = struct_to_params(s);
        assert_eq!(
            back,
            params(
                json!({"a": 1.0, "b": [true, "s", null], "c": {"d": -2.5}, "big": u64::MAX as f64})
            )
        );
        assert!(back["a"].is_f64());
        let mut s = prost_types::Struct::default();
        s.fields.insert(
            "nan".into(),
            prost_types::Value {
                kind: Some(Kind::NumberValue(f64::NAN)),
            },
        );
        s.fields
            .insert("unset".into(), prost_types::Value { kind: None });
        assert_eq!(
            struct_to_params(s),
            params(json!({"nan": null, "unset": null}))
        );
    }
}
