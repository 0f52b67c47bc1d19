//! `.plg` bundles: packing, installing, uninstalling, signatures, and every hostile archive.
//! Each hostile case builds its archive by hand and checks the exact error kind, that
//! nothing was left behind, and that the version installed before still loads.

use std::{collections::BTreeMap, io::Write, path::Path};

use plg_loader::{
    bundle::{pack_dir, Bundle, BundleError, Limits, SigningKey},
    install::{install_file, uninstall, InstallError, InstallOptions},
    keys::Keyring,
    Context, LoadError, ManifestError, PluginManager, PluginsDir,
};
use plg_tests::TempPluginsDir;
use sha2::Digest;

/// The files of a valid hello bundle: manifest and library.
fn hello_files() -> BTreeMap<String, Vec<u8>> {
    let staged = TempPluginsDir::default();
    let dir = staged.stage("hello");
    let packed = pack_dir(&dir, None).unwrap();
    let mut files = entries_of(&packed.bytes);
    files.remove("CHECKSUMS.sha256");
    files
}

fn checksums(files: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    files
        .iter()
        .map(|(n, d)| format!("{}  {n}\n", hex::encode(sha2::Sha256::digest(d))))
        .collect::<String>()
        .into_bytes()
}

/// One raw tar entry: name bytes (unchecked), type, data, link target.
struct Raw<'a> {
    name: &'a [u8],
    kind: tar::EntryType,
    data: &'a [u8],
    link: &'a [u8],
}

fn raw<'a>(name: &'a str, data: &'a [u8]) -> Raw<'a> {
    Raw {
        name: name.as_bytes(),
        kind: tar::EntryType::Regular,
        data,
        link: b"",
    }
}

