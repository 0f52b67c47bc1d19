//! README claims that had no test of their own: unload under calls that loop until cancelled,
//! strict signature verification, `git_schemes` from the directory's config, `plg install DIR`,
//! `plg uninstall NAME`, and a failed `plg build` keeping the staged copy.

use std::{
    process::Command,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use plg_loader::{
    bundle::{Bundle, BundleError, Limits},
    git::GitOptions,
    Context, ExecError, LoadError, PluginManager, PluginsDir,
};
use plg_tests::{
    git_repo, hello_crate_files, plg_bin, target_dir, workspace_root, Profile, TempPluginsDir,
};

use crate::cli::{plg, stderr, stdout};

/// Many threads call a plugin that loops until cancelled; unload cancels them, waits for
/// them, and the library is verifiably gone. Every call ends Ok, Cancelled or Unloaded.
#[test]
fn unload_cancels_looping_calls_drains_them_and_unmaps() {
    let dir = TempPluginsDir::default();
    dir.stage("fixture-hang");
    let manager = PluginManager::new(dir.path());
    let hang = manager.load_matching("fixture-hang", None).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..16)
        .map(|i| {
            let (hang, stop) = (hang.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut outcomes = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let label = if i % 2 == 0 { "loop" } else { "running" };
                    let mut ctx = Context::new().with_label(label);
                    outcomes.push(hang.execute(&mut ctx));
                }
                outcomes
            })
        })
        .collect();
    // Wait (bounded) until a call is inside the loop.
    let start = Instant::now();
    loop {
        let mut ctx = Context::new().with_label("running");
        hang.execute(&mut ctx).unwrap();
        if ctx.get::<bool>("running") == Ok(true) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no call ever looped"
        );
        std::thread::yield_now();
    }
    let reports = manager.unload("fixture-hang", None).expect("unload drains");
    stop.store(true, Ordering::Relaxed);
    let outcomes: Vec<_> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert!(outcomes.iter().any(|o| matches!(
        o.as_ref().map_err(|e| &**e),
        Err(ExecError::Cancelled { .. })
    )));
    for o in &outcomes {
        assert!(
            matches!(
                o.as_ref().map_err(|e| &**e),
                Ok(()) | Err(ExecError::Cancelled { .. }) | Err(ExecError::Unloaded { .. })
            ),
            "{o:?}"
        );
    }
    #[cfg(target_os = "linux")]
    assert_eq!(reports[0].unmapped, Some(true));
    let _ = reports;
}

/// A signature by a small-order ("weak") key with R = identity and s = 0 satisfies the
/// plain ed25519 equation for every message; `verify_strict` refuses it.
#[test]
fn a_weak_key_signature_is_refused() {
    let staged = TempPluginsDir::default();
    let packed = plg_loader::bundle::pack_dir(&staged.stage("hello"), None).unwrap();
    // Rebuild the bundle with a forged signature entry.
    let mut files = std::collections::BTreeMap::new();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&packed.bytes[..]));
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        files.insert(name, data);
    }
    let identity = format!("01{}", "00".repeat(31));
    files.insert(
        "SIGNATURE.ed25519".into(),
        format!(
            "plg-signature-v1\npublic-key: {identity}\nsignature: {identity}{}\n",
            "00".repeat(32)
        )
        .into_bytes(),
    );
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data) in &files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, name, &data[..]).unwrap();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar.into_inner().unwrap()).unwrap();
    let bytes = gz.finish().unwrap();
    match Bundle::from_bytes(&bytes, std::path::Path::new("weak.plg"), &Limits::default()) {
        Err(BundleError::BadSignature { problem, .. }) => {
            assert!(
                problem.contains("public key") || problem.contains("does not match"),
                "{problem}"
            )
        }
        other => panic!("expected BadSignature, got {other:?}"),
    }
}

/// `git_schemes` in `.plg/config.json` is what lets a plain `PluginManager::new` fetch a
/// `file://` repository; without it the scheme is refused.
#[test]
fn git_schemes_come_from_the_directory_config() {
    let (_repo, url, _commit) = git_repo(&hello_crate_files());
    let dir = TempPluginsDir::default();
    dir.write_manifest(
        "hello",
        &format!(
            r#"{{"name":"hello","version":"1.2.0","source":{{"mode":"remote_git","path":"{url}","rev":"v1"}}}}"#
        ),
    );
    let refused = PluginManager::new(dir.path()).load_matching("hello", None);
    assert!(
        matches!(
            refused,
            Err(LoadError::Git(
                plg_loader::GitError::SchemeNotAllowed { .. }
            ))
        ),
        "{refused:?}"
    );
    let config = dir.path().join(".plg/config.json");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, r#"{"git_schemes": ["https", "ssh", "file"]}"#).unwrap();
    let opts = GitOptions::for_plugins_dir(&PluginsDir::new(dir.path())).unwrap();
    assert_eq!(opts.check_url(&url).unwrap(), "file");
    assert_eq!(opts.cache_dir, dir.path().join(".plg/git-cache"));
    // With the config in place the scheme check passes: `scan` looks in the cache only, so
    // it now stops at "not cached" instead of at the scheme.
    match PluginManager::new(dir.path())
        .scan()
        .unwrap()
        .pop()
        .unwrap()
        .status
    {
        Err(LoadError::Git(plg_loader::GitError::NotCached { .. })) => {}
        other => panic!("expected NotCached, got {other:?}"),
    }
}

#[test]
fn install_from_a_staged_directory_and_a_crate_and_uninstall_every_version() {
    let staged = TempPluginsDir::default();
    let one = staged.stage("hello");
    let two = staged.stage_variant("hello", "2.0.0");
    let dir = TempPluginsDir::default();
    for source in [&one, &two] {
        let out = plg(&dir, &["install", source.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    // A plugin crate is built, then installed.
    let crate_dir = workspace_root().join("plugins/counter");
    let out = Command::new(plg_bin(Profile::Debug))
        .args(["install", crate_dir.to_str().unwrap(), "--plugins-dir"])
        .arg(dir.path())
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.path().join("counter").is_dir());

    let out = plg(&dir, &["uninstall", "hello", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["removed"].as_array().unwrap().len(), 2);
    assert!(!dir.path().join("hello").exists());
    assert!(dir.path().join("counter").is_dir(), "other plugins stay");
}

#[test]
fn a_failed_build_keeps_the_previously_staged_copy() {
    let dir = TempPluginsDir::default();
    let work = tempfile::tempdir().unwrap();
    let crate_dir = work.path().join("demo");
    assert!(plg(
        &dir,
        &["new", "demo", "--path", crate_dir.to_str().unwrap()]
    )
    .status
    .success());
    let build = || {
        Command::new(plg_bin(Profile::Debug))
            .args([
                "build",
                "--debug",
                crate_dir.to_str().unwrap(),
                "--plugins-dir",
            ])
            .arg(dir.path())
            .env("CARGO_TARGET_DIR", target_dir())
            .output()
            .unwrap()
    };
    let out = build();
    assert!(out.status.success(), "{}", stderr(&out));
    let staged = dir.path().join("demo/0.1.0/plugin.json");
    let before = std::fs::read(&staged).unwrap();
    std::fs::write(crate_dir.join("src/lib.rs"), "this is not rust").unwrap();
    let out = build();
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert_eq!(std::fs::read(&staged).unwrap(), before);
    assert!(plg(&dir, &["run", "demo"]).status.success());
}
