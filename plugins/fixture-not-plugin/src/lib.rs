//! Fixture: a plain cdylib that is not a plg plugin. Loading it must fail with "not a plugin".
//! The benchmarks also `dlsym` its `plg_bench_noop` as the raw-call baseline.

/// Does nothing; the baseline for the call-overhead benchmark.
#[unsafe(no_mangle)]
pub extern "C" fn plg_bench_noop() {}

/// Adds two numbers, so the library has some ordinary content.
#[unsafe(no_mangle)]
pub extern "C" fn plg_bench_add(a: i64, b: i64) -> i64 {
    a.wrapping_add(b)
}
