//! Password hashes: verify a password against a PHC / crypt string, and
//! create new hashes (argon2id only).
//!
//! Accepted for verification:
//! - `$argon2id$...` (PHC string format): everything we create;
//! - `$2y$`, `$2b$`, `$2a$` (bcrypt) and `$6$` (SHA-512-crypt): imported from
//!   an existing Dovecot / LDAP setup.
//!
//! Every comparison of a computed hash with a stored one is constant-time:
//! argon2 with `subtle`'s `ct_eq` (here), sha-crypt with `subtle`, bcrypt
//! with its own `ct_eq`.
//!
//! An argon2 hash is computed in caller-provided [`HashMemory`], so the
//! authenticator's verifier slots reuse theirs (see
//! [`crate::access::authenticator`] for the bound on the process).

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use sha_crypt::ShaCrypt;
use subtle::ConstantTimeEq;
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

/// The memory an argon2 verification works in, kept from one verification
/// to the next: one per verifier slot (see
/// [`crate::access::authenticator`]), so a burst of logins reuses the same
/// few blocks instead of allocating and freeing 19 MiB each time (which
/// glibc keeps, per thread arena, long after the burst).
///
/// Empty until first used (an idle proxy pays nothing); then as large as
/// the largest memory cost it has verified, at most
/// [`MAX_VERIFY_MEMORY_KIB`]; never shrunk. Bound: [`Self::bytes`] ≤ the
/// largest `m` of the hashes verified on it, in KiB × 1024 (19 MiB for
/// every hash this proxy makes and for [`DUMMY_HASH`]). Growing frees the
/// smaller buffer, which the allocator may keep for reuse: with stored
/// hashes of k distinct costs above the first one verified, a slot may
/// hold up to the sum of those k + 1 sizes. The part a verification used
/// is wiped after it, so a password's argon2 state does not outlive its
/// verification.
#[derive(Default)]
pub struct HashMemory {
    blocks: Vec<argon2::Block>,
}

impl std::fmt::Debug for HashMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashMemory")
            .field("bytes", &self.bytes())
            .finish()
    }
}

impl HashMemory {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.blocks.len() * argon2::Block::SIZE
    }

    /// The first `count` blocks, growing to `count` if smaller. The caller
    /// has checked `count` against [`MAX_VERIFY_MEMORY_KIB`].
    fn first(&mut self, count: usize) -> &mut [argon2::Block] {
        if self.blocks.len() < count {
            // Free the smaller buffer before allocating the larger one, so
            // both are never held at once.
            self.blocks = Vec::new();
            self.blocks = vec![argon2::Block::new(); count];
        }
        &mut self.blocks[..count]
    }

    /// Whether every block is zero (for tests: the wipe after use).
    #[cfg(test)]
    fn is_wiped(&self) -> bool {
        self.blocks.iter().all(|b| b.as_ref().iter().all(|&w| w == 0))
    }
}

/// Checks `password` against a stored hash. `Ok(false)` for a wrong
/// password; `Err` when the hash itself is unusable. Never panics.
///
/// An argon2 hash is computed in memory allocated for this call and freed
/// after it: for the admin commands and tests. The proxy's logins go
/// through [`verify_password_in`] on a verifier slot's [`HashMemory`].
pub fn verify_password(password: &Secret, hash: &str) -> Result<bool, PasswordError> {
    verify_password_in(&mut HashMemory::default(), password, hash)
}

/// [`verify_password`], an argon2 hash computed in `memory` (grown if it
/// is smaller than the hash's memory cost; see [`HashMemory`]). bcrypt and
/// SHA-512-crypt need no more than a few KiB of their own.
pub fn verify_password_in(
    memory: &mut HashMemory,
    password: &Secret,
    hash: &str,
) -> Result<bool, PasswordError> {
    match PasswordScheme::of(hash)? {
        PasswordScheme::Argon2id => verify_argon2id(memory, password, hash),
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

/// Computes the argon2id hash of `password` with the stored hash's salt and
/// parameters in `memory`, and compares it with the stored output in
/// constant time. A hash without salt or output is malformed (it could
/// never match).
fn verify_argon2id(memory: &mut HashMemory, password: &Secret, hash: &str) -> Result<bool, PasswordError> {
    const MALFORMED: PasswordError = PasswordError::Malformed("argon2id");
    let parsed = PasswordHash::new(hash).map_err(|_| MALFORMED)?;
    let params = argon2::Params::try_from(&parsed).map_err(|_| MALFORMED)?;
    if params.m_cost() > MAX_VERIFY_MEMORY_KIB {
        return Err(PasswordError::CostTooHigh("m"));
    }
    if params.t_cost() > MAX_VERIFY_ITERATIONS {
        return Err(PasswordError::CostTooHigh("t"));
    }
    let version = match parsed.version {
        None => argon2::Version::default(),
        Some(v) => argon2::Version::try_from(v).map_err(|_| MALFORMED)?,
    };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return Err(MALFORMED);
    };
    let blocks = memory.first(params.block_count());
    let mut computed = [0u8; argon2::password_hash::phc::Output::MAX_LENGTH];
    let computed = &mut computed[..expected.len()];
    let hashed = Argon2::new(argon2::Algorithm::Argon2id, version, params).hash_password_into_with_memory(
        password.expose(),
        salt,
        computed,
        &mut *blocks,
    );
    blocks.fill(argon2::Block::new());
    hashed.map_err(|_| MALFORMED)?;
    Ok(bool::from(computed.ct_eq(expected.as_bytes())))
}

/// Spends the time of one verification without a real hash to check.
pub fn verify_dummy(password: &Secret) {
    verify_dummy_in(&mut HashMemory::default(), password);
}

/// [`verify_dummy`] in `memory`.
pub fn verify_dummy_in(memory: &mut HashMemory, password: &Secret) {
    // The result is meaningless; the time spent is the point.
    let _ = verify_password_in(memory, password, DUMMY_HASH);
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
