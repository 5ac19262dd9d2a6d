//! Parser and SASL costs per pre-login command: what every login pays
//! before any hashing or network work. `cargo bench --bench parsers`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pec_proxy::testing::access::login_name::parse_login_name;
use pec_proxy::testing::frontend::sasl::{Exchange, Mechanism};
use pec_proxy::testing::imap::frontend::{Event, FrontendOptions, ImapFrontend};
use pec_proxy::testing::imap::parse::{decode_auth_line, decode_command};

fn imap(c: &mut Criterion) {
    let mut group = c.benchmark_group("imap");
    let cases: &[(&str, &[u8])] = &[
        ("login_atom", b"a1 LOGIN alice@pec.example s3cret-pass\r\n"),
        (
            "login_quoted",
            b"a1 LOGIN \"alice@pec.example\" \"s3 \\\"cret\\\\ pass\"\r\n",
        ),
        (
            "login_literals",
            b"a1 LOGIN {17+}\r\nalice@pec.example {11+}\r\ns3cret-pass\r\n",
        ),
        (
            "authenticate_plain_ir",
            b"a1 AUTHENTICATE PLAIN AGFsaWNlQHBlYy5leGFtcGxlAHMzY3JldC1wYXNz\r\n",
        ),
        (
            "id",
            b"a1 ID (\"name\" \"Thunderbird\" \"version\" \"128.3.0\" \"os\" \"Linux\")\r\n",
        ),
    ];
    for (name, input) in cases {
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function(*name, |b| b.iter(|| decode_command(black_box(input))));
    }
    group.bench_function("auth_line", |b| {
        b.iter(|| decode_auth_line(black_box(b"AGFsaWNlAHMzY3JldA==\r\n")))
    });
    // The whole pre-login front-end for a typical client: CAPABILITY, ID, LOGIN.
    group.bench_function("frontend_session", |b| {
        b.iter(|| {
            let mut fe = ImapFrontend::new(FrontendOptions::default(), true);
            fe.receive(black_box(
                b"1 CAPABILITY\r\n2 ID (\"name\" \"Thunderbird\")\r\n3 LOGIN alice@pec.example s3cret\r\n",
            ));
            while let Some(ev) = fe.next_event() {
                if matches!(ev, Event::Login(_)) {
                    break;
                }
            }
        })
    });
    group.finish();
}

fn sasl_and_names(c: &mut Criterion) {
    c.bench_function("sasl_plain_decode", |b| {
        b.iter(|| {
            Exchange::start(
                Mechanism::Plain,
                Some(black_box(b"AGFsaWNlQHBlYy5leGFtcGxlAHMzY3JldC1wYXNz")),
            )
        })
    });
    c.bench_function("login_name_collaborator", |b| {
        b.iter(|| parse_login_name(black_box(b"Anna/Ufficio.Legale@PEC.example.it"), '/'))
    });
}

criterion_group!(benches, imap, sasl_and_names);
criterion_main!(benches);
