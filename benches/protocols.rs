//! POP3 and SMTP pre-login parsing, and the login decision (policy) with
//! and without the password hash. `cargo bench --bench protocols`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pec_proxy::testing::access::login_name::parse_login_name;
use pec_proxy::testing::access::password::{HashCost, hash_password_with};
use pec_proxy::testing::access::policy::{self, Claim, PasswordCheck};
use pec_proxy::testing::access::verified::VerifiedCache;
use pec_proxy::testing::protocol::Protocol;
use pec_proxy::testing::secret::Secret;
use pec_proxy::testing::store::account::MailboxRecord;

fn pop3(c: &mut Criterion) {
    let mut group = c.benchmark_group("pop3");
    let cases: &[(&str, &[u8])] = &[
        ("user", b"USER alice@pec.example\r\n"),
        ("pass", b"PASS s3cret-pass\r\n"),
        (
            "auth_plain_ir",
            b"AUTH PLAIN AGFsaWNlQHBlYy5leGFtcGxlAHMzY3JldC1wYXNz\r\n",
        ),
        ("capa", b"CAPA\r\n"),
    ];
    for (name, input) in cases {
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function(*name, |b| {
            b.iter(|| pec_proxy::testing::pop3::parse::decode_command(black_box(input)))
        });
    }
    group.bench_function("auth_line", |b| {
        b.iter(|| pec_proxy::testing::pop3::parse::decode_auth_line(black_box(b"AGFsaWNlAHMzY3JldA==\r\n")))
    });
    group.finish();
}

fn smtp(c: &mut Criterion) {
    let mut group = c.benchmark_group("smtp");
    let cases: &[(&str, &[u8])] = &[
        ("ehlo", b"EHLO client.example.it\r\n"),
        (
            "auth_plain_ir",
            b"AUTH PLAIN AGFsaWNlQHBlYy5leGFtcGxlAHMzY3JldC1wYXNz\r\n",
        ),
        (
            "mail_from",
            b"MAIL FROM:<alice@pec.example> SIZE=12345 BODY=8BITMIME\r\n",
        ),
        ("rcpt_to", b"RCPT TO:<bob@pec.example>\r\n"),
        ("data", b"DATA\r\n"),
    ];
    for (name, input) in cases {
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function(*name, |b| {
            b.iter(|| pec_proxy::testing::smtp::parse::decode_command(black_box(input)))
        });
    }
    group.bench_function("auth_line", |b| {
        b.iter(|| pec_proxy::testing::smtp::parse::decode_auth_line(black_box(b"AGFsaWNlAHMzY3JldA==\r\n")))
    });
    group.finish();
}

/// Only what the verified-password cache knows, as the authenticator's
/// fast path.
struct CacheOnly<'a>(&'a VerifiedCache);

impl PasswordCheck for CacheOnly<'_> {
    fn verify(&self, password: &Secret, hash: &str) -> bool {
        self.0.contains(hash, password)
    }
    fn dummy(&self, _: &Secret) {}
}

fn policy_decision(c: &mut Criterion) {
    let mut group = c.benchmark_group("policy");
    let password = Secret::from_slice(b"s3cret-pass");
    let login = parse_login_name(b"alice@pec.example", '/').unwrap();
    let request = Claim {
        protocol: Protocol::Imap,
        login: &login,
        password: &password,
        client_ip: "192.0.2.10".parse().unwrap(),
        tls: true,
    };
    for (name, cost) in [
        ("check_test_only_weak", HashCost::TEST_ONLY_WEAK),
        ("check_recommended_argon2id", HashCost::RECOMMENDED),
    ] {
        let hash = hash_password_with(&password, cost).unwrap();
        let record = MailboxRecord::new("alice@pec.example", Some(hash.clone()));
        if cost == HashCost::RECOMMENDED {
            // ~20 ms an iteration: fewer, shorter samples.
            group.sample_size(10);
            group.measurement_time(Duration::from_secs(3));
        }
        group.bench_function(name, |b| {
            b.iter(|| policy::check(black_box(&request), Some(&record), 1_700_000_000).unwrap())
        });
        if cost == HashCost::RECOMMENDED {
            let cache = VerifiedCache::new(Duration::from_secs(3600));
            cache.insert(&hash, &password);
            group.sample_size(100);
            group.measurement_time(Duration::from_secs(3));
            group.bench_function("check_recommended_cached", |b| {
                b.iter(|| {
                    policy::check_with(
                        black_box(&request),
                        Some(&record),
                        1_700_000_000,
                        &CacheOnly(&cache),
                    )
                    .unwrap()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, pop3, smtp, policy_decision);
criterion_main!(benches);
