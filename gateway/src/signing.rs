//! The gateway's signing key (Ed25519): it signs consent tokens and audit
//! checkpoints, so that neither can be made or changed without it.
//!
//! ```text
//! DIR/keys/signing.pk8   PKCS#8 (v2) DER, mode 0600, created on first start
//! ```
//!
//! Every signature is over a context label and the message, so a signature
//! made for one use (a consent token) never verifies as another (a
//! checkpoint).

use std::path::Path;

use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use crate::error::{Error, Result};

/// Ed25519 signature length.
pub const SIGNATURE_LEN: usize = 64;

/// What a signature is for; part of what is signed.
#[derive(Debug, Clone, Copy)]
pub enum Context {
    /// A consent token's claims.
    Consent,
    /// An audit checkpoint.
    Checkpoint,
    /// A population event's body, as published.
    Event,
}

impl Context {
    fn label(self) -> &'static [u8] {
        match self {
            Self::Consent => b"lienthong consent v1\0",
            Self::Checkpoint => b"lienthong audit checkpoint v1\0",
            Self::Event => lienthong_proto::event::SIGNING_CONTEXT,
        }
    }
}

/// The private key; cheap to share behind an `Arc`.
pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &self.verifying_key())
            .finish()
    }
}

impl SigningKey {
    /// Reads the key at `path`, creating it (mode 0600) if it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self> {
        if !path.exists() {
            let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                .map_err(|_| Error::Key("cannot generate the signing key".into()))?;
            if let Some(parent) = path.parent() {
                crate::private::create_dir(parent).map_err(Error::io(parent))?;
            }
            write_private(path, document.as_ref())?;
            tracing::info!(path = %path.display(), "created the gateway's signing key");
        }
        Self::load(path)
    }

    /// Reads the key at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let der = std::fs::read(path).map_err(Error::io(path))?;
        let pair = Ed25519KeyPair::from_pkcs8(&der).map_err(|e| {
            Error::Key(format!(
                "{}: not an Ed25519 PKCS#8 key: {e}",
                path.display()
            ))
        })?;
        Ok(Self { pair })
    }

    /// A new key that lives only in memory (tests, benchmarks).
    pub fn ephemeral() -> Self {
        let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .expect("the system random source works");
        Self {
            pair: Ed25519KeyPair::from_pkcs8(document.as_ref()).expect("a key just generated"),
        }
    }

    /// Signs `message` for `context`.
    pub fn sign(&self, context: Context, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        let mut signed = context.label().to_vec();
        signed.extend_from_slice(message);
        let mut out = [0; SIGNATURE_LEN];
        out.copy_from_slice(self.pair.sign(&signed).as_ref());
        out
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        let mut key = [0; 32];
        key.copy_from_slice(self.pair.public_key().as_ref());
        VerifyingKey(key)
    }
}

/// The public key that checks the gateway's signatures.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VerifyingKey([u8; 32]);

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VerifyingKey({self})")
    }
}

impl std::fmt::Display for VerifyingKey {
    /// Hex, as operators compare it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl std::str::FromStr for VerifyingKey {
    type Err = &'static str;

    /// The hex [`Display`](std::fmt::Display) prints.
    fn from_str(text: &str) -> std::result::Result<Self, Self::Err> {
        parse_hex32(text)
            .map(Self)
            .ok_or("an Ed25519 public key is 64 hex digits")
    }
}

/// 32 bytes written as 64 hex digits.
pub fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl VerifyingKey {
    /// Whether `signature` is the gateway's over `message` for `context`.
    pub fn verify(&self, context: Context, message: &[u8], signature: &[u8]) -> bool {
        let mut signed = context.label().to_vec();
        signed.extend_from_slice(message);
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(&signed, signature)
            .is_ok()
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(Error::io(path))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(Error::io(path))
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(Error::io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_for_their_context_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/signing.pk8");
        let key = SigningKey::load_or_create(&path).unwrap();
        let again = SigningKey::load_or_create(&path).unwrap();
        assert_eq!(key.verifying_key(), again.verifying_key());
        let sig = key.sign(Context::Consent, b"claims");
        let public = key.verifying_key();
        assert!(public.verify(Context::Consent, b"claims", &sig));
        assert!(!public.verify(Context::Checkpoint, b"claims", &sig));
        assert!(!public.verify(Context::Consent, b"claimz", &sig));
        let other = SigningKey::ephemeral().verifying_key();
        assert!(!other.verify(Context::Consent, b"claims", &sig));
        assert_eq!(public.to_string().parse::<VerifyingKey>(), Ok(public));
        assert!("abc".parse::<VerifyingKey>().is_err());
        assert!("zz".repeat(32).parse::<VerifyingKey>().is_err());
    }
}
