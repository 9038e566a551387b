//! Bad input against an in-process gRPC gateway: each is answered with a proper gRPC status or a
//! Jina error header, and the server keeps serving afterwards (a good request follows each, on a
//! fresh connection).
//!
//! Raw bytes go out through tonic's `Grpc` client with a bytes codec; frames that tonic would
//! never produce (a truncated length prefix, a compressed flag without an encoding) go out as a
//! raw HTTP/2 request body through a tonic `Channel`.

mod common;

use std::sync::Arc;

use common::within;
use flotilla::actors::executor::factory;
use flotilla::grpc::codec::{request_from_proto, request_to_proto};
use flotilla::grpc::pb::docarray::node_proto::{Content, DocarrayType};
use flotilla::grpc::pb::docarray::{
    DenseNdArrayProto, DocListProto, DocProto, NdArrayProto, NodeProto,
};
use flotilla::grpc::pb::jina::data_request_proto::DataContentProto;
use flotilla::grpc::pb::jina::data_request_proto::data_content_proto::Documents;
use flotilla::grpc::pb::jina::jina_rpc_client::JinaRpcClient;
use flotilla::grpc::pb::jina::jina_single_data_request_rpc_client::JinaSingleDataRequestRpcClient;
use flotilla::grpc::pb::jina::{DataRequestProto, HeaderProto};
use flotilla::grpc::server::{ServeOptions, Server};
use flotilla::grpc::service::Role;
use flotilla::{Context, Doc, DocList, Exec, Executor, Flow, NdArray, Request, Requests, Value};
use prost::Message as _;
use prost::bytes::{Buf, BufMut};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder, Streaming};
use tonic::codegen::Service as _;
use tonic::codegen::http::{self, uri::PathAndQuery};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tonic_prost::ProstDecoder;

// ---------------------------------------------------------------------------------------------
// The server.

/// Uppercases text on `/upper`; every other endpoint passes through it (Jina skips an Executor
/// that has neither the endpoint nor a default handler).
struct Upper;

impl Executor for Upper {
    fn requests(r: &mut Requests<Self>) {
        r.on("/upper", |_: &mut Upper, req: &mut Request, _: &Context| {
            for d in req.docs.iter_mut() {
                if let Some(t) = d.text().map(str::to_uppercase) {
                    d.set_text(t);
                }
            }
        });
    }
}

async fn start(max_message_size: Option<usize>) -> Server {
    let flow = Flow::new()
        .register("Upper", factory(|_| Ok(Upper)))
        .add(Exec::new().name("upper").uses("Upper"));
    let mut opts = ServeOptions::new(Role::Gateway);
    opts.max_message_size = max_message_size;
    let running = Arc::new(flow.start().expect("a valid Flow"));
    Server::start(running, "127.0.0.1:0".parse().unwrap(), opts)
        .await
        .expect("the server binds")
}

async fn channel(server: &Server) -> Channel {
    within(
        10,
        Endpoint::from_shared(format!("http://{}", server.local_addr()))
            .unwrap()
            .connect(),
    )
    .await
    .expect("connects")
}

fn unary_client(ch: Channel) -> JinaSingleDataRequestRpcClient<Channel> {
    JinaSingleDataRequestRpcClient::new(ch)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX)
}

fn request(id: &str, endpoint: &str, docs: DocList) -> DataRequestProto {
    request_to_proto(&Request {
        id: id.into(),
        endpoint: endpoint.into(),
        docs,
        ..Request::default()
    })
}

/// A good unary request and a good `Call` stream, on a fresh connection, are served.
async fn assert_serving(server: &Server) {
    let ch = channel(server).await;
    let resp = within(
        10,
        unary_client(ch.clone()).process_single_data(request(
            "good-unary",
            "/upper",
            Doc::text_doc("still here").into(),
        )),
    )
    .await
    .expect("a good unary request is served")
    .into_inner();
    let header = resp.header.clone().unwrap();
    assert_eq!(header.request_id, "good-unary");
    assert_eq!(header.status, None, "no error: {header:?}");
    assert_eq!(
        request_from_proto(resp).unwrap().docs.texts(),
        ["STILL HERE"]
    );

    let reqs = vec![
        request("good-call-0", "/upper", Doc::text_doc("a").into()),
        request("good-call-1", "/upper", Doc::text_doc("b").into()),
    ];
    let mut stream = within(10, JinaRpcClient::new(ch).call(tokio_stream::iter(reqs)))
        .await
        .expect("a good Call stream is accepted")
        .into_inner();
    let mut got = Vec::new();
    while let Some(r) = within(10, stream.message())
        .await
        .expect("a good Call stream is served")
    {
        let r = request_from_proto(r).unwrap();
        got.push((r.id, r.docs.texts().join("")));
    }
    got.sort();
    assert_eq!(
        got,
        [
            ("good-call-0".to_owned(), "A".to_owned()),
            ("good-call-1".to_owned(), "B".to_owned())
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Raw bytes through tonic's `Grpc` client.

/// Sends and receives message bodies as they are.
#[derive(Clone, Copy, Default)]
struct Raw;

struct RawEncoder;
struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n).to_vec()))
    }
}

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

