//! Compiles the `.proto` contract with `protox` (pure Rust, no system `protoc`)
//! and writes the encoded descriptor set to `OUT_DIR` for server reflection.

use std::{env, fs, path::PathBuf};

use prost::Message;

const PROTOS: &[&str] = &[
    "lienthong/v1/common.proto",
    "lienthong/v1/sector.proto",
    "lienthong/v1/exchange.proto",
    "lienthong/v1/registry.proto",
    "lienthong/v1/citizen.proto",
    "lienthong/adapter/v1/adapter.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=lienthong");
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let fds = protox::Compiler::new(["."])?
        .include_source_info(true)
        .open_files(PROTOS)?
        .file_descriptor_set();
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out.join("lienthong_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Repeated fields bounded before a message is decoded.
        .codec_path("crate::codec::BoundedCodec")
        .compile_fds(fds)?;
    Ok(())
}
