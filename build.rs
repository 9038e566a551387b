//! Generates the gRPC code for Jina's wire protocol from `proto/` with the pure-Rust `protox`
//! compiler (no system `protoc`), then tonic's server and client stubs.
//!
//! Map fields (`DocProto.data`, `DictOfAnyProto.data`, …) are generated as `BTreeMap`: encoding
//! is then deterministic and identical to Python protobuf's deterministic serialization (map
//! entries sorted by key), and decoding yields fields in a stable (alphabetical) order.
//!
//! The compiled descriptor set (with imports) is written to `$OUT_DIR/flotilla_descriptor.bin`
//! for gRPC server reflection, which Jina's gateway uses to probe Executors.

use protox::prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=build.rs");
    let fds = protox::compile(
        [
            "proto/jina.proto",
            "proto/docarray.proto",
            "proto/flotilla.proto",
        ],
        ["proto"],
    )?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("flotilla_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .btree_map(".")
        .compile_fds(fds)?;
    Ok(())
}