fn grpc(ch: Channel) -> tonic::client::Grpc<Channel> {
    tonic::client::Grpc::new(ch)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX)
}

/// One unary call of `path` with `body` as the message bytes.
async fn raw_unary(ch: Channel, path: &'static str, body: Vec<u8>) -> Result<Vec<u8>, Status> {
    let mut g = grpc(ch);
    within(10, g.ready()).await.expect("channel ready");
    within(
        10,
        g.unary(
            tonic::Request::new(body),
            PathAndQuery::from_static(path),
            Raw,
        ),
    )
    .await
    .map(tonic::Response::into_inner)
}

/// A `Call` stream of raw messages: the responses (decoded) and the final status.
async fn raw_call(ch: Channel, bodies: Vec<Vec<u8>>) -> (Vec<DataRequestProto>, Status) {
    let mut g = grpc(ch);
    within(10, g.ready()).await.expect("channel ready");
    let resp = within(
        10,
        g.streaming(
            tonic::Request::new(tokio_stream::iter(bodies)),
            PathAndQuery::from_static("/jina.JinaRPC/Call"),
            Raw,
        ),
    )
    .await;
    let mut stream = match resp {
        Ok(r) => r.into_inner(),
        Err(s) => return (Vec::new(), s),
    };
    let mut got = Vec::new();
    loop {
        match within(10, stream.message()).await {
            Ok(Some(m)) => got.push(DataRequestProto::decode(m.as_slice()).unwrap()),
            Ok(None) => return (got, Status::ok("")),
            Err(s) => return (got, s),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP/2 bodies through a `Channel`.

/// gRPC frames: `(compressed flag, declared length, payload)`.
fn frames(parts: &[(u8, u32, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (flag, len, payload) in parts {
        out.push(*flag);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(payload);
    }
    out
}

/// POSTs `body` (which must be ASCII: it travels as a `String` body) to `path` as a gRPC
/// request: the decoded responses and the final status.
async fn raw_http(ch: Channel, path: &str, body: Vec<u8>) -> (Vec<DataRequestProto>, Status) {
    let body = String::from_utf8(body).expect("the test's raw frames are ASCII");
    let req = http::Request::builder()
        .method(http::Method::POST)
        .version(http::Version::HTTP_2)
        .uri(path)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(body))
        .unwrap();
    let mut ch = ch;
    within(10, std::future::poll_fn(|cx| ch.poll_ready(cx)))
        .await
        .expect("channel ready");
    let resp = within(10, ch.call(req)).await.expect("an HTTP response");
    assert_eq!(resp.status(), http::StatusCode::OK);
    if let Some(s) = Status::from_header_map(resp.headers()) {
        return (Vec::new(), s); // trailers-only response
    }
    let (parts, body) = resp.into_parts();
    let mut stream = Streaming::new_response(
        ProstDecoder::<DataRequestProto>::default(),
        body,
        parts.status,
        None,
        None,
    );
    let mut got = Vec::new();
    loop {
        match within(10, stream.message()).await {
            Ok(Some(m)) => got.push(m),
            Ok(None) => break,
            Err(s) => return (got, s),
        }
    }
    let trailers = within(10, stream.trailers())
        .await
        .expect("trailers")
        .expect("a gRPC response ends with trailers");
    let status = Status::from_header_map(trailers.as_ref()).expect("a grpc-status trailer");
    (got, status)
}

/// Jina's 48-byte minimal request (jina-protocol.md §2.9): id `r1`, endpoint `/foo`, one doc
/// `d1` with text `hi`.
const GOLDEN_MINIMAL: &str = "0a0a0a0272311a042f666f6f22220a200a1e0a0e0a02696412080a0264316a0269640a0c0a047465787412040a026869";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The tests.

/// Bytes that are not a `DataRequestProto`.
fn malformed() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("an unterminated varint", vec![0xff, 0xff, 0xff]),
        ("a length past the end", vec![0x0a, 0x05, 0x01]),
        ("wire type 7", vec![0x0f, 0x00]),
        (
            "header.request_id not UTF-8",
            vec![0x0a, 0x03, 0x0a, 0x01, 0xff],
        ),
        (
            "a doc list cut short inside data",
            vec![0x22, 0x03, 0x0a, 0x05, 0x0a],
        ),
    ]
}

/// Malformed protobuf is INTERNAL (what grpcio answers when it cannot deserialize a request)
/// on `process_single_data`, `process_data` and `Call`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_protobuf_is_a_grpc_error() {
    let server = start(None).await;
    for (what, bytes) in malformed() {
        let ch = channel(&server).await;
        let e = raw_unary(
            ch.clone(),
            "/jina.JinaSingleDataRequestRPC/process_single_data",
            bytes.clone(),
        )
        .await
        .expect_err(what);
        assert_eq!(e.code(), Code::Internal, "{what}: {e:?}");
        assert!(e.message().contains("decode"), "{what}: {e:?}");

        // The same bytes as the only request of a DataRequestListProto (field 1).
        let mut list = vec![0x0a, bytes.len() as u8];
        list.extend_from_slice(&bytes);
        let e = raw_unary(ch.clone(), "/jina.JinaDataRequestRPC/process_data", list)
            .await
            .expect_err(what);
        assert_eq!(e.code(), Code::Internal, "{what}: {e:?}");

        let (got, status) = raw_call(ch, vec![bytes]).await;
        assert!(got.is_empty(), "{what}: {got:?}");
        assert_eq!(status.code(), Code::Internal, "{what}: {status:?}");
        assert_serving(&server).await;
    }
    server.stop().await;
}

/// A `Call` stream that ends inside a frame (a partial length prefix, or fewer bytes than the
/// prefix declares) ends with INTERNAL; a compressed flag without `grpc-encoding` likewise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_call_stream_is_a_grpc_error() {
    let server = start(None).await;
    let golden = unhex(GOLDEN_MINIMAL);
    assert!(golden.is_ascii());

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a partial length prefix", vec![0, 0, 0]),
        (
            "100 bytes declared, 4 sent",
            frames(&[(0, 100, b"\n\x02r1")]),
        ),
        ("a good frame, then a cut one", {
            let mut b = frames(&[(0, golden.len() as u32, &golden)]);
            b.extend(frames(&[(0, 48, &golden[..20])]));
            b
        }),
        (
            "a compressed flag without grpc-encoding",
            frames(&[(1, golden.len() as u32, &golden)]),
        ),
    ];
    for (what, body) in cases {
        let (got, status) = raw_http(channel(&server).await, "/jina.JinaRPC/Call", body).await;
        assert_eq!(status.code(), Code::Internal, "{what}: {status:?}");
        // A request that arrived whole before the cut may or may not have been answered.
        for r in &got {
            assert_eq!(r.header.as_ref().unwrap().request_id, "r1", "{what}");
        }
        assert!(got.len() <= 1, "{what}: {got:?}");
        assert_serving(&server).await;
    }

    // The same golden frame, whole, is served: the cuts above were the only problem.
    let (mut got, status) = raw_http(
        channel(&server).await,
        "/jina.JinaRPC/Call",
        frames(&[(0, golden.len() as u32, &golden)]),
    )
    .await;
    assert_eq!(status.code(), Code::Ok, "{status:?}");
    assert_eq!(got.len(), 1);
    let r = request_from_proto(got.remove(0)).unwrap();
    assert_eq!((r.id.as_str(), r.docs.texts()), ("r1", vec!["hi"]));
    server.stop().await;
}