/// Builds a gzip tar exactly as told, bypassing tar-rs's path checks.
fn tar_gz(entries: &[Raw<'_>]) -> Vec<u8> {
    let mut tar = Vec::new();
    for e in entries {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..e.name.len()].copy_from_slice(e.name);
        h.as_old_mut().linkname[..e.link.len()].copy_from_slice(e.link);
        h.set_size(e.data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(e.kind);
        h.set_cksum();
        tar.extend_from_slice(h.as_bytes());
        tar.extend_from_slice(e.data);
        tar.resize(tar.len().div_ceil(512) * 512, 0);
    }
    tar.resize(tar.len() + 1024, 0);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

/// A valid bundle made of `files` plus their checksums, and `extra` raw entries after them.
fn bundle_with(files: &BTreeMap<String, Vec<u8>>, extra: &[Raw<'_>]) -> Vec<u8> {
    let sums = checksums(files);
    let mut entries: Vec<Raw<'_>> = files.iter().map(|(n, d)| raw(n, d)).collect();
    entries.push(raw("CHECKSUMS.sha256", &sums));
    entries.extend(extra.iter().map(|e| Raw { ..*e }));
    tar_gz(&entries)
}

/// A plugins dir with a good hello installed, a place for hostile bundles, and checks that a
/// refused install changed nothing.
struct Scene {
    plugins: TempPluginsDir,
    work: tempfile::TempDir,
}

impl Scene {
    fn new() -> Self {
        let plugins = TempPluginsDir::default();
        let work = tempfile::tempdir().unwrap();
        let good = work.path().join("good.plg");
        std::fs::write(&good, bundle_with(&hello_files(), &[])).unwrap();
        install_file(
            &good,
            &PluginsDir::new(plugins.path()),
            &InstallOptions::default(),
        )
        .unwrap();
        Scene { plugins, work }
    }

    fn install(&self, bytes: &[u8], opts: &InstallOptions) -> Result<(), InstallError> {
        let path = self.work.path().join("x.plg");
        std::fs::write(&path, bytes).unwrap();
        install_file(&path, &PluginsDir::new(self.plugins.path()), opts).map(drop)
    }

    /// Installs `bytes` with `--force` (so only validation can stop it) and returns the error.
    fn refuse(&self, bytes: &[u8]) -> InstallError {
        let opts = InstallOptions {
            force: true,
            ..Default::default()
        };
        let err = self
            .install(bytes, &opts)
            .expect_err("hostile bundle was installed");
        self.assert_untouched();
        err
    }

    /// Only hello/1.2.0 (and no temporary directory) is there, and it still loads and runs.
    fn assert_untouched(&self) {
        let mut found = Vec::new();
        for e in walk(self.plugins.path()) {
            if e.starts_with(self.plugins.path().join(".plg")) {
                continue; // configuration (keyring), not plugins
            }
            found.push(
                e.strip_prefix(self.plugins.path())
                    .unwrap()
                    .display()
                    .to_string(),
            );
        }
        found.sort();
        assert_eq!(
            found,
            [
                "hello",
                "hello/1.2.0",
                "hello/1.2.0/libhello.so",
                "hello/1.2.0/plugin.json"
            ]
        );
        let manager = PluginManager::new(self.plugins.path());
        assert!(manager.load_all().failed.is_empty());
        let mut ctx = Context::new();
        manager.get("hello").unwrap().execute(&mut ctx).unwrap();
        assert_eq!(ctx.get_str("greeting"), Ok("Hello, world!"));
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        out.push(p.clone());
        if p.is_dir() {
            out.extend(walk(&p));
        }
    }
    out
}

fn bundle_err(e: InstallError) -> BundleError {
    match e {
        InstallError::Bundle(b) => b,
        other => panic!("expected a bundle error, got {other:?}"),
    }
}

#[test]
fn entries_with_dotdot_or_absolute_paths_are_refused() {
    let s = Scene::new();
    let files = hello_files();
    let e = bundle_err(s.refuse(&bundle_with(&files, &[raw("../evil", b"x")])));
    assert!(
        matches!(e, BundleError::PathTraversal { ref entry, .. } if entry == "../evil"),
        "{e:?}"
    );
    let e = bundle_err(s.refuse(&bundle_with(&files, &[raw("a/../../evil", b"x")])));
    assert!(matches!(e, BundleError::PathTraversal { .. }), "{e:?}");
    let e = bundle_err(s.refuse(&bundle_with(&files, &[raw("/tmp/evil", b"x")])));
    assert!(matches!(e, BundleError::AbsolutePath { .. }), "{e:?}");
    let e = bundle_err(s.refuse(&bundle_with(&files, &[raw("sub/file", b"x")])));
    assert!(matches!(e, BundleError::NotFlat { .. }), "{e:?}");
    assert!(!Path::new("/tmp/evil").exists());
}

#[test]
fn links_and_special_files_are_refused() {
    let s = Scene::new();
    let files = hello_files();
    for (kind, link) in [
        (tar::EntryType::Symlink, &b"/etc/passwd"[..]),
        (tar::EntryType::Symlink, &b"plugin.json"[..]),
        (tar::EntryType::Link, &b"plugin.json"[..]),
    ] {
        let entry = Raw {
            name: b"link",
            kind,
            data: b"",
            link,
        };
        let e = bundle_err(s.refuse(&bundle_with(&files, &[entry])));
        assert!(matches!(e, BundleError::Link { .. }), "{e:?}");
    }
    for kind in [
        tar::EntryType::Char,
        tar::EntryType::Block,
        tar::EntryType::Fifo,
    ] {
        let entry = Raw {
            name: b"dev",
            kind,
            data: b"",
            link: b"",
        };
        let e = bundle_err(s.refuse(&bundle_with(&files, &[entry])));
        assert!(matches!(e, BundleError::SpecialFile { .. }), "{e:?}");
    }
}

#[test]
fn duplicate_entries_are_refused() {
    let s = Scene::new();
    let files = hello_files();
    let e = bundle_err(s.refuse(&bundle_with(&files, &[raw("plugin.json", b"{}")])));
    assert!(
        matches!(e, BundleError::Duplicate { ref entry, .. } if entry == "plugin.json"),
        "{e:?}"
    );
}

#[test]
fn a_manifest_pointing_outside_the_bundle_is_refused() {
    let s = Scene::new();
    let mut files = hello_files();
    let manifest = String::from_utf8(files["plugin.json"].clone()).unwrap();
    files.insert(
        "plugin.json".into(),
        manifest
            .replace("\"libhello.so\"", "\"../libhello.so\"")
            .into_bytes(),
    );
    match s.refuse(&bundle_with(&files, &[])) {
        InstallError::Bundle(BundleError::Manifest(ManifestError::Invalid { field, .. })) => {
            assert_eq!(field, "source.path")
        }
        e => panic!("{e:?}"),
    }
    files.insert(
        "plugin.json".into(),
        manifest
            .replace("\"libhello.so\"", "\"libother.so\"")
            .into_bytes(),
    );
    assert!(matches!(
        bundle_err(s.refuse(&bundle_with(&files, &[]))),
        BundleError::SourceOutsideBundle { .. }
    ));
}

#[test]
fn a_library_that_is_not_a_plugin_is_refused() {
    let s = Scene::new();
    let mut files = hello_files();
    files.insert(
        "libhello.so".into(),
        std::fs::read(plg_tests::library(
            plg_tests::Profile::Debug,
            "fixture-not-plugin",
        ))
        .unwrap(),
    );
    match s.refuse(&bundle_with(&files, &[])) {
        InstallError::Load(LoadError::NotAPlugin { .. }) => {}
        e => panic!("{e:?}"),
    }
}

#[test]
fn gzip_bombs_hit_the_ratio_and_absolute_caps() {
    let s = Scene::new();
    let zeros = vec![0u8; 64 << 20];
    let bomb = tar_gz(&[raw("zeros", &zeros)]);
    assert!(
        bomb.len() < 1 << 20,
        "the bomb compresses well: {}",
        bomb.len()
    );
    match bundle_err(s.refuse(&bomb)) {
        BundleError::TooLarge { why, limit, .. } => assert_eq!(
            (why, limit),
            (
                "its ratio to the compressed size",
                (bomb.len() as u64 * Limits::default().max_ratio).max(1 << 20)
            )
        ),
        other => panic!("expected TooLarge, got {other:?}"),
    }

    // The absolute cap on the DECOMPRESSED size. The file is under `max_unpacked`, so the
    // check on the compressed file passes; an incompressible part keeps the ratio cap far
    // above `max_unpacked`; only the inflated bytes cross the absolute cap.
    let limits = Limits {
        max_unpacked: 2 << 20,
        ..Limits::default()
    };
    let bytes = tar_gz(&[
        raw("noise", &noise(600 << 10)),
        raw("zeros", &zeros[..4 << 20]),
    ]);
    let compressed = bytes.len() as u64;
    assert!(compressed < limits.max_unpacked, "compressed: {compressed}");
    assert!(
        compressed * limits.max_ratio > limits.max_unpacked,
        "the ratio cap must not be the one that applies"
    );
    let path = s.work.path().join("inflates.plg");
    std::fs::write(&path, &bytes).unwrap();
    let absolute = |e: BundleError| match e {
        BundleError::TooLarge { why, limit, .. } => assert_eq!(
            (why, limit),
            ("the absolute cap", limits.max_unpacked),
            "refused for another reason"
        ),
        other => panic!("expected TooLarge, got {other:?}"),
    };
    absolute(Bundle::read(&path, &limits).unwrap_err());
    let opts = InstallOptions {
        limits,
        force: true,
        ..Default::default()
    };
    absolute(bundle_err(
        install_file(&path, &PluginsDir::new(s.plugins.path()), &opts).unwrap_err(),
    ));
    s.assert_untouched();
}

/// `len` bytes that do not compress (xorshift).
fn noise(len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in out.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    out
}

#[test]
fn truncated_and_corrupt_gzip_are_refused() {
    let s = Scene::new();
    let good = bundle_with(&hello_files(), &[]);
    for cut in [10, good.len() / 2, good.len() - 4] {
        let e = bundle_err(s.refuse(&good[..cut]));
        assert!(
            matches!(e, BundleError::Corrupt { .. }),
            "cut at {cut}: {e:?}"
        );
    }
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    for b in &mut flipped[mid..mid + 16] {
        *b ^= 0xff;
    }
    let e = bundle_err(s.refuse(&flipped));
    assert!(matches!(e, BundleError::Corrupt { .. }), "{e:?}");
    let e = bundle_err(s.refuse(b"not gzip at all"));
    assert!(matches!(e, BundleError::Corrupt { .. }), "{e:?}");
}

#[test]
fn a_checksum_mismatch_is_refused() {
    let s = Scene::new();
    let files = hello_files();
    let sums = checksums(&files);
    let mut altered = files.clone();
    altered.get_mut("libhello.so").unwrap()[100] ^= 1;
    let mut entries: Vec<Raw<'_>> = altered.iter().map(|(n, d)| raw(n, d)).collect();
    entries.push(raw("CHECKSUMS.sha256", &sums));
    let e = bundle_err(s.refuse(&tar_gz(&entries)));
    assert!(
        matches!(e, BundleError::ChecksumMismatch { ref entry, .. } if entry == "libhello.so"),
        "{e:?}"
    );
    // An entry the checksums do not list.
    let e = bundle_err(s.refuse(&tar_gz(&[
        raw("plugin.json", &files["plugin.json"]),
        raw("libhello.so", &files["libhello.so"]),
        raw("extra", b"x"),
        raw("CHECKSUMS.sha256", &sums),
    ])));
    assert!(matches!(e, BundleError::BadChecksums { .. }), "{e:?}");
}

// --- signatures --------------------------------------------------------------------------------

fn signed(files: &BTreeMap<String, Vec<u8>>, key: &SigningKey) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    for (n, d) in files {
        std::fs::write(dir.path().join(n), d).unwrap();
    }
    pack_dir(dir.path(), Some(key)).unwrap().bytes
}

fn require() -> InstallOptions {
    InstallOptions {
        force: true,
        require_signature: true,
        ..Default::default()
    }
}

fn entries_of(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        out.insert(name, data);
    }
    out
}

#[test]
fn a_signed_bundle_installs_only_with_a_trusted_key() {
    let s = Scene::new();
    let alice = SigningKey::from_bytes(&[1; 32]);
    let bob = SigningKey::from_bytes(&[2; 32]);
    let files = hello_files();
    let by_alice = signed(&files, &alice);

    // Unsigned, and signed by an unknown key: refused when signatures are required.
    assert!(matches!(
        s.install(&bundle_with(&files, &[]), &require()),
        Err(InstallError::Unsigned { .. })
    ));
    assert!(matches!(
        s.install(&by_alice, &require()),
        Err(InstallError::UnknownKey { .. })
    ));
    s.assert_untouched();

    Keyring::add(
        &PluginsDir::new(s.plugins.path()),
        "alice",
        &alice.verifying_key(),
    )
    .unwrap();
    s.install(&by_alice, &require()).unwrap();
    assert!(matches!(
        s.install(&signed(&files, &bob), &require()),
        Err(InstallError::UnknownKey { .. })
    ));

    // A flipped byte in the library, with checksums recomputed to match: the signature no
    // longer covers the checksums.
    let mut tampered = entries_of(&by_alice);
    tampered.get_mut("libhello.so").unwrap()[200] ^= 1;
    let sig = tampered.remove("SIGNATURE.ed25519").unwrap();
    tampered.remove("CHECKSUMS.sha256");
    let e = bundle_err(s.refuse(&bundle_with(&tampered, &[raw("SIGNATURE.ed25519", &sig)])));
    assert!(matches!(e, BundleError::BadSignature { .. }), "{e:?}");

    // A flipped byte in the signature itself.
    let mut sig_flipped = entries_of(&by_alice);
    let text = String::from_utf8(sig_flipped["SIGNATURE.ed25519"].clone()).unwrap();
    let last = text.trim_end().chars().last().unwrap();
    let swapped = if last == '0' { '1' } else { '0' };
    let text = format!(
        "{}{swapped}\n",
        &text.trim_end()[..text.trim_end().len() - 1]
    );
    sig_flipped.insert("SIGNATURE.ed25519".into(), text.into_bytes());
    let sums = sig_flipped.remove("CHECKSUMS.sha256").unwrap();
    let sig_entry = sig_flipped.remove("SIGNATURE.ed25519").unwrap();
    let mut entries: Vec<Raw<'_>> = sig_flipped.iter().map(|(n, d)| raw(n, d)).collect();
    entries.push(raw("CHECKSUMS.sha256", &sums));
    entries.push(raw("SIGNATURE.ed25519", &sig_entry));
    let e = bundle_err(s.refuse(&tar_gz(&entries)));
    assert!(matches!(e, BundleError::BadSignature { .. }), "{e:?}");

    // A valid signature taken from a different bundle.
    let mut other_files = files.clone();
    other_files.insert("plugin.json".into(), {
        let m = String::from_utf8(files["plugin.json"].clone()).unwrap();
        m.replace("Reads `name`", "Different text").into_bytes()
    });
    let other_sig = entries_of(&signed(&other_files, &alice))
        .remove("SIGNATURE.ed25519")
        .unwrap();
    let e = bundle_err(s.refuse(&bundle_with(
        &files,
        &[raw("SIGNATURE.ed25519", &other_sig)],
    )));
    assert!(matches!(e, BundleError::BadSignature { .. }), "{e:?}");
}

#[test]
fn the_directory_config_can_require_signatures() {
    let s = Scene::new();
    let cfg = PluginsDir::new(s.plugins.path()).config_file();
    std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    std::fs::write(&cfg, r#"{"require_signature": true}"#).unwrap();
    let opts = InstallOptions {
        force: true,
        ..Default::default()
    };
    assert!(matches!(
        s.install(&bundle_with(&hello_files(), &[]), &opts),
        Err(InstallError::Unsigned { .. })
    ));
    std::fs::write(&cfg, r#"{"require_signatures": true}"#).unwrap();
    assert!(matches!(
        s.install(&bundle_with(&hello_files(), &[]), &opts),
        Err(InstallError::Config { .. })
    ));
}

// --- install / uninstall -------------------------------------------------------------------------

#[test]
fn packing_is_byte_identical_and_installs_side_by_side() {
    let staged = TempPluginsDir::default();
    let one = staged.stage("hello");
    let a = pack_dir(&one, None).unwrap();
    assert_packed_headers_are_neutral(&a.bytes);
    // Change everything of the files but their contents: times, permissions, and the
    // directory they sit in. None of it may reach the bundle.
    let elsewhere = TempPluginsDir::default();
    let copy = elsewhere.stage("hello");
    for e in std::fs::read_dir(&copy).unwrap() {
        let path = e.unwrap().path();
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(
            std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1 << 30),
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o751))
                .unwrap();
        }
    }
    let b = pack_dir(&copy, None).unwrap();
    assert_packed_headers_are_neutral(&b.bytes);
    assert!(
        a.bytes == b.bytes,
        "packing the same files twice gave different bytes"
    );
    assert_eq!(a.file_name(), "hello-1.2.0.plg");

    let target = TempPluginsDir::default();
    let work = tempfile::tempdir().unwrap();
    let v1 = work.path().join("v1.plg");
    std::fs::write(&v1, &a.bytes).unwrap();
    let two = staged.stage_variant("hello", "2.0.0");
    let v2 = work.path().join("v2.plg");
    std::fs::write(&v2, pack_dir(&two, None).unwrap().bytes).unwrap();
    install_file(
        &v1,
        &PluginsDir::new(target.path()),
        &InstallOptions::default(),
    )
    .unwrap();
    install_file(
        &v2,
        &PluginsDir::new(target.path()),
        &InstallOptions::default(),
    )
    .unwrap();
    assert!(matches!(
        install_file(
            &v1,
            &PluginsDir::new(target.path()),
            &InstallOptions::default()
        ),
        Err(InstallError::AlreadyInstalled { .. })
    ));
    let manager = PluginManager::new(target.path());
    assert_eq!(manager.load_all().loaded.len(), 2);
    drop(manager);

    let removed = uninstall(
        &PluginsDir::new(target.path()),
        "hello",
        Some(&plg_loader::semver::Version::new(2, 0, 0)),
    )
    .unwrap();
    assert_eq!(removed.len(), 1);
    let manager = PluginManager::new(target.path());
    let report = manager.load_all();
    assert_eq!(report.loaded.len(), 1);
    assert_eq!(report.loaded[0].version().to_string(), "1.2.0");
    drop(manager);
    uninstall(&PluginsDir::new(target.path()), "hello", None).unwrap();
    assert!(!target.path().join("hello").exists());
    assert!(matches!(
        uninstall(&PluginsDir::new(target.path()), "hello", None),
        Err(InstallError::NotInstalled { .. })
    ));
}

