//! Compiles `proto/plg/v1/plugin.proto` with protox (no protoc needed) into tonic client and
//! server code.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/plg/v1/plugin.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
