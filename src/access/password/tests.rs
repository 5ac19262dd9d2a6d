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
        // No output, or no salt: nothing could ever match it.
        (
            "$argon2id$v=19$m=64,t=1,p=1$Xs7oW39j0vFYor7r2B9tqQ",
            PasswordError::Malformed("argon2id"),
        ),
        (
            "$argon2id$v=19$m=64,t=1,p=1",
            PasswordError::Malformed("argon2id"),
        ),
        (
            "$argon2id$v=18$m=64,t=1,p=1$Xs7oW39j0vFYor7r2B9tqQ$oiayr4cI427OnHs2/oicuh6T7Tpy5Gd9j1S4MeicOjY",
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

/// argon2id hashes the crate itself makes with what our own hashes never
/// use (version 0x10, two lanes, short and long outputs, associated data),
/// verified by our computation in a caller's memory.
#[test]
fn argon2id_variants_verify_as_the_crate_verifies_them() {
    let right = Secret::from_slice(PASSWORD);
    let wrong = Secret::from_slice(b"correct horsf");
    let build = |version, p_cost, output_len, data: &[u8]| {
        let mut params = argon2::ParamsBuilder::new();
        params.m_cost(64).t_cost(2).p_cost(p_cost).output_len(output_len);
        params.data(argon2::AssociatedData::new(data).unwrap());
        let params = params.build().unwrap();
        Argon2::new(argon2::Algorithm::Argon2id, version, params)
            .hash_password_with_salt(PASSWORD, b"saltsaltsalt")
            .unwrap()
            .to_string()
    };
    let hashes = [
        build(argon2::Version::V0x10, 1, 32, b""),
        build(argon2::Version::V0x13, 2, 32, b""),
        build(argon2::Version::V0x13, 1, 10, b""),
        build(argon2::Version::V0x13, 1, 64, b""),
        build(argon2::Version::V0x13, 1, 32, b"context"),
    ];
    let mut memory = HashMemory::default();
    for hash in &hashes {
        assert_eq!(
            Argon2::default().verify_password(PASSWORD, &PasswordHash::new(hash).unwrap()),
            Ok(())
        );
        assert_eq!(verify_password_in(&mut memory, &right, hash), Ok(true), "{hash}");
        assert_eq!(verify_password_in(&mut memory, &wrong, hash), Ok(false), "{hash}");
    }
}

/// One memory serves every verification in turn, whatever its cost: it
/// grows to the largest, never shrinks, and is wiped after each use.
#[test]
fn one_memory_serves_every_cost_in_turn() {
    let right = Secret::from_slice(PASSWORD);
    let wrong = Secret::from_slice(b"correct horsf");
    let cost = |memory_kib| HashCost {
        memory_kib,
        iterations: 1,
        parallelism: 1,
    };
    let small = hash_password_with(&right, cost(64)).unwrap();
    let large = hash_password_with(&right, cost(256)).unwrap();
    let mut memory = HashMemory::default();
    assert_eq!(memory.bytes(), 0, "nothing until first used");
    let steps: &[(&str, usize)] = &[
        (&small, 64),
        (VECTORS[0].0, 64),
        (&large, 256),
        (&small, 256),
        (VECTORS[2].0, 256), // bcrypt: no argon2 memory
        (VECTORS[0].0, 256),
    ];
    for (hash, kib) in steps {
        assert_eq!(verify_password_in(&mut memory, &right, hash), Ok(true), "{hash}");
        assert_eq!(verify_password_in(&mut memory, &wrong, hash), Ok(false), "{hash}");
        assert_eq!(memory.bytes(), kib * 1024, "{hash}");
        assert!(memory.is_wiped(), "{hash}");
    }
    // Refused before any memory is touched.
    let absurd =
        "$argon2id$v=19$m=4194304,t=1,p=1$Xs7oW39j0vFYor7r2B9tqQ$oiayr4cI427OnHs2/oicuh6T7Tpy5Gd9j1S4MeicOjY";
    assert_eq!(
        verify_password_in(&mut memory, &right, absurd),
        Err(PasswordError::CostTooHigh("m"))
    );
    assert_eq!(memory.bytes(), 256 * 1024);
    // The dummy costs what a recommended hash costs, in the same memory.
    verify_dummy_in(&mut memory, &right);
    assert_eq!(memory.bytes(), 19 * 1024 * 1024);
    assert!(memory.is_wiped());
}