/// An endpoint no Executor binds passes through, as in Jina: the docs come back unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_endpoint_passes_docs_through_unchanged() {
    let server = start(None).await;
    let docs: DocList = vec![
        Doc::with_id("a")
            .with_text("keep me")
            .with_tag("n", 1)
            .with_embedding(NdArray::from_f32(vec![0.5, -1.0, 2.0])),
        Doc::with_id("b").with("blob", Value::Bytes(vec![0, 1, 2, 255])),
    ]
    .into();
    let req = request("u1", "/no/such/endpoint", docs.clone());
    let resp = within(
        10,
        unary_client(channel(&server).await).process_single_data(req.clone()),
    )
    .await
    .expect("served")
    .into_inner();
    assert_eq!(resp.header.as_ref().unwrap().status, None);
    assert_eq!(
        resp.data, req.data,
        "the docs pass through unchanged, byte for byte"
    );
    let back = request_from_proto(resp).unwrap();
    assert_eq!(back.id, "u1");
    assert_eq!(&*back.endpoint, "/no/such/endpoint");
    assert_eq!(back.docs.ids(), ["a", "b"]);
    assert_eq!(back.docs[0].text(), Some("keep me"));

    let req = request("u2", "/nope", docs);
    let (got, status) = raw_call(channel(&server).await, vec![req.encode_to_vec()]).await;
    assert_eq!(status.code(), Code::Ok, "{status:?}");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data, req.data);
    assert_serving(&server).await;
    server.stop().await;
}

