//! Structure-aware fuzzing of `plg install`: a [`Case`] describes a bundle (its entries,
//! their names and types, its checksums, its signature, its compression) and the plugins
//! directory it goes into (signature policy, keyring, an installed copy, a crashed
//! install's leftovers). [`Harness::run`] builds the `.plg`, installs it into a scratch
//! plugins directory and checks:
//!
//! - nothing outside the plugins directory changed;
//! - a refused install left the plugins directory byte-for-byte as it was (a dead
//!   process's leftovers may have been cleaned), with no leftovers of its own;
//! - a successful install left exactly the bundle's files in `NAME/VERSION`, honoured the
//!   signature policy, and changed nothing else.
//!
//! A broken invariant panics, which the fuzzer reports. The fuzz target `install` and the
//! test suite's corpus replay share this crate.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use plg_loader::{
    install::{install_file, InstallError, InstallOptions, Installed},
    keys::Keyring,
    PluginsDir,
};

mod archive;
pub mod case;
pub mod layer;
mod snapshot;

pub use archive::signer;
pub use case::Case;
use case::SignatureCase;
use snapshot::{snapshot, Node, Tree};

/// A real plugin library, so that cases can reach a successful install.
#[derive(Debug, Clone)]
pub struct RealPlugin {
    name: String,
    version: String,
    library_name: String,
    bytes: Vec<u8>,
}

impl RealPlugin {
    /// A plugin built at `library`, whose name and version its crate's `manifest`
    /// (`plugins/hello/plugin.json`) gives.
    pub fn new(library: &Path, manifest: &Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(manifest)?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        Ok(Self {
            name: json["name"].as_str().unwrap_or_default().to_owned(),
            version: json["version"].as_str().unwrap_or_default().to_owned(),
            library_name: library
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            bytes: std::fs::read(library)?,
        })
    }
}

/// Runs cases.
#[derive(Debug, Clone, Default)]
pub struct Harness {
    real: Option<RealPlugin>,
}

/// The process id in the leftovers a case plants: no process has it.
const DEAD_PID: u32 = 4_000_000_000;

impl Harness {
    /// A harness whose [`case::LibraryCase::Real`] is `real` (without one, no case installs).
    pub fn new(real: Option<RealPlugin>) -> Self {
        Self { real }
    }

