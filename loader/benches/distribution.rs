//! Distribution figures, each against a baseline measured in the same run:
//! - `install_5mb`: `plg install --force BUNDLE` vs `tar xzf BUNDLE` (both as processes);
//! - `pack_5mb`: `plg pack DIR` vs `tar czf` of the same two files (gzip level 6 both);
//! - `git_warm_cache`: loading a `remote_git` plugin whose build is cached vs loading the
//!   same library as `local_so`.
//!
//! `cargo bench -p plg-loader --bench distribution`, then `python3 scripts/bench_ratios.py`.

mod common;

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use criterion::{criterion_group, criterion_main, Criterion};
use plg_loader::{
    git::{fetch_and_build, GitOptions, NoProgress},
    PluginManager,
};
use plg_tests::{
    git_repo, hello_crate_files, library_file_name, plg_bin, target_dir, Profile, TempPluginsDir,
};

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn install_and_pack(c: &mut Criterion) {
    let staged = TempPluginsDir::new(Profile::Release);
    let dir = staged.stage("fixture-big");
    let work = tempfile::tempdir().unwrap();
    let bundle = work.path().join("big.plg");
    let plg = plg_bin(Profile::Release);
    run(Command::new(&plg)
        .arg("pack")
        .arg(&dir)
        .arg("-o")
        .arg(&bundle));
    let size = std::fs::metadata(dir.join(library_file_name("fixture-big")))
        .unwrap()
        .len();
    eprintln!(
        "fixture-big library: {size} bytes; bundle: {} bytes",
        std::fs::metadata(&bundle).unwrap().len()
    );

    let target = work.path().join("plugins");
    let untar = work.path().join("untar");
    std::fs::create_dir_all(&untar).unwrap();
    let mut g = c.benchmark_group("install_5mb");
    g.sample_size(20);
    g.bench_function("baseline_tar_xzf", |b| {
        b.iter(|| {
            run(Command::new("tar")
                .arg("xzf")
                .arg(&bundle)
                .arg("-C")
                .arg(&untar))
        })
    });
    g.bench_function("plg_install", |b| {
        b.iter(|| {
            run(Command::new(&plg)
                .args(["install", "--force"])
                .arg(&bundle)
                .arg("--plugins-dir")
                .arg(&target))
        })
    });
    g.finish();

    let out_plg = work.path().join("out.plg");
    let out_tgz = work.path().join("out.tgz");
    let mut g = c.benchmark_group("pack_5mb");
    g.sample_size(20);
    g.bench_function("baseline_tar_czf", |b| {
        b.iter(|| {
            run(Command::new("tar")
                .arg("czf")
                .arg(&out_tgz)
                .arg("-C")
                .arg(&dir)
                .arg("plugin.json")
                .arg(library_file_name("fixture-big")))
        })
    });
    g.bench_function("plg_pack", |b| {
        b.iter(|| {
            run(Command::new(&plg)
                .arg("pack")
                .arg(&dir)
                .arg("-o")
                .arg(&out_plg))
        })
    });
    g.finish();
}

fn git_warm_cache(c: &mut Criterion) {
    let (_repo, url, commit) = git_repo(&hello_crate_files());
    let plugins = TempPluginsDir::new(Profile::Release);
    let cache = plugins.path().join(".plg/git-cache");
    let mut opts = GitOptions::new(&cache);
    opts.allowed_schemes.push("file".into());
    opts.build.target_dir = Some(target_dir().join("plg-bench-git"));
    let built = fetch_and_build(&url, Some(&commit), None, &opts, &NoProgress).unwrap();
    // The same library, staged as an ordinary local_so plugin in another directory.
    let local = TempPluginsDir::new(Profile::Release);
    let local_manifest = local.stage_library(
        "hello",
        "1.2.0",
        &built.dir.join(library_file_name("hello")),
    );
    let remote_manifest = plugins.write_manifest(
        "hello",
        &format!(r#"{{"name":"hello","version":"1.2.0","source":{{"mode":"remote_git","path":"{url}","rev":"{commit}"}}}}"#),
    ).join("plugin.json");

    let remote = PluginManager::new(plugins.path()).with_git_options(opts);
    let local_mgr = PluginManager::new(local.path());
    let timed = |m: &PluginManager, manifest: &Path, iters: u64| {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let t = Instant::now();
            m.load_manifest(manifest).unwrap();
            total += t.elapsed();
            m.unload("hello", None).unwrap();
        }
        total
    };
    let mut g = c.benchmark_group("git_warm_cache");
    g.bench_function("baseline_local_so_load", |b| {
        b.iter_custom(|iters| timed(&local_mgr, &local_manifest, iters))
    });
    g.bench_function("plg_remote_git_cached_load", |b| {
        b.iter_custom(|iters| timed(&remote, &remote_manifest, iters))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = install_and_pack, git_warm_cache
}
criterion_main!(benches);
