//! Fuzzes `plg install` end to end with structure-aware cases (`plg_fuzz_harness::Case`):
//! the harness writes the tar headers and gzips the stream itself, recomputes checksums and
//! signs with a fixed key, so mutations reach checksum parsing, manifest validation, the
//! `source.path` check, signature parsing, the signature policy, unpacking and placing.
//! Each case installs into a scratch plugins directory; the harness panics if anything is
//! written outside it, if a refused install changes it, or if a successful one leaves
//! anything but the bundle's files.
//!
//! Set `PLG_FUZZ_LIBRARY` to a built `libhello.so` so that cases can install successfully.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use plg_fuzz_harness::{Case, Harness, RealPlugin};

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let real = std::env::var_os("PLG_FUZZ_LIBRARY")
            .map(|p| {
                let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/hello/plugin.json");
                RealPlugin::new(p.as_ref(), manifest.as_ref())
                    .expect("PLG_FUZZ_LIBRARY and plugins/hello/plugin.json are readable")
            });
        Harness::new(real)
    })
}

fuzz_target!(|case: Case| {
    let _ = harness().run(&case);
});
