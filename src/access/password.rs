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
mod tests {
    use super::*;

    const PASSWORD: &[u8] = b"correct horse";

    /// Vectors made with other implementations, so we test compatibility,
    /// not only a round trip:
    /// - argon2id: Python argon2-cffi `PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)`
    /// - bcrypt: Python `bcrypt.hashpw(pw, gensalt(rounds=4))`, `$2y$` is the same hash re-labelled
    ///   as PHP and Dovecot write it; `$2a$` with `gensalt(prefix=b"2a")`
    /// - SHA-512-crypt: `openssl passwd -6 -salt saltsaltsalt` and Python `crypt.crypt` with rounds
    const VECTORS: &[(&str, PasswordScheme)] = &[
        (
            "$argon2id$v=19$m=64,t=1,p=1$Xs7oW39j0vFYor7r2B9tqQ$oiayr4cI427OnHs2/oicuh6T7Tpy5Gd9j1S4MeicOjY",
            PasswordScheme::Argon2id,
        ),
        (
            "$2b$04$rIlYJUPdn9Gnoh/AK7G.S.vD5Z1Y8L9wOrJrIWW7I.WLEA8XMGAzS",
            PasswordScheme::Bcrypt,
        ),
        (
            "$2y$04$rIlYJUPdn9Gnoh/AK7G.S.vD5Z1Y8L9wOrJrIWW7I.WLEA8XMGAzS",
            PasswordScheme::Bcrypt,
        ),
        (
            "$2a$04$Gkc7WJjgSaxfVCXI98aJgOlcJ2xjTiuiejQ30Wpd9VwhP7sc27./y",
            PasswordScheme::Bcrypt,
        ),
        (
            "$6$saltsaltsalt$Cy2drr8kDRji6smvDcT28wkqtq0R0VzVL5CkrjPQCITc5d/31j94knt9rGTcVSyjLXfjsiIsBh5ee8qR/3QDx1",
            PasswordScheme::Sha512Crypt,
        ),
        (
            "$6$rounds=1000$saltysalt$NXJRHkF0.BsesTD2.RcucEeAS6boQqQrMN2sTevAyvTbjYhDZ.rDwMpbmdgTrzfsYL7OCm/h2fJvt7hKhOR970",
            PasswordScheme::Sha512Crypt,
        ),
    ];

    #[test]
    fn known_hashes_verify() {
        let right = Secret::from_slice(PASSWORD);
        let wrong = Secret::from_slice(b"correct horsf");
        for (hash, scheme) in VECTORS {
            assert_eq!(PasswordScheme::of(hash), Ok(*scheme), "{hash}");
            assert_eq!(verify_password(&right, hash), Ok(true), "{hash}");
            assert_eq!(verify_password(&wrong, hash), Ok(false), "{hash}");
            assert_eq!(verify_password(&Secret::default(), hash), Ok(false), "{hash}");
        }
    }

    #[test]
    fn unusable_hashes_are_errors_not_panics() {
        let pw = Secret::from_slice(PASSWORD);
        let table: &[(&str, PasswordError)] = &[
            ("", PasswordError::UnknownScheme),
            ("plain", PasswordError::UnknownScheme),
            ("{SHA512-CRYPT}$6$x$y", PasswordError::UnknownScheme),
            ("$1$saltsalt$hash", PasswordError::UnknownScheme),
            ("$5$saltsalt$hash", PasswordError::UnknownScheme),
            (
                "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaA",
                PasswordError::UnknownScheme,
            ),
            ("$argon2id$", PasswordError::Malformed("argon2id")),
            (
                "$argon2id$v=19$m=64,t=1,p=1$!!$??",
                PasswordError::Malformed("argon2id"),
            ),
            (
                "$argon2id$v=19$m=4194304,t=1,p=1$Xs7oW39j0vFYor7r2B9tqQ$oiayr4cI427OnHs2/oicuh6T7Tpy5Gd9j1S4MeicOjY",
                PasswordError::CostTooHigh("m"),
            ),
            (
                "$argon2id$v=19$m=64,t=100,p=1$Xs7oW39j0vFYor7r2B9tqQ$oiayr4cI427OnHs2/oicuh6T7Tpy5Gd9j1S4MeicOjY",
                PasswordError::CostTooHigh("t"),
            ),
            ("$2y$04$short", PasswordError::Malformed("bcrypt")),
            ("$2b$", PasswordError::Malformed("bcrypt")),
            ("$6$", PasswordError::Malformed("sha512-crypt")),
            ("$6$salt$not*base64", PasswordError::Malformed("sha512-crypt")),
        ];
        for (hash, expected) in table {
            assert_eq!(verify_password(&pw, hash).as_ref(), Err(expected), "{hash}");
        }
    }

    #[test]
    fn created_hashes_are_argon2id_and_verify() {
        let pw = Secret::from_slice(b"s3cret passw\xc3\xb6rd");
        let hash = hash_password_with(&pw, HashCost::TEST_ONLY_WEAK).unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{hash}");
        assert_eq!(verify_password(&pw, &hash), Ok(true));
        assert_eq!(verify_password(&Secret::from_slice(b"nope"), &hash), Ok(false));
        // A fresh salt each time.
        assert_ne!(hash, hash_password_with(&pw, HashCost::TEST_ONLY_WEAK).unwrap());
    }

    #[test]
    fn recommended_cost_is_what_we_say() {
        let hash = hash_password(&Secret::from_slice(b"x")).unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(DUMMY_HASH.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert_eq!(verify_password(&Secret::from_slice(b"x"), DUMMY_HASH), Ok(false));
    }
}
