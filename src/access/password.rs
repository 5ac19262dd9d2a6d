//! Password hashes: verify a password against a PHC / crypt string, and
//! create new hashes (argon2id only).
//!
//! Accepted for verification:
//! - `$argon2id$...` (PHC string format): everything we create;
//! - `$2y$`, `$2b$`, `$2a$` (bcrypt) and `$6$` (SHA-512-crypt): imported from
//!   an existing Dovecot / LDAP setup.
//!
//! Every comparison of a computed hash with a stored one is constant-time:
//! argon2's `Output` and sha-crypt compare with `subtle`, bcrypt with `ct_eq`.

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use sha_crypt::ShaCrypt;
use thiserror::Error;

use crate::secret::Secret;

/// The hashing schemes we recognise by their prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordScheme {
    Argon2id,
    Bcrypt,
    Sha512Crypt,
}

impl PasswordScheme {
    /// Recognises a stored hash by its prefix.
    pub fn of(hash: &str) -> Result<Self, PasswordError> {
        if hash.starts_with("$argon2id$") {
            Ok(Self::Argon2id)
        } else if ["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p)) {
            Ok(Self::Bcrypt)
        } else if hash.starts_with("$6$") {
            Ok(Self::Sha512Crypt)
        } else {
            Err(PasswordError::UnknownScheme)
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Argon2id => "argon2id",
            Self::Bcrypt => "bcrypt",
            Self::Sha512Crypt => "sha512-crypt",
        }
    }
}

/// A hash we cannot use. The message never contains the hash or the password.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PasswordError {
    #[error("unknown password hash scheme (expected $argon2id$, $2y$/$2b$/$2a$ or $6$)")]
    UnknownScheme,
    #[error("malformed {0} password hash")]
    Malformed(&'static str),
    #[error("argon2 cost {0} is beyond what we agree to compute")]
    CostTooHigh(&'static str),
    #[error("could not create a password hash: {0}")]
    Hashing(String),
}

/// Argon2id cost parameters for the hashes we create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl HashCost {
    /// m = 19 MiB, t = 2, p = 1: the OWASP Password Storage Cheat Sheet's
    /// first argon2id configuration, equivalent in cost to RFC 9106 §7.4's
    /// advice for memory-constrained settings; also the argon2 crate's default.
    pub const RECOMMENDED: Self = Self {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };

    /// The cheapest argon2id allows: for tests only, never for real
    /// passwords (select it with the admin CLI's test knob or in code).
    pub const TEST_ONLY_WEAK: Self = Self {
        memory_kib: 8,
        iterations: 1,
        parallelism: 1,
    };
}

impl Default for HashCost {
    fn default() -> Self {
        Self::RECOMMENDED
    }
}

/// The most memory we agree to spend verifying one argon2 hash (256 MiB), so
/// an imported hash with absurd parameters cannot exhaust the machine.
pub const MAX_VERIFY_MEMORY_KIB: u32 = 256 * 1024;
/// The most passes we agree to run verifying one argon2 hash.
pub const MAX_VERIFY_ITERATIONS: u32 = 16;

/// A valid argon2id hash (with [`HashCost::RECOMMENDED`]) of a random string
/// nobody knows. Verifying against it costs what a real verification costs,
/// so an unknown mailbox answers in the same time as a wrong password.
pub const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$HSP/6RqHJVcd3TeMRgJEWA$Mzfnh7TDtxm6+JXfoHd8Ez8lhhjrzvdOOErGnrsbkgs";

/// Checks `password` against a stored hash. `Ok(false)` for a wrong
/// password; `Err` when the hash itself is unusable. Never panics.
pub fn verify_password(password: &Secret, hash: &str) -> Result<bool, PasswordError> {
    match PasswordScheme::of(hash)? {
        PasswordScheme::Argon2id => {
            let parsed = PasswordHash::new(hash).map_err(|_| PasswordError::Malformed("argon2id"))?;
            let params =
                argon2::Params::try_from(&parsed).map_err(|_| PasswordError::Malformed("argon2id"))?;
            if params.m_cost() > MAX_VERIFY_MEMORY_KIB {
                return Err(PasswordError::CostTooHigh("m"));
            }
            if params.t_cost() > MAX_VERIFY_ITERATIONS {
                return Err(PasswordError::CostTooHigh("t"));
            }
            match Argon2::default().verify_password(password.expose(), &parsed) {
                Ok(()) => Ok(true),
                Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
                Err(_) => Err(PasswordError::Malformed("argon2id")),
            }
        }
        PasswordScheme::Bcrypt => {
            bcrypt::verify(password.expose(), hash).map_err(|_| PasswordError::Malformed("bcrypt"))
        }
        PasswordScheme::Sha512Crypt => match ShaCrypt::default().verify_password(password.expose(), hash) {
            Ok(()) => Ok(true),
            Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
            Err(_) => Err(PasswordError::Malformed("sha512-crypt")),
        },
    }
}

/// Spends the time of one verification without a real hash to check.
pub fn verify_dummy(password: &Secret) {
    // The result is meaningless; the time spent is the point.
    let _ = verify_password(password, DUMMY_HASH);
}

/// Creates an argon2id PHC string with [`HashCost::RECOMMENDED`] and a random
/// 16-byte salt from the OS.
pub fn hash_password(password: &Secret) -> Result<String, PasswordError> {
    hash_password_with(password, HashCost::RECOMMENDED)
}

/// Creates an argon2id PHC string with the given cost.
pub fn hash_password_with(password: &Secret, cost: HashCost) -> Result<String, PasswordError> {
    let params = argon2::Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
        .map_err(|e| PasswordError::Hashing(e.to_string()))?;
    let hasher = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    hasher
        .hash_password(password.expose())
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hashing(e.to_string()))
}

#[cfg(test)]
mod tests;