    /// Builds the case's bundle, installs it into a scratch plugins directory and checks
    /// the invariants (panicking if one breaks). Returns what install returned.
    pub fn run(&self, case: &Case) -> Result<Installed, InstallError> {
        let (name, version, library_name, library) = match &self.real {
            Some(r) => (
                r.name.as_str(),
                r.version.as_str(),
                r.library_name.as_str(),
                r.bytes.as_slice(),
            ),
            None => ("fz", "1.0.0", "libfz.so", b"\x7fELF".as_slice()),
        };
        let scratch = tempfile::tempdir().expect("a scratch directory");
        let root = scratch.path();
        let outside = root.join("outside/target");
        std::fs::create_dir_all(root.join("outside")).expect("scratch is writable");
        std::fs::write(&outside, b"sentinel").expect("scratch is writable");

        let plugins = PluginsDir::new(root.join("plugins"));
        std::fs::create_dir_all(plugins.config_dir()).expect("scratch is writable");
        if case.require_signature {
            std::fs::write(plugins.config_file(), r#"{"require_signature": true}"#)
                .expect("scratch is writable");
        }
        if case.trust_signer {
            Keyring::add(&plugins, "fuzz", &signer().verifying_key()).expect("keyring");
        }
        let plugin_dir = plugins.path().join(name);
        if case.installed_before {
            let dir = plugin_dir.join(version);
            std::fs::create_dir_all(&dir).expect("scratch is writable");
            std::fs::write(dir.join("plugin.json"), b"{\"installed\": \"before\"}")
                .expect("scratch is writable");
            std::fs::write(dir.join(library_name), b"old").expect("scratch is writable");
        }
        if case.debris {
            for kind in ["staging", "removing"] {
                let d = plugin_dir.join(format!(".{kind}-{DEAD_PID}-1-0"));
                std::fs::create_dir_all(&d).expect("scratch is writable");
                std::fs::write(d.join(library_name), b"half").expect("scratch is writable");
            }
        }

        let built = archive::build(
            case,
            &archive::Inputs {
                name,
                version,
                library_name,
                library,
                outside: &outside,
            },
        );
        let bundle = root.join("in/bundle.plg");
        std::fs::create_dir_all(root.join("in")).expect("scratch is writable");
        std::fs::write(&bundle, &built.bytes).expect("scratch is writable");

        let before = snapshot(root);
        let result = install_file(
            &bundle,
            &plugins,
            &InstallOptions {
                force: case.force,
                ..InstallOptions::default()
            },
        );
        let after = snapshot(root);

        let in_plugins = |k: &str| k == "plugins" || k.starts_with("plugins/");
        let debris = |k: &str| k.contains(&format!("-{DEAD_PID}-"));
        let ours = |k: &str| k.contains(&format!("-{}-", std::process::id()));
        for (k, v) in &before {
            if !in_plugins(k) {
                assert_eq!(
                    after.get(k),
                    Some(v),
                    "`{k}` outside the plugins dir changed"
                );
            }
        }
        for k in after.keys() {
            assert!(
                in_plugins(k) || before.contains_key(k),
                "`{k}` appeared outside the plugins dir"
            );
            assert!(!ours(k), "install left `{k}` behind");
        }

        match &result {
            Err(_) => unchanged_but_debris(&before, &after, &debris),
            Ok(installed) => {
                let dest = rel(root, &installed.dir);
                // Where the bundle's own manifest says, not where install says it put it.
                let json: serde_json::Value = built
                    .manifest
                    .as_deref()
                    .and_then(|m| serde_json::from_slice(m).ok())
                    .expect("an installed bundle has a JSON manifest");
                let (want_name, want_version) = (
                    json["name"].as_str().expect("a name"),
                    plg_loader::semver::Version::parse(
                        json["version"].as_str().expect("a version"),
                    )
                    .expect("a semver version"),
                );
                assert_eq!(
                    (
                        installed.manifest.name.as_str(),
                        &installed.manifest.version
                    ),
                    (want_name, &want_version),
                    "installed as another plugin than the bundle's manifest names"
                );
                assert_eq!(
                    dest,
                    format!("plugins/{want_name}/{want_version}"),
                    "installed somewhere else"
                );
                // A signer is reported only for a signature by the trusted key, and always for
                // a good one.
                match &installed.signed_by {
                    Some(signer) => assert!(
                        signer == "fuzz"
                            && case.trust_signer
                            && matches!(
                                case.signature,
                                SignatureCase::Good
                                    | SignatureCase::FlipBit(_)
                                    | SignatureCase::Truncated(_)
                            ),
                        "reported signed by {signer:?} for {:?}",
                        case.signature
                    ),
                    None => assert!(
                        !(case.trust_signer && matches!(case.signature, SignatureCase::Good)),
                        "a good signature by a trusted key was not recognised"
                    ),
                }
                assert!(
                    !(case.installed_before
                        && !case.force
                        && dest == format!("plugins/{name}/{version}")),
                    "replaced an installed copy without force"
                );
                if case.require_signature {
                    assert!(
                        installed.signed_by.is_some(),
                        "installed unsigned where signatures are required"
                    );
                }
                exactly_the_bundle(&after, &dest, &built.files);
                let outside_dest = |k: &&String| *k != &dest && !k.starts_with(&format!("{dest}/"));
                let b: Tree = before
                    .iter()
                    .filter(|(k, _)| outside_dest(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let a: Tree = after
                    .iter()
                    .filter(|(k, _)| outside_dest(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let parent = format!("plugins/{}", installed.manifest.name);
                for (k, v) in &a {
                    assert!(
                        b.get(k) == Some(v) || (*k == parent && matches!(v, Node::Dir(_))),
                        "`{k}` changed beside the installed copy"
                    );
                }
                for k in b.keys() {
                    assert!(
                        a.contains_key(k) || debris(k),
                        "`{k}` vanished beside the installed copy"
                    );
                }
                if case.debris {
                    assert!(
                        !a.keys().any(|k| debris(k)),
                        "a dead install's leftovers were not cleaned"
                    );
                }
            }
        }
        result
    }
}

fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .map(PathBuf::from)
        .unwrap_or_else(|_| path.to_owned())
        .to_string_lossy()
        .into_owned()
}

/// A refused install: the tree is as it was, but for leftovers of a dead install, which may
/// have been cleaned.
fn unchanged_but_debris(before: &Tree, after: &Tree, debris: &dyn Fn(&str) -> bool) {
    for (k, v) in after {
        assert_eq!(before.get(k), Some(v), "a refused install changed `{k}`");
    }
    for k in before.keys() {
        assert!(
            after.contains_key(k) || debris(k) || only_debris(before, k, debris),
            "a refused install removed `{k}`"
        );
    }
}

/// `k` is a directory that held nothing but a dead install's leftovers: cleaning them may
/// remove it too.
fn only_debris(before: &Tree, k: &str, debris: &dyn Fn(&str) -> bool) -> bool {
    let prefix = format!("{k}/");
    let mut inside = before.keys().filter(|c| c.starts_with(&prefix)).peekable();
    inside.peek().is_some() && inside.all(|c| debris(c))
}

/// `dest` holds exactly `files`, regular and unlinked.
fn exactly_the_bundle(
    after: &Tree,
    dest: &str,
    files: &std::collections::BTreeMap<String, Vec<u8>>,
) {
    let prefix = format!("{dest}/");
    let got: Vec<(&str, &Node)> = after
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|n| (n, v)))
        .collect();
    assert_eq!(
        got.len(),
        files.len(),
        "installed {got:?}, not the bundle's files"
    );
    for (name, node) in got {
        match node {
            Node::File(_, data) => assert_eq!(
                Some(data),
                files.get(name),
                "`{name}` differs from the bundle"
            ),
            other => panic!("installed `{name}` as {other:?}"),
        }
    }
}
