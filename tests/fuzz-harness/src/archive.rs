//! Turns a [`Case`] into the bytes of a `.plg` file: tar headers written by hand (so names
//! can be `..`, absolute, long or in pax records, and entries can be links, pipes or
//! devices), checksums computed over what is really there and then broken as the case says,
//! a signature made with a fixed key, and the whole gzipped.

use std::{collections::BTreeMap, io::Write as _, path::Path};

use ed25519_dalek::{Signer as _, SigningKey};
use sha2::{Digest as _, Sha256};
use tar::{EntryType, Header};

use crate::case::{
    Case, ChecksumsCase, DuplicateOf, EntryCase, KindCase, LibraryCase, LinkTarget, ManifestCase,
    NameCase, PathCase, SignatureCase, Wrapping, MAX_EXTRA,
};

/// The key the harness signs with (trusted when the case says so).
pub fn signer() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

fn other_signer() -> SigningKey {
    SigningKey::from_bytes(&[9; 32])
}

/// What the archive is built from, besides the case.
pub(crate) struct Inputs<'a> {
    /// The plugin name and version a matching manifest gives.
    pub name: &'a str,
    pub version: &'a str,
    /// The library entry's name and the bytes [`LibraryCase::Real`] gives.
    pub library_name: &'a str,
    pub library: &'a [u8],
    /// A file outside the plugins directory that hostile names and links point at.
    pub outside: &'a Path,
}

/// A built bundle.
pub(crate) struct Built {
    pub bytes: Vec<u8>,
    /// The regular files with plain names, other than the checksums and the signature: what a
    /// successful install must leave, and nothing else.
    pub files: BTreeMap<String, Vec<u8>>,
    /// The `plugin.json` entry, if the bundle has one.
    pub manifest: Option<Vec<u8>>,
}

/// One tar entry before it is written.
struct Item {
    name: Vec<u8>,
    kind: EntryType,
    data: Vec<u8>,
    link: Option<Vec<u8>>,
    pax: bool,
}

impl Item {
    fn file(name: &str, data: Vec<u8>) -> Self {
        Item {
            name: name.as_bytes().to_vec(),
            kind: EntryType::Regular,
            data,
            link: None,
            pax: false,
        }
    }
}

pub(crate) fn build(case: &Case, inputs: &Inputs<'_>) -> Built {
    let lib_name = match &case.library {
        LibraryCase::Real => inputs.library_name,
        _ => "libfz.so",
    };
    let mut items = Vec::new();
    let manifest_bytes = manifest(&case.manifest, inputs, lib_name);
    if let Some(manifest) = &manifest_bytes {
        items.push(Item::file("plugin.json", manifest.clone()));
    }
    match &case.library {
        LibraryCase::Real => items.push(Item::file(lib_name, inputs.library.to_vec())),
        LibraryCase::Bytes(b) => items.push(Item::file(lib_name, b.clone())),
        LibraryCase::Missing => {}
    }
    for e in case.extra.iter().take(MAX_EXTRA) {
        items.push(extra(e, inputs, lib_name));
    }

    // Checksums over what is there, as `plg bundle` computes them.
    let mut lines: Vec<(String, String)> = items
        .iter()
        .map(|i| {
            (
                hex::encode(Sha256::digest(&i.data)),
                String::from_utf8_lossy(&i.name).into_owned(),
            )
        })
        .collect();
    lines.sort_by(|a, b| a.1.cmp(&b.1));
    let checksums = checksums(&case.checksums, lines);
    if let Some(c) = &checksums {
        items.push(Item::file("CHECKSUMS.sha256", c.clone()));
    }
    if let Some(s) = signature(&case.signature, checksums.as_deref().unwrap_or_default()) {
        items.push(Item::file("SIGNATURE.ed25519", s));
    }
    if !items.is_empty() {
        let n = usize::from(case.rotate) % items.len();
        items.rotate_left(n);
    }

    let mut files = BTreeMap::new();
    for i in &items {
        let Ok(name) = std::str::from_utf8(&i.name) else {
            continue;
        };
        let plain = !name.is_empty() && name != "." && name != ".." && !name.contains('/');
        if i.kind == EntryType::Regular
            && plain
            && name != "CHECKSUMS.sha256"
            && name != "SIGNATURE.ed25519"
        {
            files.insert(name.to_owned(), i.data.clone());
        }
    }
    Built {
        bytes: wrap(&case.wrapping, &tar_stream(&items, &case.wrapping)),
        files,
        manifest: manifest_bytes,
    }
}

