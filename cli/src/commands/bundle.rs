//! `plg pack` and `plg inspect`: make a bundle, and look inside one without installing it.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use plg_loader::{
    build::BuildOptions,
    bundle::{pack_library, Bundle, Limits},
    keys::{read_signing_key, Keyring},
    origin::library_in,
};

use crate::{failure::Failure, output::Output, Global};

#[derive(Args)]
pub struct PackArgs {
    /// A plugin crate (Cargo.toml + plugin.json) or a staged plugin directory.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Where to write the bundle [default: ./NAME-VERSION.plg].
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Sign the bundle with this secret key (from `plg keygen`).
    #[arg(long, value_name = "KEY")]
    sign: Option<PathBuf>,
}

#[derive(Args)]
pub struct InspectArgs {
    /// The bundle.
    file: PathBuf,
}

pub fn pack(a: PackArgs, out: &Output) -> Result<(), Failure> {
    let key = a.sign.as_deref().map(read_signing_key).transpose()?;
    let (manifest, library) = library_in(&a.dir, &BuildOptions::default())?;
    let packed = pack_library(&manifest, &library, key.as_ref())?;
    let file = a
        .output
        .unwrap_or_else(|| PathBuf::from(packed.file_name()));
    std::fs::write(&file, &packed.bytes).with_context(|| format!("writing {}", file.display()))?;
    if out.is_json() {
        return out.json(&serde_json::json!({
            "name": packed.manifest.name,
            "version": packed.manifest.version.to_string(),
            "bundle": file,
            "bytes": packed.bytes.len(),
            "signed": key.is_some(),
        }));
    }
    out.line(format!(
        "packed {} into {} ({} bytes{})",
        packed.manifest.id(),
        file.display(),
        packed.bytes.len(),
        if key.is_some() { ", signed" } else { "" }
    ));
    Ok(())
}

pub fn inspect(g: &Global, a: InspectArgs, out: &Output) -> Result<(), Failure> {
    let bundle = Bundle::read(&a.file, &Limits::default())?;
    let keyring = match g.plugins_dir() {
        Ok(dir) => Keyring::load(&dir).unwrap_or_default(),
        Err(_) => Keyring::default(),
    };
    let trusted_as = bundle
        .signature()
        .and_then(|s| keyring.trusts(&s.public_key).map(str::to_owned));
    let unload = bundle.unload_preflight()?;
    if out.is_json() {
        let entries: Vec<_> = bundle
            .entries()
            .iter()
            .map(|e| serde_json::json!({ "name": e.name, "size": e.size, "sha256": e.sha256 }))
            .collect();
        let manifest: serde_json::Value = serde_json::from_str(&bundle.manifest().to_json())?;
        let signature = bundle.signature().map(|s| {
            serde_json::json!({ "public_key": s.key_hex(), "valid": true, "trusted_as": trusted_as })
        });
        return out.json(&serde_json::json!({
            "bundle": a.file,
            "compressed_size": bundle.compressed_size(),
            "manifest": manifest,
            "entries": entries,
            "signature": signature,
            "unload": unload.to_string(),
        }));
    }
    let m = bundle.manifest();
    out.line(format!(
        "{} ({} bytes compressed)",
        a.file.display(),
        bundle.compressed_size()
    ));
    out.line(format!("  plugin:      {}", m.id()));
    if let Some(d) = &m.description {
        out.line(format!("  description: {d}"));
    }
    if !m.maintainers.is_empty() {
        out.line(format!("  maintainers: {}", m.maintainers.join(", ")));
    }
    out.line(format!("  library:     {}", bundle.library_name()));
    out.line(format!("  unload:      {unload}"));
    out.line("  entries:");
    for e in bundle.entries() {
        out.line(format!(
            "    {:<28} {:>10} bytes  sha256 {}",
            e.name, e.size, e.sha256
        ));
    }
    out.line(match (bundle.signature(), trusted_as) {
        (None, _) => "  signature:   none (unsigned)".to_owned(),
        (Some(s), Some(name)) => format!(
            "  signature:   valid, by trusted key `{name}` ({})",
            s.key_hex()
        ),
        (Some(s), None) => format!(
            "  signature:   valid, by key {} (not in the keyring)",
            s.key_hex()
        ),
    });
    Ok(())
}
