//! Endpoint schemas in the shape Jina's gateway rebuilds document classes from
//! (`EndpointsProto.schemas`, jina-protocol.md §3.5).
//!
//! flotilla's Executors are untyped, so every endpoint declares Jina's own untyped document,
//! `LegacyDocumentJina`, with the exact JSON schema Jina 3.34 emits for it: a Python gateway
//! recognises that schema by equality and uses its own class, the most robust path.

use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value};

/// `LegacyDocumentJina.schema()` as Jina 3.34.0 with docarray 0.41.0 produces it.
const LEGACY_DOCUMENT_SCHEMA: &str = include_str!("legacy_document_schema.json");

/// The document class name every endpoint declares.
pub const LEGACY_DOCUMENT: &str = "LegacyDocumentJina";

fn json_to_value(v: &serde_json::Value) -> Value {
    let kind = match v {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(a) => Kind::ListValue(ListValue {
            values: a.iter().map(json_to_value).collect(),
        }),
        serde_json::Value::Object(o) => Kind::StructValue(Struct {
            fields: o
                .iter()
                .map(|(k, v)| (k.clone(), json_to_value(v)))
                .collect(),
        }),
    };
    Value { kind: Some(kind) }
}

fn legacy_model() -> serde_json::Value {
    serde_json::from_str(LEGACY_DOCUMENT_SCHEMA).unwrap_or(serde_json::Value::Null)
}

/// Schemas as an Executor's `endpoint_discovery` returns them: per endpoint
/// `{input: {name, model}, output: {name, model}, parameters: {name, model}, is_generator,
/// is_singleton_doc}`.
pub fn executor_schemas<'a>(endpoints: impl IntoIterator<Item = &'a str>) -> Struct {
    let model = legacy_model();
    let doc = serde_json::json!({ "name": LEGACY_DOCUMENT, "model": model });
    let per = serde_json::json!({
        "input": doc,
        "output": doc,
        "parameters": { "name": null, "model": null },
        "is_generator": false,
        "is_singleton_doc": false,
    });
    per_endpoint(endpoints, &per)
}

/// Schemas as a gateway's `endpoint_discovery` returns them: per endpoint
/// `{input: <schema>, output: <schema>, is_generator, is_singleton_doc}`.
pub fn gateway_schemas<'a>(endpoints: impl IntoIterator<Item = &'a str>) -> Struct {
    let model = legacy_model();
    let per = serde_json::json!({
        "input": model,
        "output": model,
        "is_generator": false,
        "is_singleton_doc": false,
    });
    per_endpoint(endpoints, &per)
}

/// `{endpoint: per, …}` as a protobuf `Struct`.
fn per_endpoint<'a>(
    endpoints: impl IntoIterator<Item = &'a str>,
    per: &serde_json::Value,
) -> Struct {
    let map: serde_json::Map<String, serde_json::Value> = endpoints
        .into_iter()
        .map(|e| (e.to_owned(), per.clone()))
        .collect();
    match json_to_value(&serde_json::Value::Object(map)).kind {
        Some(Kind::StructValue(s)) => s,
        _ => Struct::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_schema_is_jinas_legacy_document() {
        let m = legacy_model();
        assert_eq!(m["$ref"], "#/$defs/LegacyDocumentJina");
        let props = &m["$defs"]["LegacyDocumentJina"]["properties"];
        for key in [
            "id",
            "tensor",
            "chunks",
            "matches",
            "blob",
            "text",
            "url",
            "embedding",
            "tags",
            "scores",
        ] {
            assert!(props.get(key).is_some(), "{key}");
        }
        assert_eq!(
            props["embedding"]["anyOf"][0]["tensor/array shape"],
            "not specified"
        );
    }

    #[test]
    fn executor_schemas_have_jinas_shape() {
        let s = executor_schemas(["/index", "_jina_dry_run_"]);
        let ep = match &s.fields["/index"].kind {
            Some(Kind::StructValue(v)) => v,
            other => panic!("{other:?}"),
        };
        for key in [
            "input",
            "output",
            "parameters",
            "is_generator",
            "is_singleton_doc",
        ] {
            assert!(ep.fields.contains_key(key), "{key}");
        }
    }
}