fn manifest(case: &ManifestCase, inputs: &Inputs<'_>, lib_name: &str) -> Option<Vec<u8>> {
    let json = |name: &str, version: &str, source: serde_json::Value| {
        serde_json::json!({ "name": name, "version": version, "source": source })
            .to_string()
            .into_bytes()
    };
    Some(match case {
        ManifestCase::Matching => json(
            inputs.name,
            inputs.version,
            serde_json::json!({ "mode": "local_so", "path": lib_name }),
        ),
        ManifestCase::Fields {
            name,
            version,
            path,
            remote_git,
        } => {
            let source = match remote_git {
                Some(url) => serde_json::json!({ "mode": "remote_git", "path": url }),
                None => {
                    let path = match path {
                        PathCase::Library => lib_name.to_owned(),
                        PathCase::Stem => lib_name.trim_end_matches(".so").to_owned(),
                        PathCase::Parent => format!("../{lib_name}"),
                        PathCase::Absolute => inputs.outside.display().to_string(),
                        PathCase::Text(t) => t.clone(),
                    };
                    serde_json::json!({ "mode": "local_so", "path": path })
                }
            };
            json(name, version, source)
        }
        ManifestCase::Raw(bytes) => bytes.clone(),
        ManifestCase::Missing => return None,
    })
}

fn plain(s: &str) -> String {
    let p: String = s
        .chars()
        .filter(|c| *c != '/' && *c != '\0')
        .take(40)
        .collect();
    if p.is_empty() || p == "." || p == ".." {
        "x".into()
    } else {
        p
    }
}

fn extra(e: &EntryCase, inputs: &Inputs<'_>, lib_name: &str) -> Item {
    let outside = inputs.outside.display().to_string();
    let name: Vec<u8> = match &e.name {
        NameCase::Plain(s) => plain(s).into_bytes(),
        NameCase::Parent => b"..".to_vec(),
        NameCase::ParentOf(s) => format!("../{}", plain(s)).into_bytes(),
        NameCase::Absolute => outside.clone().into_bytes(),
        NameCase::Nested(a, b) => format!("{}/{}", plain(a), plain(b)).into_bytes(),
        NameCase::Long(n) => "l".repeat(101 + usize::from(*n)).into_bytes(),
        NameCase::Empty => Vec::new(),
        NameCase::Duplicate(of) => match of {
            DuplicateOf::Manifest => b"plugin.json".to_vec(),
            DuplicateOf::DotManifest => b"./plugin.json".to_vec(),
            DuplicateOf::Library => lib_name.as_bytes().to_vec(),
            DuplicateOf::Checksums => b"CHECKSUMS.sha256".to_vec(),
            DuplicateOf::Signature => b"SIGNATURE.ed25519".to_vec(),
        },
        NameCase::Raw(b) => b.iter().copied().filter(|b| *b != 0).take(200).collect(),
    };
    let target = |t: &LinkTarget| -> Vec<u8> {
        match t {
            LinkTarget::Outside => outside.clone().into_bytes(),
            LinkTarget::Parent => b"../../..".to_vec(),
            LinkTarget::Manifest => b"plugin.json".to_vec(),
            LinkTarget::Text(s) => s.bytes().filter(|b| *b != 0).take(90).collect(),
        }
    };
    let (kind, link) = match &e.kind {
        KindCase::File => (EntryType::Regular, None),
        KindCase::Dir => (EntryType::Directory, None),
        KindCase::Symlink(t) => (EntryType::Symlink, Some(target(t))),
        KindCase::Hardlink(t) => (EntryType::Link, Some(target(t))),
        KindCase::Fifo => (EntryType::Fifo, None),
        KindCase::CharDevice => (EntryType::Char, None),
    };
    let data = if kind == EntryType::Regular {
        e.data.clone()
    } else {
        Vec::new()
    };
    Item {
        name,
        kind,
        data,
        link,
        pax: e.pax,
    }
}

