//! How deep fuzz inputs get into `plg install`: for each corpus directory, how many inputs
//! reached each layer (were refused there or deeper).
//!
//! ```text
//! cargo run --release -p plg-fuzz-harness --example reach -- LIBHELLO \
//!     --cases fuzz/corpus/install --raw fuzz/corpus/bundle
//! ```
//!
//! `--cases DIR`: structure-aware inputs of the `install` target, run through the harness
//! (all its invariants checked). `--raw DIR`: inputs of the byte-level `bundle` target,
//! installed as `.plg` files into a scratch plugins directory. With `PLG_REACH_LIST=1`, each
//! input's layer is printed too (`LAYER<TAB>PATH`), to pick a regression corpus.

use std::{collections::BTreeMap, path::Path};

use arbitrary::{Arbitrary, Unstructured};
use plg_fuzz_harness::{layer::Layer, Case, Harness, RealPlugin};
use plg_loader::{
    install::{install_file, InstallOptions},
    PluginsDir,
};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(library) = args.first() else {
        eprintln!("usage: reach LIBHELLO [--cases DIR] [--raw DIR]...");
        std::process::exit(2);
    };
    let harness = Harness::new(Some(
        RealPlugin::new(
            Path::new(library),
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/hello/plugin.json"),
        )
        .expect("the library and plugins/hello/plugin.json are readable"),
    ));
    for pair in args[1..].chunks(2) {
        let [flag, dir] = pair else {
            eprintln!("a flag without a directory");
            std::process::exit(2);
        };
        let mut counts: BTreeMap<Layer, usize> = BTreeMap::new();
        let mut total = 0;
        let list = std::env::var_os("PLG_REACH_LIST").is_some();
        for entry in std::fs::read_dir(dir).expect("a corpus directory") {
            let path = entry.expect("readable").path();
            let bytes = std::fs::read(&path).expect("readable");
            let layer = match flag.as_str() {
                "--cases" => match Case::arbitrary_take_rest(Unstructured::new(&bytes)) {
                    Ok(case) => Layer::of(&harness.run(&case)),
                    Err(_) => continue,
                },
                "--raw" => raw(&bytes),
                other => {
                    eprintln!("unknown flag {other}");
                    std::process::exit(2);
                }
            };
            if list {
                println!("{layer:?}\t{}", path.display());
            }
            total += 1;
            *counts.entry(layer).or_default() += 1;
        }
        println!("{dir} ({flag}): {total} inputs");
        for layer in Layer::ALL {
            let reached: usize = counts.range(layer..).map(|(_, n)| n).sum();
            let stopped = counts.get(&layer).copied().unwrap_or(0);
            println!(
                "  {:<11} reached {reached:>6} ({:>5.1}%)  stopped here {stopped:>6}",
                format!("{layer:?}"),
                100.0 * reached as f64 / total.max(1) as f64
            );
        }
    }
}

fn raw(bytes: &[u8]) -> Layer {
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let file = scratch.path().join("in.plg");
    std::fs::write(&file, bytes).expect("scratch is writable");
    let plugins = PluginsDir::new(scratch.path().join("plugins"));
    Layer::of(&install_file(&file, &plugins, &InstallOptions::default()))
}
