//! The gRPC codec (`flotilla::grpc::codec`) on 100 docs, each with an id, a text, a 128-d f32
//! embedding and 4 tags (`category`, `count`, `in_stock`, `price`): kernel docs to and from
//! docarray's `DocListProto`, alone and with prost's byte encoding, and a whole `/search`
//! request to and from the bytes of Jina's `DataRequestProto`.
//!
//! `cargo bench --bench codec`; throughput figures are docs per second. Inputs are built outside
//! the timing (`iter_batched` where the function consumes them) and outputs are dropped outside
//! it (`iter_with_large_drop`); intermediate protos are built and dropped inside it.
//! Cases:
//! - `docs_to_proto`, `docs_from_proto`: `DocList` ⇄ `DocListProto`, no bytes.
//! - `docs_to_bytes`: `docs_to_proto`, then `encode_to_vec`.
//! - `docs_from_bytes`: `DocListProto::decode`, then `docs_from_proto`.
//! - `request_to_bytes`: `request_to_proto` (with 2 parameters), then `encode_to_vec`.
//! - `request_from_bytes`: `DataRequestProto::decode`, then `request_from_proto`.

use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use flotilla::grpc::codec::{docs_from_proto, docs_to_proto, request_from_proto, request_to_proto};
use flotilla::grpc::pb::docarray::DocListProto;
use flotilla::grpc::pb::jina::DataRequestProto;
use flotilla::{Doc, DocList, NdArray, Params, Request};
use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DOCS: usize = 100;
const DIM: usize = 128;
const CATEGORIES: &[&str] = &["shoes", "hats", "bags", "shirts"];

/// The docs, their fields (and tags) in alphabetical order, as decoding gives them back.
fn docs(rng: &mut StdRng) -> DocList {
    (0..DOCS)
        .map(|i| {
            Doc::with_id(format!("doc-{i}"))
                .with_embedding(NdArray::from_f32(
                    (0..DIM).map(|_| rng.random::<f32>()).collect(),
                ))
                .with_tag(
                    "category",
                    CATEGORIES[rng.random_range(0..CATEGORIES.len())],
                )
                .with_tag("count", rng.random_range(0..1000i64))
                .with_tag("in_stock", rng.random_bool(0.7))
                .with_tag("price", rng.random_range(0.0..100.0))
                .with_text(format!("I am document {i}"))
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(6);
    let docs = docs(&mut rng);
    let proto = docs_to_proto(&docs);
    let bytes = proto.encode_to_vec();
    let mut params = Params::new();
    params.insert("limit".into(), 10.into());
    params.insert("metric".into(), "cosine".into());
    let request = Request::new("/search", docs.clone()).with_parameters(params);
    let request_bytes = request_to_proto(&request).encode_to_vec();

    // Both round trips are lossless.
    assert_eq!(docs_from_proto(proto.clone()).expect("decodes"), docs);
    let back = DocListProto::decode(bytes.as_slice()).expect("decodes");
    assert_eq!(docs_from_proto(back).expect("decodes"), docs);
    let back =
        request_from_proto(DataRequestProto::decode(request_bytes.as_slice()).expect("decodes"))
            .expect("decodes");
    assert_eq!(back.id, request.id);
    assert_eq!(back.endpoint, request.endpoint);
    assert_eq!(back.docs, docs);
    println!(
        "codec: {} bytes of DocListProto, {} bytes of DataRequestProto for {DOCS} docs",
        bytes.len(),
        request_bytes.len()
    );

    let mut g = c.benchmark_group("codec_100_docs_128d");
    g.sample_size(20);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(DOCS as u64));
    g.bench_function("docs_to_proto", |b| {
        b.iter_with_large_drop(|| docs_to_proto(&docs))
    });
    g.bench_function("docs_from_proto", |b| {
        b.iter_batched(
            || proto.clone(),
            |p| docs_from_proto(p).expect("decodes"),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("docs_to_bytes", |b| {
        b.iter_with_large_drop(|| docs_to_proto(&docs).encode_to_vec())
    });
    g.bench_function("docs_from_bytes", |b| {
        b.iter_with_large_drop(|| {
            docs_from_proto(DocListProto::decode(bytes.as_slice()).expect("decodes"))
                .expect("decodes")
        })
    });
    g.bench_function("request_to_bytes", |b| {
        b.iter_with_large_drop(|| request_to_proto(&request).encode_to_vec())
    });
    g.bench_function("request_from_bytes", |b| {
        b.iter_with_large_drop(|| {
            request_from_proto(DataRequestProto::decode(request_bytes.as_slice()).expect("decodes"))
                .expect("decodes")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