fn checksums(case: &ChecksumsCase, mut lines: Vec<(String, String)>) -> Option<Vec<u8>> {
    let mut sep = "  ";
    let mut end = "\n";
    match case {
        ChecksumsCase::Correct => {}
        ChecksumsCase::Missing => return None,
        ChecksumsCase::WrongHash(i) => {
            if !lines.is_empty() {
                let n = usize::from(*i) % lines.len();
                let h = &mut lines[n].0;
                let flipped = if h.starts_with('0') { "1" } else { "0" };
                h.replace_range(0..1, flipped);
            }
        }
        ChecksumsCase::DropLine(i) => {
            if !lines.is_empty() {
                let n = usize::from(*i) % lines.len();
                lines.remove(n);
            }
        }
        ChecksumsCase::ExtraLine(name) => {
            lines.push((hex::encode(Sha256::digest(b"")), plain(name)));
            lines.sort_by(|a, b| a.1.cmp(&b.1));
        }
        ChecksumsCase::Reversed => lines.reverse(),
        ChecksumsCase::CrLf => end = "\r\n",
        ChecksumsCase::OneSpace => sep = " ",
        ChecksumsCase::Raw(b) => return Some(b.clone()),
    }
    Some(
        lines
            .iter()
            .map(|(h, n)| format!("{h}{sep}{n}{end}"))
            .collect::<String>()
            .into_bytes(),
    )
}

fn signature(case: &SignatureCase, checksums: &[u8]) -> Option<Vec<u8>> {
    let signed = |key: &SigningKey| {
        let message = [b"plg-bundle-v1\n".as_slice(), checksums].concat();
        format!(
            "plg-signature-v1\npublic-key: {}\nsignature: {}\n",
            hex::encode(key.verifying_key().as_bytes()),
            hex::encode(key.sign(&message).to_bytes())
        )
        .into_bytes()
    };
    Some(match case {
        SignatureCase::None => return None,
        SignatureCase::Good => signed(&signer()),
        SignatureCase::OtherKey => signed(&other_signer()),
        SignatureCase::FlipBit(bit) => {
            let mut s = signed(&signer());
            let i = usize::from(*bit / 8) % s.len();
            s[i] ^= 1 << (bit % 8);
            s
        }
        SignatureCase::Truncated(n) => {
            let mut s = signed(&signer());
            s.truncate(s.len().saturating_sub(usize::from(*n) + 1));
            s
        }
        SignatureCase::Raw(b) => b.clone(),
    })
}

/// A pax extended header holding `path`.
fn pax_record(path: &[u8]) -> Vec<u8> {
    // "LEN path=VALUE\n", where LEN counts the whole record including its own digits.
    let body = [b" path=".as_slice(), path, b"\n"].concat();
    let mut len = body.len() + 1;
    while len.to_string().len() + body.len() != len {
        len += 1;
    }
    [len.to_string().into_bytes(), body].concat()
}

fn header(name: &[u8], kind: EntryType, size: u64) -> Header {
    let mut h = Header::new_gnu();
    let raw = &mut h.as_old_mut().name;
    let n = name.len().min(raw.len());
    raw[..n].copy_from_slice(&name[..n]);
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h
}

fn tar_stream(items: &[Item], wrapping: &Wrapping) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for i in items {
        if i.pax {
            let rec = pax_record(&i.name);
            let mut h = header(b"PaxHeader", EntryType::XHeader, rec.len() as u64);
            h.set_cksum();
            b.append(&h, rec.as_slice()).expect("writes to memory");
        } else if i.name.len() > 100 {
            let long = [i.name.as_slice(), b"\0"].concat();
            let mut h = header(b"././@LongLink", EntryType::GNULongName, long.len() as u64);
            h.set_cksum();
            b.append(&h, long.as_slice()).expect("writes to memory");
        }
        let mut h = header(&i.name, i.kind, i.data.len() as u64);
        if let Some(link) = &i.link {
            let raw = &mut h.as_old_mut().linkname;
            let n = link.len().min(raw.len());
            raw[..n].copy_from_slice(&link[..n]);
        }
        h.set_cksum();
        b.append(&h, i.data.as_slice()).expect("writes to memory");
    }
    let mut out = b.into_inner().expect("writes to memory");
    if matches!(wrapping, Wrapping::NoEnd) {
        out.truncate(out.len() - 1024);
    }
    out
}

fn wrap(wrapping: &Wrapping, tar: &[u8]) -> Vec<u8> {
    let gz = || {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(tar).expect("writes to memory");
        e.finish().expect("writes to memory")
    };
    match wrapping {
        Wrapping::Gzip | Wrapping::NoEnd => gz(),
        Wrapping::Truncated(n) => {
            let mut g = gz();
            g.truncate(g.len().saturating_sub(usize::from(*n) % 64 + 1));
            g
        }
        Wrapping::Trailing(extra) => [gz(), extra.clone()].concat(),
        Wrapping::Plain => tar.to_vec(),
    }
}
