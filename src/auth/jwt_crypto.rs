//! The signature check of every authenticated request. jsonwebtoken's RustCrypto backend verifies RS256 with
//! pure-Rust big-integer arithmetic: profiling `pdscore-load http` at 64 concurrent clients put 27 % of the
//! service's CPU in it (`num_bigint_dig::monty`). This provider verifies RS256 with `ring` (already linked for
//! NATS) and keeps the RustCrypto backend for the rest (signing happens once per sign-in or refresh).

use std::sync::LazyLock;

use jsonwebtoken::{
    Algorithm, DecodingKey, DecodingKeyKind,
    crypto::{CryptoProvider, JwtVerifier, rust_crypto},
    errors::Error,
    signature::{self, Verifier},
};
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents, UnparsedPublicKey};

static PROVIDER: LazyLock<CryptoProvider> = LazyLock::new(|| CryptoProvider {
    verifier_factory: verifier,
    ..rust_crypto::DEFAULT_PROVIDER.clone()
});

/// Makes this provider jsonwebtoken's process default. Idempotent; call it before the first token
/// operation (a provider chosen by then stays).
pub fn install() {
    let _ = CryptoProvider::install_default(&PROVIDER);
}

fn verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    if *algorithm != Algorithm::RS256 {
        return (rust_crypto::DEFAULT_PROVIDER.verifier_factory)(algorithm, key);
    }
    let key = match key.kind() {
        DecodingKeyKind::RsaModulusExponent { n, e } => RsaKey::Components {
            n: n.clone(),
            e: e.clone(),
        },
        DecodingKeyKind::SecretOrDer(der) => RsaKey::Pkcs1Der(der.clone()),
    };
    Ok(Box::new(Rs256(key)))
}

enum RsaKey {
    Components { n: Vec<u8>, e: Vec<u8> },
    Pkcs1Der(Vec<u8>),
}

struct Rs256(RsaKey);

impl Verifier<Vec<u8>> for Rs256 {
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        let verified = match &self.0 {
            RsaKey::Components { n, e } => {
                RsaPublicKeyComponents { n, e }.verify(&RSA_PKCS1_2048_8192_SHA256, message, signature)
            }
            RsaKey::Pkcs1Der(der) => {
                UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, der).verify(message, signature)
            }
        };
        verified.map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for Rs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::RS256
    }
}