#[test]
fn a_crash_mid_swap_is_recovered_and_uninstall_spares_work_dirs() {
    let s = Scene::new();
    let parent = s.plugins.path().join("hello");
    // Simulate a crash between the two renames of a --force swap (where the platform has no
    // atomic exchange) by a process that is gone, and an install in progress in this live
    // process.
    let dead = u32::MAX - 1;
    let in_progress = format!(".staging-{}-2-0", std::process::id());
    std::fs::rename(
        parent.join("1.2.0"),
        parent.join(format!(".replaced-1.2.0-{dead}-1-0")),
    )
    .unwrap();
    std::fs::create_dir(parent.join(&in_progress)).unwrap();
    let good = s.work.path().join("again.plg");
    std::fs::write(&good, bundle_with(&hello_files(), &[])).unwrap();
    // Without --force the recovered copy is found: "already installed".
    assert!(matches!(
        install_file(
            &good,
            &PluginsDir::new(s.plugins.path()),
            &InstallOptions::default()
        ),
        Err(InstallError::AlreadyInstalled { .. })
    ));
    assert!(parent.join("1.2.0/plugin.json").is_file());
    // Uninstalling every version leaves an install in progress alone.
    let removed = uninstall(&PluginsDir::new(s.plugins.path()), "hello", None).unwrap();
    assert_eq!(removed, [parent.join("1.2.0")]);
    assert!(parent.join(&in_progress).is_dir());
}

