//! Bundle signatures: an ed25519 signature over `plg-bundle-v1\n` followed by the bytes of
//! `CHECKSUMS.sha256`, so it covers every entry through the checksums.

use std::path::Path;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use super::BundleError;

const SIGNATURE_HEADER: &str = "plg-signature-v1";
const SIGNED_PREFIX: &[u8] = b"plg-bundle-v1\n";

/// A signature found in a bundle, checked against the bundle's checksums (not yet against a
/// keyring).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleSignature {
    /// The signer's public key.
    pub public_key: VerifyingKey,
}

impl BundleSignature {
    /// The public key, hex.
    pub fn key_hex(&self) -> String {
        hex::encode(self.public_key.as_bytes())
    }
}

fn signed_message(checksums: &[u8]) -> Vec<u8> {
    [SIGNED_PREFIX, checksums].concat()
}

pub(super) fn verify_signature(
    text: &[u8],
    checksums: &[u8],
    path: &Path,
) -> Result<BundleSignature, BundleError> {
    let bad = |problem: &str| BundleError::BadSignature {
        path: path.to_owned(),
        problem: problem.to_owned(),
    };
    let text = std::str::from_utf8(text).map_err(|_| bad("is not UTF-8"))?;
    let mut lines = text.lines();
    if lines.next() != Some(SIGNATURE_HEADER) {
        return Err(bad("does not start with `plg-signature-v1`"));
    }
    let field = |line: Option<&str>, key: &str| -> Option<Vec<u8>> {
        hex::decode(line?.strip_prefix(key)?.trim()).ok()
    };
    let key = field(lines.next(), "public-key:").ok_or_else(|| bad("bad `public-key:` line"))?;
    let sig = field(lines.next(), "signature:").ok_or_else(|| bad("bad `signature:` line"))?;
    let key: [u8; 32] = key
        .try_into()
        .map_err(|_| bad("the public key is not 32 bytes"))?;
    let sig: [u8; 64] = sig
        .try_into()
        .map_err(|_| bad("the signature is not 64 bytes"))?;
    let public_key = VerifyingKey::from_bytes(&key)
        .map_err(|_| bad("the public key is not a valid ed25519 key"))?;
    public_key
        .verify_strict(&signed_message(checksums), &Signature::from_bytes(&sig))
        .map_err(|_| bad("the signature does not match the bundle's contents"))?;
    Ok(BundleSignature { public_key })
}

/// The `SIGNATURE.ed25519` entry for `checksums`, signed with `key`.
pub(super) fn sign(checksums: &[u8], key: &SigningKey) -> String {
    let sig = key.sign(&signed_message(checksums));
    format!(
        "{SIGNATURE_HEADER}\npublic-key: {}\nsignature: {}\n",
        hex::encode(key.verifying_key().as_bytes()),
        hex::encode(sig.to_bytes())
    )
}
