//! The RS256 key set: the key that signs access tokens and every public key that verifies them.
//!
//! Keys are identified by a `kid` derived from the public key itself (SHA-256 of its DER encoding), so the same
//! key always has the same id on every instance and after every restart. Rotation: publish the new public key
//! to every instance (`auth.jwt_public_key_paths`), then switch the signing key; tokens signed by the old key
//! stay valid until they expire, as long as its public key stays listed.

use std::{collections::HashMap, path::Path};

use anyhow::Context;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{DecodingKey, EncodingKey};
use rsa::{
    RsaPrivateKey, RsaPublicKey,
    pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey},
    pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding},
    traits::PublicKeyParts,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::configuration::AuthSettings;

/// Smallest RSA modulus accepted, in bits (NIST SP 800-57: 2048 until 2030).
const MIN_RSA_BITS: usize = 2048;

/// One public key as published in the JWKS document (RFC 7517).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Jwk {
    pub kty: &'static str,
    #[serde(rename = "use")]
    pub usage: &'static str,
    pub alg: &'static str,
    pub kid: String,
    /// Modulus, base64url without padding.
    pub n: String,
    /// Public exponent, base64url without padding.
    pub e: String,
}

/// `GET /.well-known/jwks.json`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

struct VerifyingKey {
    decoding: DecodingKey,
    jwk: Jwk,
}

/// The signing key and the verification keys, by `kid`.
pub struct KeySet {
    signing_kid: String,
    signing: EncodingKey,
    verifying: HashMap<String, VerifyingKey>,
    /// In `kid` order, so the document is the same on every instance.
    jwks: JwkSet,
    /// Generated at start because no key was configured: no other instance can verify its tokens.
    ephemeral: bool,
}

impl KeySet {
    /// Loads the keys the settings name. Without a private key, an ephemeral pair is generated (tokens then do
    /// not survive a restart, and several instances would not accept each other's tokens).
    pub fn from_settings(settings: &AuthSettings) -> anyhow::Result<Self> {
        let ephemeral = settings.jwt_private_key_path.as_os_str().is_empty();
        let private_pem = if ephemeral {
            tracing::warn!(
                "auth.jwt_private_key_path is not set: signing with an ephemeral key (tokens do not survive a \
                 restart, and no other instance accepts them: a second instance refuses to start beside this one)"
            );
            generate_private_key_pem()?
        } else {
            read(&settings.jwt_private_key_path)?
        };
        let public_pems = settings
            .jwt_public_key_paths
            .iter()
            .map(|path| read(path))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut keys = Self::from_pems(&private_pem, &public_pems)?;
        keys.ephemeral = ephemeral;
        Ok(keys)
    }

    /// The signing key (PKCS#8 or PKCS#1 PEM) and further public keys accepted for verification (SPKI or PKCS#1
    /// PEM); the signing key's own public key is always accepted.
    pub fn from_pems(private_pem: &str, public_pems: &[String]) -> anyhow::Result<Self> {
        let private = RsaPrivateKey::from_pkcs8_pem(private_pem)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(private_pem))
            .context("The JWT signing key is not an RSA private key in PEM (PKCS#8 or PKCS#1)")?;
        let signing_public = private.to_public_key();
        check_size(&signing_public)?;
        let signing_kid = kid(&signing_public)?;
        let signing = EncodingKey::from_rsa_pem(private_pem.as_bytes()).context("Invalid JWT signing key")?;

        let mut publics = vec![signing_public];
        for pem in public_pems {
            let key = RsaPublicKey::from_public_key_pem(pem)
                .or_else(|_| RsaPublicKey::from_pkcs1_pem(pem))
                .context("A JWT verification key is not an RSA public key in PEM (SPKI or PKCS#1)")?;
            check_size(&key)?;
            publics.push(key);
        }
        let mut verifying = HashMap::new();
        for key in publics {
            let jwk = Jwk {
                kty: "RSA",
                usage: "sig",
                alg: "RS256",
                kid: kid(&key)?,
                n: URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
                e: URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
            };
            let decoding = DecodingKey::from_rsa_components(&jwk.n, &jwk.e).context("Invalid RSA public key")?;
            verifying.insert(jwk.kid.clone(), VerifyingKey { decoding, jwk });
        }
        let mut keys: Vec<Jwk> = verifying.values().map(|k| k.jwk.clone()).collect();
        keys.sort_by(|a, b| a.kid.cmp(&b.kid));
        Ok(Self {
            signing_kid,
            signing,
            verifying,
            jwks: JwkSet { keys },
            ephemeral: false,
        })
    }

    /// Whether the signing key was generated at start (none configured).
    pub fn is_ephemeral(&self) -> bool {
        self.ephemeral
    }

    pub fn signing_kid(&self) -> &str {
        &self.signing_kid
    }

    pub fn signing_key(&self) -> &EncodingKey {
        &self.signing
    }

    /// The verification key with this id, if it is one of ours.
    pub fn verifying_key(&self, kid: &str) -> Option<&DecodingKey> {
        self.verifying.get(kid).map(|k| &k.decoding)
    }

    pub fn jwks(&self) -> &JwkSet {
        &self.jwks
    }
}

/// A new RSA-2048 private key, PKCS#8 PEM (for `serve` without a configured key, and for tests).
pub fn generate_private_key_pem() -> anyhow::Result<String> {
    let mut rng = argon2::password_hash::rand_core::OsRng;
    let key = RsaPrivateKey::new(&mut rng, MIN_RSA_BITS).context("Failed to generate an RSA key")?;
    Ok(key.to_pkcs8_pem(LineEnding::LF)?.to_string())
}

/// The SPKI PEM of a private key's public half (to publish it to other instances).
pub fn public_key_pem(private_pem: &str) -> anyhow::Result<String> {
    let private = RsaPrivateKey::from_pkcs8_pem(private_pem).context("Not a PKCS#8 RSA private key")?;
    Ok(private.to_public_key().to_public_key_pem(LineEnding::LF)?)
}

fn kid(key: &RsaPublicKey) -> anyhow::Result<String> {
    let der = key.to_public_key_der().context("Failed to encode a public key")?;
    let digest = Sha256::digest(der.as_bytes());
    Ok(URL_SAFE_NO_PAD.encode(&digest[..12]))
}

fn check_size(key: &RsaPublicKey) -> anyhow::Result<()> {
    let bits = key.size() * 8;
    anyhow::ensure!(
        bits >= MIN_RSA_BITS,
        "RSA keys must have at least {MIN_RSA_BITS} bits (got {bits})"
    );
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("Failed to read the key file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_set_publishes_every_verification_key_with_a_stable_id() {
        let first = generate_private_key_pem().unwrap();
        let second = generate_private_key_pem().unwrap();
        let keys = KeySet::from_pems(&first, &[public_key_pem(&second).unwrap()]).unwrap();
        assert_eq!(keys.jwks().keys.len(), 2);
        let again = KeySet::from_pems(&first, &[]).unwrap();
        assert_eq!(keys.signing_kid(), again.signing_kid());
        assert!(keys.verifying_key(keys.signing_kid()).is_some());
        assert!(keys.verifying_key("unknown").is_none());
    }

    #[test]
    fn garbage_keys_are_refused_with_a_reason() {
        let error = KeySet::from_pems("not a key", &[]).err().unwrap();
        assert!(error.to_string().contains("not an RSA private key"));
    }
}
