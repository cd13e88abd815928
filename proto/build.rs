//! Generates the lockmgr.v1 types and services, for tonic and (in `sim/`) for madsim,
//! with a vendored protoc so a fresh machine needs no system protobuf compiler. The
//! server stubs and the peer transport are generated only with the `server` feature.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = std::env::var_os("CARGO_FEATURE_SERVER").is_some();
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    let mut protos = vec!["proto/lockmgr/v1/lockmgr.proto"];
    if server {
        protos.push("proto/lockmgr/raft/v1/raft.proto");
    }
    tonic_build::configure().build_server(server).compile_protos_with_config(
        config,
        &protos,
        &["proto"],
    )?;
    Ok(())
}
