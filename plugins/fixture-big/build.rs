//! Writes 5 MB of pseudo-random bytes for the library to embed.
use std::io::Write;

fn main() {
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("blob.bin");
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut data = Vec::with_capacity(5_000_000);
    while data.len() < 5_000_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(5_000_000);
    std::fs::File::create(out)
        .unwrap()
        .write_all(&data)
        .unwrap();
    println!("cargo:rerun-if-changed=build.rs");
}
