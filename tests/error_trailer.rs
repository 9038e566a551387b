//! Jina's `is-error` trailer: a unary reply that carries an Executor error ends with the trailing
//! metadata `is-error: true`, which a Jina gateway reads to stop the request's chain there
//! (jina-protocol.md §2.7); a reply without an error has no such trailer.

mod common;

use std::sync::Arc;

use common::within;
use flotilla::actors::executor::factory;
use flotilla::grpc::codec::request_to_proto;
use flotilla::grpc::pb::docarray::node_proto::Content;
use flotilla::grpc::pb::docarray::{NdArrayProto, NodeProto};
use flotilla::grpc::pb::jina::DataRequestListProto;
use flotilla::grpc::pb::jina::data_request_proto::data_content_proto::Documents;
use flotilla::grpc::pb::jina::jina_data_request_rpc_client::JinaDataRequestRpcClient;
use flotilla::grpc::pb::jina::jina_single_data_request_rpc_client::JinaSingleDataRequestRpcClient;
use flotilla::grpc::pb::jina::{DataRequestProto, StatusProto};
use flotilla::grpc::server::{ServeOptions, Server};
use flotilla::grpc::service::Role;
use flotilla::{Context, Doc, Exec, Executor, ExecutorError, Flow, Request, Requests};
use tonic::transport::{Channel, Endpoint};

/// `/fail` fails with a ValueError; every other endpoint passes docs through.
struct Picky;

impl Executor for Picky {
    fn requests(r: &mut Requests<Self>) {
        r.on(
            "/fail",
            |_: &mut Picky, _: &mut Request, _: &Context| -> Result<(), ExecutorError> {
                Err(ExecutorError::named("ValueError", "failed on purpose"))
            },
        );
        r.on("/ok", |_: &mut Picky, _: &mut Request, _: &Context| {});
    }
}

/// An Executor server for `Picky`, as `flotilla executor` serves one to a Jina gateway.
async fn start() -> Server {
    let flow = Flow::new()
        .register("Picky", factory(|_| Ok(Picky)))
        .add(Exec::new().name("picky").uses("Picky"));
    let running = Arc::new(flow.start().expect("a valid Flow"));
    Server::start(
        running,
        "127.0.0.1:0".parse().unwrap(),
        ServeOptions::new(Role::Executor),
    )
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

fn request(id: &str, endpoint: &str) -> DataRequestProto {
    request_to_proto(&Request {
        id: id.into(),
        endpoint: endpoint.into(),
        docs: Doc::text_doc("hello").into(),
        ..Request::default()
    })
}

fn status(reply: &DataRequestProto) -> Option<StatusProto> {
    reply.header.as_ref().and_then(|h| h.status.clone())
}

/// The `is-error` metadata of a unary reply (tonic merges the trailers into it).
fn is_error(reply: &tonic::Response<DataRequestProto>) -> Option<String> {
    reply
        .metadata()
        .get("is-error")
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executor_error_ends_with_the_is_error_trailer() {
    let server = start().await;
    let mut single = JinaSingleDataRequestRpcClient::new(channel(&server).await);

    let failed = within(10, single.process_single_data(request("f1", "/fail")))
        .await
        .expect("an Executor error is gRPC OK");
    assert_eq!(is_error(&failed).as_deref(), Some("true"));
    let s = status(failed.get_ref()).expect("the error is in the header too");
    assert_eq!(s.exception.unwrap().name, "ValueError");

    let ok = within(10, single.process_single_data(request("o1", "/ok")))
        .await
        .expect("served");
    assert_eq!(status(ok.get_ref()), None);
    assert_eq!(is_error(&ok), None, "{:?}", ok.metadata());

    // process_data, the call Jina's gateway makes for a join.
    let mut data = JinaDataRequestRpcClient::new(channel(&server).await);
    let failed = within(
        10,
        data.process_data(DataRequestListProto {
            requests: vec![request("f2", "/fail"), request("f2", "/fail")],
        }),
    )
    .await
    .expect("an Executor error is gRPC OK");
    assert_eq!(is_error(&failed).as_deref(), Some("true"));
    let ok = within(
        10,
        data.process_data(DataRequestListProto {
            requests: vec![request("o2", "/ok")],
        }),
    )
    .await
    .expect("served");
    assert_eq!(is_error(&ok), None);
    server.stop().await;
}

/// A request the server cannot decode is answered like an Executor error (a ValueError in the
/// header), so it carries the trailer too: a Jina gateway must not send it on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_request_ends_with_the_is_error_trailer() {
    let server = start().await;
    let mut bad = request("b1", "/ok");
    let Some(Documents::Docs(list)) = bad.data.as_mut().and_then(|d| d.documents.as_mut()) else {
        panic!("a request with docs");
    };
    // An ndarray with no dense payload cannot become a tensor.
    list.docs[0].data.insert(
        "embedding".into(),
        NodeProto {
            content: Some(Content::Ndarray(NdArrayProto::default())),
            docarray_type: None,
        },
    );
    let mut single = JinaSingleDataRequestRpcClient::new(channel(&server).await);
    let reply = within(10, single.process_single_data(bad))
        .await
        .expect("a Jina error header, not a gRPC status");
    assert!(status(reply.get_ref()).is_some(), "{reply:?}");
    assert_eq!(is_error(&reply).as_deref(), Some("true"));
    server.stop().await;
}
