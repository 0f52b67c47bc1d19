//! The fuzzers' regression corpus, replayed: every input under `tests/fuzz-corpus/` goes
//! through the same harness and checks as under `cargo fuzz` (`fuzz/`), so what a fuzzer
//! once found stays fixed. Plus named cases that pin down what the harness itself checks.

use std::path::PathBuf;

use arbitrary::{Arbitrary, Unstructured};
use plg_fuzz_harness::{
    case::{DuplicateOf, EntryCase, KindCase, LinkTarget, NameCase, SignatureCase},
    layer::Layer,
    Case, Harness, RealPlugin,
};
use plg_loader::{
    bundle::{Bundle, BundleError, Limits},
    install::InstallError,
    Manifest,
};
use plg_tests::{library, workspace_root, Profile};

fn harness() -> Harness {
    let lib = library(Profile::Debug, "hello");
    let manifest = workspace_root().join("plugins/hello/plugin.json");
    Harness::new(Some(
        RealPlugin::new(&lib, &manifest).expect("hello is built"),
    ))
}

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = workspace_root().join("tests/fuzz-corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

/// Decodes an input the way `fuzz_target!(|case: Case| …)` does.
fn decode(bytes: &[u8]) -> Option<Case> {
    Case::arbitrary_take_rest(Unstructured::new(bytes)).ok()
}

fn base() -> Case {
    Case::well_formed()
}

#[test]
fn the_install_corpus_replays_with_every_invariant_holding() {
    let h = harness();
    let inputs = corpus("install");
    let mut reached = std::collections::BTreeSet::new();
    let mut decoded = 0;
    for (_, bytes) in &inputs {
        let Some(case) = decode(bytes) else { continue };
        decoded += 1;
        // The harness panics, naming the broken invariant, if one breaks.
        reached.insert(Layer::of(&h.run(&case)));
    }
    assert!(
        decoded >= 20,
        "only {decoded} corpus inputs decode to a case"
    );
    // The corpus ends in every layer, from the gzip stream to a successful install: a corpus
    // that stopped at the gzip header would fail here.
    for layer in Layer::ALL {
        assert!(
            reached.contains(&layer),
            "no corpus input ends at {layer:?}: {reached:?}"
        );
    }
}

#[test]
fn the_bundle_and_manifest_corpora_replay_without_panicking() {
    for (path, bytes) in corpus("bundle") {
        let limits = Limits {
            max_unpacked: 8 << 20,
            ..Limits::default()
        };
        let _ = Bundle::from_bytes(&bytes, &path, &limits);
    }
    for (_, bytes) in corpus("manifest") {
        if let Ok(text) = std::str::from_utf8(&bytes) {
            if let Ok(m) = Manifest::from_json(text, "fuzz/plugin.json") {
                assert_eq!(
                    Manifest::from_json(&m.to_json(), "fuzz/plugin.json").unwrap(),
                    m
                );
            }
        }
    }
}

#[test]
fn a_well_formed_case_installs_exactly_its_files_and_cleans_a_dead_installs_leftovers() {
    let h = harness();
    let mut case = base();
    case.debris = true;
    case.extra = vec![EntryCase {
        name: NameCase::Plain("README".into()),
        kind: KindCase::File,
        data: b"read me".to_vec(),
        pax: true,
    }];
    let installed = h.run(&case).expect("a well-formed bundle installs");
    assert!(!installed.replaced);
    // The same bundle over an installed copy: refused without force, replaced with it.
    case.installed_before = true;
    assert!(matches!(
        h.run(&case),
        Err(InstallError::AlreadyInstalled { .. })
    ));
    case.force = true;
    assert!(h.run(&case).expect("force replaces").replaced);
}

#[test]
fn the_signature_policy_is_reached_and_applied() {
    let h = harness();
    let mut case = base();
    case.require_signature = true;
    assert!(matches!(h.run(&case), Err(InstallError::Unsigned { .. })));
    case.signature = SignatureCase::OtherKey;
    case.trust_signer = true;
    assert!(matches!(h.run(&case), Err(InstallError::UnknownKey { .. })));
    case.signature = SignatureCase::Good;
    assert_eq!(
        h.run(&case)
            .expect("signed by a trusted key")
            .signed_by
            .as_deref(),
        Some("fuzz")
    );
    case.signature = SignatureCase::FlipBit(200);
    assert!(matches!(
        h.run(&case),
        Err(InstallError::Bundle(BundleError::BadSignature { .. }))
    ));
}

#[test]
fn hostile_entries_are_refused_with_their_own_errors() {
    let h = harness();
    let with = |name: NameCase, kind: KindCase| {
        let mut case = base();
        case.extra = vec![EntryCase {
            name,
            kind,
            data: b"x".to_vec(),
            pax: false,
        }];
        h.run(&case)
    };
    let bundle_err = |r: Result<_, InstallError>| match r {
        Err(InstallError::Bundle(b)) => b,
        other => panic!("expected a bundle error, got {other:?}"),
    };
    assert!(matches!(
        bundle_err(with(NameCase::ParentOf("x".into()), KindCase::File)),
        BundleError::PathTraversal { .. }
    ));
    assert!(matches!(
        bundle_err(with(NameCase::Absolute, KindCase::File)),
        BundleError::AbsolutePath { .. }
    ));
    assert!(matches!(
        bundle_err(with(
            NameCase::Plain("l".into()),
            KindCase::Symlink(LinkTarget::Outside)
        )),
        BundleError::Link { .. }
    ));
    assert!(matches!(
        bundle_err(with(
            NameCase::Plain("l".into()),
            KindCase::Hardlink(LinkTarget::Manifest)
        )),
        BundleError::Link { .. }
    ));
    assert!(matches!(
        bundle_err(with(NameCase::Plain("p".into()), KindCase::Fifo)),
        BundleError::SpecialFile { .. }
    ));
    assert!(matches!(
        bundle_err(with(
            NameCase::Nested("a".into(), "b".into()),
            KindCase::File
        )),
        BundleError::NotFlat { .. }
    ));
    assert!(matches!(
        bundle_err(with(
            NameCase::Duplicate(DuplicateOf::Manifest),
            KindCase::File
        )),
        BundleError::Duplicate { .. }
    ));
    // A long name reaches the checksums (it is a plain name, but not listed correctly).
    let long = with(NameCase::Long(20), KindCase::File);
    assert!(
        long.is_ok() || matches!(long, Err(InstallError::Bundle(_))),
        "{long:?}"
    );
}
