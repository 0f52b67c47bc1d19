//! Shared by the benchmarks: the raw `dlopen`/`dlsym` baseline. The only `unsafe` in the
//! benchmarks lives here.
#![allow(dead_code)]

use std::path::Path;

use criterion::Criterion;

/// A library opened with plain libloading, and its `extern "C" fn()` symbol.
pub struct RawNoop {
    _lib: libloading::Library,
    pub f: extern "C" fn(),
}

impl RawNoop {
    /// Opens `path` (fixture-not-plugin) and looks up `plg_bench_noop`.
    pub fn open(path: &Path) -> Self {
        // SAFETY: fixture-not-plugin is our own library; its initializers are trivial.
        let lib = unsafe { libloading::Library::new(path) }.expect("open fixture-not-plugin");
        // SAFETY: `plg_bench_noop` is declared as `extern "C" fn()` in fixture-not-plugin, and
        // the copied pointer is only called while `_lib` keeps the library open.
        let f = unsafe {
            *lib.get::<extern "C" fn()>(b"plg_bench_noop")
                .expect("symbol")
        };
        RawNoop { _lib: lib, f }
    }
}

/// Opens `path` and looks up `symbol`, as a host using libloading directly would.
pub fn raw_open_and_get(path: &Path, symbol: &[u8]) -> libloading::Library {
    // SAFETY: the benchmark opens only our own fixture libraries.
    let lib = unsafe { libloading::Library::new(path) }.expect("open");
    // SAFETY: we only take the address; nothing is called or read through it.
    let sym = unsafe { lib.get::<*const u8>(symbol) }.expect("symbol");
    std::hint::black_box(*sym);
    lib
}

/// Criterion settings that keep a full run to a few minutes on a small machine.
pub fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3))
        .sample_size(50)
}
