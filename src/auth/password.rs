//! Password hashing (argon2id, OWASP parameters) and the password policy.
//!
//! Hashing costs ~19 MiB and tens of milliseconds by design, so it always runs on the blocking pool, never on
//! an async executor thread.

use anyhow::Context;
use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version,
    password_hash::{SaltString, rand_core::OsRng},
};
use secrecy::{ExposeSecret, SecretString};

/// OWASP's first recommended argon2id configuration: m = 19 MiB, t = 2, p = 1.
fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("constant argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Argon2 computations running at once at most: each holds 19 MiB, so a flood of sign-ins or password changes
/// waits here instead of growing the process by 19 MiB a request (4 keep two cores busy).
static COMPUTING: std::sync::LazyLock<std::sync::Arc<tokio::sync::Semaphore>> =
    std::sync::LazyLock::new(|| std::sync::Arc::new(tokio::sync::Semaphore::new(4)));

/// A permit to compute, held by the blocking task itself (a request that goes away does not free it early).
async fn permit() -> anyhow::Result<tokio::sync::OwnedSemaphorePermit> {
    COMPUTING
        .clone()
        .acquire_owned()
        .await
        .context("The password hashing permits are closed")
}

pub const MIN_LENGTH: usize = 12;
pub const MAX_LENGTH: usize = 128;

/// Why a new password was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordPolicyError {
    #[error("the password must be at least {MIN_LENGTH} characters long")]
    TooShort,
    #[error("the password must be at most {MAX_LENGTH} characters long")]
    TooLong,
    #[error("the password must not consist of one repeated character")]
    Repetitive,
    #[error("the password must not contain the e-mail address's name")]
    ContainsEmail,
}

/// Length-based policy (NIST SP 800-63B): long enough, bounded (argon2 input), not trivially guessable.
pub fn check_policy(password: &SecretString, email: &str) -> Result<(), PasswordPolicyError> {
    let password = password.expose_secret();
    let length = password.chars().count();
    if length < MIN_LENGTH {
        return Err(PasswordPolicyError::TooShort);
    }
    if length > MAX_LENGTH {
        return Err(PasswordPolicyError::TooLong);
    }
    let mut chars = password.chars();
    let first = chars.next();
    if chars.all(|c| Some(c) == first) {
        return Err(PasswordPolicyError::Repetitive);
    }
    let local_part = email.split('@').next().unwrap_or_default();
    if local_part.len() >= 4 && password.to_lowercase().contains(&local_part.to_lowercase()) {
        return Err(PasswordPolicyError::ContainsEmail);
    }
    Ok(())
}

/// Hashes `password` into a PHC string, on the blocking pool.
pub async fn hash(password: SecretString) -> anyhow::Result<String> {
    let computing = permit().await?;
    tokio::task::spawn_blocking(move || {
        let _computing = computing;
        let salt = SaltString::generate(&mut OsRng);
        hasher()
            .hash_password(password.expose_secret().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))
    })
    .await
    .context("The password hashing task failed")?
}

/// Whether `password` matches the PHC string `phc`, on the blocking pool.
pub async fn verify(password: SecretString, phc: String) -> anyhow::Result<bool> {
    let computing = permit().await?;
    tokio::task::spawn_blocking(move || {
        let _computing = computing;
        let parsed = PasswordHash::new(&phc).map_err(|e| anyhow::anyhow!("stored hash is not a PHC string: {e}"))?;
        Ok(hasher()
            .verify_password(password.expose_secret().as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .context("The password verification task failed")?
}

/// A random password for generated accounts: 24 characters from a 62-symbol alphabet (~143 bits).
pub fn generate() -> SecretString {
    use argon2::password_hash::rand_core::RngCore;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = OsRng;
    let password: String = (0..24)
        .map(|_| {
            // Rejection sampling keeps every symbol equally likely.
            loop {
                let byte = (rng.next_u32() & 0xff) as usize;
                if byte < 248 {
                    break ALPHABET[byte % ALPHABET.len()] as char;
                }
            }
        })
        .collect();
    SecretString::from(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn the_policy_explains_each_refusal() {
        assert_eq!(
            check_policy(&secret("short"), "a@b.c"),
            Err(PasswordPolicyError::TooShort)
        );
        assert_eq!(
            check_policy(&secret(&"x".repeat(129)), "a@b.c"),
            Err(PasswordPolicyError::TooLong)
        );
        assert_eq!(
            check_policy(&secret("aaaaaaaaaaaaaa"), "a@b.c"),
            Err(PasswordPolicyError::Repetitive)
        );
        assert_eq!(
            check_policy(&secret("my-name-is-grace!"), "grace@example.com"),
            Err(PasswordPolicyError::ContainsEmail)
        );
        assert_eq!(
            check_policy(&secret("correct horse battery"), "grace@example.com"),
            Ok(())
        );
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let phc = hash(secret("correct horse battery")).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify(secret("correct horse battery"), phc.clone()).await.unwrap());
        assert!(!verify(secret("wrong horse battery"), phc).await.unwrap());
    }

    #[test]
    fn generated_passwords_pass_the_policy() {
        let password = generate();
        assert_eq!(password.expose_secret().len(), 24);
        assert_eq!(check_policy(&password, "someone@example.com"), Ok(()));
    }
}
