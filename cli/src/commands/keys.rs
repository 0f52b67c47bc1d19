//! `plg keygen` and `plg trust`: signing keys and the keyring.

use std::path::PathBuf;

use clap::Args;
use plg_loader::keys::{generate_key, read_public_key, write_key_pair, Keyring};

use crate::{failure::Failure, output::Output, Global};

#[derive(Args)]
pub struct KeygenArgs {
    /// The key pair's path prefix: writes PREFIX.key and PREFIX.pub.
    prefix: PathBuf,
}

#[derive(Args)]
pub struct TrustArgs {
    /// The public key file (from `plg keygen`).
    public_key: PathBuf,
    /// The name to list it under [default: the file's stem].
    #[arg(long)]
    name: Option<String>,
}

pub fn keygen(a: KeygenArgs, out: &Output) -> Result<(), Failure> {
    let key = generate_key();
    let (secret, public) = write_key_pair(&key, &a.prefix)?;
    if out.is_json() {
        return out.json(&serde_json::json!({ "secret_key": secret, "public_key": public }));
    }
    out.line(format!(
        "secret key: {} (keep it private)",
        secret.display()
    ));
    out.line(format!(
        "public key: {} (trust it with `plg trust {}`)",
        public.display(),
        public.display()
    ));
    Ok(())
}

pub fn trust(g: &Global, a: TrustArgs, out: &Output) -> Result<(), Failure> {
    let dir = g.plugins_dir()?;
    let key = read_public_key(&a.public_key)?;
    let name = match a.name {
        Some(n) => n,
        None => a
            .public_key
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "key".into()),
    };
    Keyring::add(&dir, &name, &key)?;
    if out.is_json() {
        return out.json(&serde_json::json!({ "name": name, "keyring": dir.keyring_file() }));
    }
    out.line(format!(
        "trusted key `{name}` in {}",
        dir.keyring_file().display()
    ));
    Ok(())
}
