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
