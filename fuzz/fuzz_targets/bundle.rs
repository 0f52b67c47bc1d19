//! Fuzzes the `.plg` reader: any bytes must give a checked bundle or a typed error, never a
//! panic, an unbounded allocation, or an entry name that could leave its directory.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use plg_loader::bundle::{Bundle, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_unpacked: 8 << 20,
        ..Limits::default()
    };
    if let Ok(bundle) = Bundle::from_bytes(data, Path::new("fuzz.plg"), &limits) {
        for e in bundle.entries() {
            assert!(!e.name.contains('/') && e.name != ".." && !e.name.is_empty());
        }
    }
});