const MIB: usize = 1 << 20;

/// `n` docs with a 1 MiB blob each (byte `i` of doc `k` is `k + i` mod 251).
fn blob_docs(n: usize) -> DocList {
    (0..n)
        .map(|k| {
            let blob: Vec<u8> = (0..MIB).map(|i| ((k + i) % 251) as u8).collect();
            Doc::with_id(format!("big{k}")).with("blob", Value::Bytes(blob))
        })
        .collect::<Vec<_>>()
        .into()
}

/// Jina sets no message-size limit anywhere, and neither do we by default: a 64 MiB request is
/// served (and its 64 MiB response sent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_message_is_served_by_default() {
    let server = start(None).await;
    let docs = blob_docs(64);
    let req = request("huge", "/no/such/endpoint", docs.clone());
    assert!(req.encoded_len() > 64 * MIB);
    let resp = within(
        120,
        unary_client(channel(&server).await).process_single_data(req),
    )
    .await
    .expect("a 64 MiB request is served")
    .into_inner();
    let back = request_from_proto(resp).unwrap();
    assert_eq!(back.id, "huge");
    assert_eq!(back.docs.ids(), docs.ids());
    assert!(back.docs == docs, "the 64 blobs come back intact");
    assert_serving(&server).await;
    server.stop().await;
}

/// With `max_message_size` set, a larger request is refused with a gRPC status (tonic says
/// OUT_OF_RANGE where grpcio says RESOURCE_EXHAUSTED), on unary calls and on streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_configured_limit_is_refused() {
    let server = start(Some(MIB)).await;
    let too_big = request("too-big", "/upper", blob_docs(2));
    assert!(too_big.encoded_len() > 2 * MIB);

    let e = within(
        30,
        unary_client(channel(&server).await).process_single_data(too_big.clone()),
    )
    .await
    .expect_err("over the limit");
    assert!(
        matches!(e.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{e:?}"
    );
    assert!(e.message().contains("too large"), "{e:?}");
    assert_serving(&server).await;

    let (got, status) = raw_call(channel(&server).await, vec![too_big.encode_to_vec()]).await;
    assert!(got.is_empty());
    assert!(
        matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{status:?}"
    );
    assert_serving(&server).await;

    // Just under the limit is fine.
    let mut small = Doc::with_id("small");
    small.set("blob", Value::Bytes(vec![7; MIB - 1024]));
    let resp = within(
        30,
        unary_client(channel(&server).await).process_single_data(request(
            "small",
            "/upper",
            small.clone().into(),
        )),
    )
    .await
    .expect("under the limit")
    .into_inner();
    assert_eq!(request_from_proto(resp).unwrap().docs, DocList::from(small));
    server.stop().await;
}

fn ndarray_node(buffer: Vec<u8>, shape: Vec<u32>, dtype: &str) -> NodeProto {
    NodeProto {
        content: Some(Content::Ndarray(NdArrayProto {
            dense: Some(DenseNdArrayProto {
                buffer,
                shape,
                dtype: dtype.into(),
            }),
            parameters: None,
        })),
        docarray_type: Some(DocarrayType::Type("ndarray".into())),
    }
}

fn text_node(s: &str, ty: Option<&str>) -> NodeProto {
    NodeProto {
        content: Some(Content::Text(s.into())),
        docarray_type: ty.map(|t| DocarrayType::Type(t.into())),
    }
}

fn doc_proto(fields: Vec<(&str, NodeProto)>) -> DocProto {
    DocProto {
        data: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    }
}

