//! Signing keys: generating a pair, the key files `plg keygen` writes (`PREFIX.key`, secret,
//! mode 0600; `PREFIX.pub`), and the [`Keyring`] of keys a plugins directory trusts.

use std::{
    io,
    path::{Path, PathBuf},
};

use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::error::{InstallError, IoError};

mod keyring;

pub use keyring::{Keyring, TrustedKey};

const SECRET_HEADER: &str = "plg-secret-key-v1";
const PUBLIC_HEADER: &str = "plg-public-key-v1";

/// Creates a new ed25519 key pair.
pub fn generate_key() -> SigningKey {
    SigningKey::generate(&mut rand_core::OsRng)
}

/// Writes `PREFIX.key` (secret, mode 0600) and `PREFIX.pub`; refuses to overwrite either.
pub fn write_key_pair(key: &SigningKey, prefix: &Path) -> Result<(PathBuf, PathBuf), InstallError> {
    let secret = prefix.with_extension("key");
    let public = prefix.with_extension("pub");
    for p in [&secret, &public] {
        if p.exists() {
            return Err(InstallError::Config {
                path: p.clone(),
                problem: "already exists; choose another name".into(),
            });
        }
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(&secret)
        .map_err(IoError::at::<InstallError>(&secret))?;
    io::Write::write_all(
        &mut f,
        format!("{SECRET_HEADER}\n{}\n", hex::encode(key.to_bytes())).as_bytes(),
    )
    .map_err(IoError::at::<InstallError>(&secret))?;
    std::fs::write(
        &public,
        format!(
            "{PUBLIC_HEADER}\n{}\n",
            hex::encode(key.verifying_key().as_bytes())
        ),
    )
    .map_err(IoError::at::<InstallError>(&public))?;
    Ok((secret, public))
}

fn read_key_file(path: &Path, header: &str) -> Result<[u8; 32], InstallError> {
    let text = std::fs::read_to_string(path).map_err(IoError::at::<InstallError>(path))?;
    let bad = |problem: &str| InstallError::Config {
        path: path.to_owned(),
        problem: problem.to_owned(),
    };
    let mut lines = text.lines();
    if lines.next() != Some(header) {
        return Err(bad(&format!("does not start with `{header}`")));
    }
    let bytes =
        hex::decode(lines.next().unwrap_or("").trim()).map_err(|_| bad("the key is not hex"))?;
    bytes.try_into().map_err(|_| bad("the key is not 32 bytes"))
}

/// Reads a secret key written by [`write_key_pair`].
pub fn read_signing_key(path: &Path) -> Result<SigningKey, InstallError> {
    read_key_file(path, SECRET_HEADER).map(|b| SigningKey::from_bytes(&b))
}

/// Reads a public key written by [`write_key_pair`].
pub fn read_public_key(path: &Path) -> Result<VerifyingKey, InstallError> {
    let bytes = read_key_file(path, PUBLIC_HEADER)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| InstallError::Config {
        path: path.to_owned(),
        problem: "not a valid ed25519 public key".into(),
    })
}

pub(super) fn parse_public_key(hex_key: &str) -> Result<VerifyingKey, String> {
    let bytes: [u8; 32] = hex::decode(hex_key)
        .map_err(|_| "not hex".to_owned())?
        .try_into()
        .map_err(|_| "not 32 bytes".to_owned())?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| "not a valid ed25519 key".to_owned())
}