#[test]
fn readers_never_see_a_version_missing_during_force_installs() {
    use std::sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    };
    let s = Scene::new();
    let manifest = s.plugins.path().join("hello/1.2.0/plugin.json");
    let (stop, misses, looks) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let reader = {
        let (stop, misses, looks, manifest) = (
            stop.clone(),
            misses.clone(),
            looks.clone(),
            manifest.clone(),
        );
        std::thread::spawn(move || {
            // Bounded: the reader gives up after ten minutes even if the installs panicked.
            let started = std::time::Instant::now();
            while !stop.load(Ordering::Relaxed) && started.elapsed().as_secs() < 600 {
                looks.fetch_add(1, Ordering::Relaxed);
                if !manifest.is_file() {
                    misses.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let force = InstallOptions {
        force: true,
        ..Default::default()
    };
    let bundle = s.work.path().join("again.plg");
    std::fs::write(&bundle, bundle_with(&hello_files(), &[])).unwrap();
    for _ in 0..30 {
        let installed = install_file(&bundle, &PluginsDir::new(s.plugins.path()), &force).unwrap();
        assert!(
            installed.replaced,
            "--force over an installed version replaces it"
        );
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    assert!(looks.load(Ordering::Relaxed) > 0);
    #[cfg(target_os = "linux")]
    assert_eq!(
        misses.load(Ordering::Relaxed),
        0,
        "a reader found no plugin.json"
    );
    s.assert_untouched();
}

#[test]
fn an_oversized_bundle_file_is_refused_before_it_is_read_whole() {
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("big.plg");
    std::fs::write(&path, vec![0x1fu8; 4096]).unwrap();
    let limits = Limits {
        max_unpacked: 1000,
        ..Limits::default()
    };
    match Bundle::read(&path, &limits) {
        Err(BundleError::TooLarge { why, .. }) => assert!(why.contains("compressed file"), "{why}"),
        other => panic!("{other:?}"),
    }
}

/// The hello files with the library replaced by `size` zero bytes (read, never loaded).
fn with_zero_library(size: usize) -> BTreeMap<String, Vec<u8>> {
    let mut files = hello_files();
    let lib = files.keys().find(|k| k.ends_with(".so")).unwrap().clone();
    files.insert(lib, vec![0; size]);
    files
}

#[test]
fn the_absolute_cap_applies_to_the_decompressed_size() {
    let bytes = bundle_with(&with_zero_library(3 << 20), &[]);
    let limits = Limits {
        max_unpacked: 2 << 20,
        max_ratio: 1_000_000,
        ..Limits::default()
    };
    assert!(
        (bytes.len() as u64) < limits.max_unpacked,
        "small compressed"
    );
    match Bundle::from_bytes(&bytes, Path::new("x.plg"), &limits) {
        Err(BundleError::TooLarge { why, limit, .. }) => {
            assert_eq!((why, limit), ("the absolute cap", 2 << 20))
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[test]
fn small_bundles_may_always_reach_one_mib() {
    // A few KiB compressed: 200x that is far below 1 MiB, yet 900 KiB unpacks.
    let bytes = bundle_with(&with_zero_library(900 << 10), &[]);
    assert!(bytes.len() * 200 < 900 << 10);
    let bundle = Bundle::from_bytes(&bytes, Path::new("x.plg"), &Limits::default()).unwrap();
    assert!(bundle.entries().iter().any(|e| e.size == 900 << 10));
    // Past the floor, the ratio cap applies.
    let bytes = bundle_with(&with_zero_library(3 << 20), &[]);
    match Bundle::from_bytes(&bytes, Path::new("x.plg"), &Limits::default()) {
        Err(BundleError::TooLarge { why, limit, .. }) => {
            assert_eq!((why, limit), ("its ratio to the compressed size", 1 << 20))
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[test]
fn a_directory_entry_a_missing_listed_entry_and_no_checksums_are_refused() {
    let limits = Limits::default();
    let read = |bytes: &[u8]| Bundle::from_bytes(bytes, Path::new("x.plg"), &limits);
    let dir_entry = Raw {
        kind: tar::EntryType::Directory,
        ..raw("sub", b"")
    };
    assert!(matches!(
        read(&bundle_with(&hello_files(), &[dir_entry])),
        Err(BundleError::NotFlat { entry, .. }) if entry == "sub"
    ));
    // Checksums that list a file the bundle lacks.
    let files = hello_files();
    let mut listed = files.clone();
    listed.insert("ghost.txt".into(), b"boo".to_vec());
    let sums = checksums(&listed);
    let mut entries: Vec<Raw<'_>> = files.iter().map(|(n, d)| raw(n, d)).collect();
    entries.push(raw("CHECKSUMS.sha256", &sums));
    match read(&tar_gz(&entries)) {
        Err(BundleError::BadChecksums { problem, .. }) => {
            assert!(problem.contains("ghost.txt"), "{problem}")
        }
        other => panic!("expected BadChecksums, got {other:?}"),
    }
    // No checksums file at all.
    let entries: Vec<Raw<'_>> = files.iter().map(|(n, d)| raw(n, d)).collect();
    assert!(matches!(
        read(&tar_gz(&entries)),
        Err(BundleError::Missing { entry, .. }) if entry == "CHECKSUMS.sha256"
    ));
}

/// Determinism is in the bytes: no time, owner or name in the tar or gzip headers.
#[test]
fn packed_headers_carry_no_time_or_owner() {
    let staged = TempPluginsDir::default();
    let packed = pack_dir(&staged.stage("hello"), None).unwrap();
    assert_packed_headers_are_neutral(&packed.bytes);
}

/// The gzip header has no name and mtime 0; every tar entry is a regular file with mtime 0,
/// uid/gid 0, mode 0644 and empty owner names, and the entries are sorted by name.
fn assert_packed_headers_are_neutral(gz: &[u8]) {
    assert_eq!(&gz[..2], &[0x1f, 0x8b]);
    assert_eq!(gz[3] & 0x08, 0, "no file name in the gzip header");
    assert_eq!(&gz[4..8], &[0, 0, 0, 0], "gzip mtime is 0");
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gz));
    let mut names = Vec::new();
    for e in archive.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        names.push(e.path().unwrap().display().to_string());
        assert_eq!(h.mtime().unwrap(), 0);
        assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
        assert_eq!(h.mode().unwrap(), 0o644);
        assert_eq!(h.username().unwrap().unwrap_or(""), "");
        assert_eq!(h.groupname().unwrap().unwrap_or(""), "");
        assert_eq!(h.entry_type(), tar::EntryType::Regular);
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "entries sorted by name");
}

#[test]
fn force_reports_that_it_replaced() {
    let s = Scene::new();
    let path = s.work.path().join("again.plg");
    std::fs::write(&path, bundle_with(&hello_files(), &[])).unwrap();
    let dir = PluginsDir::new(s.plugins.path());
    let opts = InstallOptions {
        force: true,
        ..Default::default()
    };
    let installed = install_file(&path, &dir, &opts).unwrap();
    assert!(installed.replaced);
    assert_eq!(installed.dir, s.plugins.path().join("hello/1.2.0"));
    s.assert_untouched();
}