fn raw_request(id: &str, docs: Vec<DocProto>) -> DataRequestProto {
    DataRequestProto {
        header: Some(HeaderProto {
            request_id: id.into(),
            exec_endpoint: Some("/upper".into()),
            ..HeaderProto::default()
        }),
        data: Some(DataContentProto {
            documents: Some(Documents::Docs(DocListProto { docs })),
        }),
        ..DataRequestProto::default()
    }
}

/// The Jina error a response carries: (name, args).
fn jina_error(r: &DataRequestProto) -> (String, Vec<String>) {
    let status = r
        .header
        .as_ref()
        .and_then(|h| h.status.clone())
        .unwrap_or_else(|| panic!("no error status in {r:?}"));
    assert_eq!(status.code, 1, "StatusProto.ERROR");
    let e = status.exception.expect("an exception");
    (e.name, e.args)
}

/// An ndarray whose buffer does not match its shape and dtype is a Jina error header (gRPC OK)
/// naming the field path; on a stream, only that request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ndarray_buffer_that_does_not_match_its_shape_is_a_jina_error() {
    let server = start(None).await;
    let good = doc_proto(vec![
        ("id", text_node("ok", Some("id"))),
        ("text", text_node("fine", None)),
        ("embedding", ndarray_node(vec![0; 16], vec![4], "<f4")),
    ]);
    // 12 bytes for 4 float32s.
    let bad_top = doc_proto(vec![
        ("id", text_node("bad", Some("id"))),
        ("embedding", ndarray_node(vec![0; 12], vec![4], "<f4")),
    ]);
    // A 2x3 float64 tensor with 40 bytes, inside a match.
    let bad_nested = doc_proto(vec![
        ("id", text_node("outer", Some("id"))),
        (
            "matches",
            NodeProto {
                content: Some(Content::DocArray(DocListProto {
                    docs: vec![doc_proto(vec![
                        ("id", text_node("m0", Some("id"))),
                        ("tensor", ndarray_node(vec![0; 40], vec![2, 3], "<f8")),
                    ])],
                })),
                docarray_type: None,
            },
        ),
    ]);
    let cases = [
        (
            "top-level embedding",
            raw_request("nd1", vec![good.clone(), bad_top]),
            "docs[1].embedding",
        ),
        (
            "tensor of a match",
            raw_request("nd2", vec![bad_nested, good.clone()]),
            "docs[0].matches[0].tensor",
        ),
    ];
    for (what, req, path) in cases {
        let id = req.header.as_ref().unwrap().request_id.clone();
        let resp = within(
            10,
            unary_client(channel(&server).await).process_single_data(req.clone()),
        )
        .await
        .unwrap_or_else(|s| panic!("{what}: a Jina error header, not a gRPC status: {s:?}"))
        .into_inner();
        assert_eq!(resp.header.as_ref().unwrap().request_id, id, "{what}");
        let (name, args) = jina_error(&resp);
        assert_eq!(name, "ValueError", "{what}");
        assert!(
            args.iter().any(|a| a.starts_with(path)),
            "{what}: the error names `{path}`: {args:?}"
        );
        assert_serving(&server).await;

        // On a stream, the bad request fails alone.
        let (got, status) = raw_call(
            channel(&server).await,
            vec![
                req.encode_to_vec(),
                raw_request("after", vec![good.clone()]).encode_to_vec(),
            ],
        )
        .await;
        assert_eq!(status.code(), Code::Ok, "{what}: {status:?}");
        assert_eq!(got.len(), 2, "{what}: {got:?}");
        for r in got {
            let h = r.header.clone().unwrap();
            if h.request_id == id {
                assert!(jina_error(&r).1.iter().any(|a| a.starts_with(path)));
            } else {
                assert_eq!(h.request_id, "after");
                assert_eq!(h.status, None);
                assert_eq!(request_from_proto(r).unwrap().docs.texts(), ["FINE"]);
            }
        }
    }
    server.stop().await;
}

/// A method the server does not have is UNIMPLEMENTED, whether its service exists or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_grpc_method_is_unimplemented() {
    let server = start(None).await;
    let good = request("x", "/upper", Doc::text_doc("x").into()).encode_to_vec();
    for path in [
        "/jina.JinaRPC/Nope",
        "/jina.JinaSingleDataRequestRPC/process_single_datum",
        "/no.such.Service/Call",
        "/jina.JinaRpc/Call",
    ] {
        let e = raw_unary(channel(&server).await, path, good.clone())
            .await
            .expect_err(path);
        assert_eq!(e.code(), Code::Unimplemented, "{path}: {e:?}");
        assert_serving(&server).await;
    }
    server.stop().await;
}
