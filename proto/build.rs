//! Generates the lockmgr.v1 types and services, for tonic and (in `sim/`) for madsim,
//! with a vendored protoc so a fresh machine needs no system protobuf compiler.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_build::configure().compile_protos_with_config(
        config,
        &["proto/lockmgr/v1/lockmgr.proto", "proto/lockmgr/raft/v1/raft.proto"],
        &["proto"],
    )?;
    Ok(())
}
