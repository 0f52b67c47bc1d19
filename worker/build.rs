//! Links `plg-worker` as a position-dependent executable on Linux.
//!
//! A worker's start is on the path of a plugin's first call, and of every restart. As a PIE
//! this binary carries about 25,000 relative relocations; the dynamic loader applies them at
//! every start, writing to about a hundred pages of `.data.rel.ro`, each a page fault. Linked
//! without PIE those addresses are fixed at link time: 214 page faults become 99 and the
//! process's CPU time to `main` drops by more than half (BENCHMARKS.md, "Worker start").
//! What this gives up is the randomised address of the worker's own code (its libraries,
//! heap and stack stay randomised). The worker's only inputs are its host, over a private
//! socket, and the plugin it runs, which is native code in the same process already.
fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.contains("linux-gnu") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
