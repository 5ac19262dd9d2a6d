//! The fuzz targets on the stable toolchain, as part of `cargo test`: each
//! target's body (`fuzz/src/lib.rs`) runs on every saved regression input
//! (`fuzz/regressions/TARGET/`), every seed (`fuzz/seeds/TARGET/`), and a
//! fixed number of inputs made by a seeded generator from the seeds and the
//! target's dictionary (`fuzz/dict/`): splices, byte flips, insertions of
//! dictionary tokens, truncations. Deterministic, so a failure reproduces;
//! `FUZZ_SMOKE_ITERS` changes the count (default 20000 per target, 5000
//! for the slow `smtp_guard`).
//!
//! This is a smoke test, not coverage-guided fuzzing: `fuzz/run.sh` runs
//! the same bodies under libFuzzer with cargo-fuzz.
//!
//! A binary of its own: it shares no harness with the socket tests (no
//! proxy, no `support`), and its CPU-bound loops would only add load beside
//! their deadlines.

#[path = "../fuzz/src/lib.rs"]
mod targets;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// The `name="value"` lines of a libFuzzer dictionary, with `\xNN` and `\\` unescaped.
fn dictionary(name: &str) -> Vec<Vec<u8>> {
    let text = std::fs::read_to_string(fuzz_dir().join("dict").join(format!("{name}.dict"))).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains('"'))
        .map(|l| {
            let quoted = &l[l.find('"').unwrap() + 1..l.rfind('"').unwrap()];
            let b = quoted.as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') && i + 3 < b.len() + 1 {
                    out.push(u8::from_str_radix(&quoted[i + 2..i + 4], 16).unwrap());
                    i += 4;
                } else if b[i] == b'\\' && i + 1 < b.len() {
                    out.push(b[i + 1]);
                    i += 2;
                } else {
                    out.push(b[i]);
                    i += 1;
                }
            }
            out
        })
        .collect()
}

/// xorshift64*: small, seeded, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], dict: &[Vec<u8>]) -> Vec<u8> {
    let mut input = if seeds.is_empty() || rng.below(8) == 0 {
        Vec::new()
    } else {
        seeds[rng.below(seeds.len())].clone()
    };
    for _ in 0..1 + rng.below(6) {
        let at = rng.below(input.len() + 1);
        match rng.below(6) {
            0 => {
                let token = &dict[rng.below(dict.len())];
                input.splice(at..at, token.iter().copied());
            }
            1 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
            2 => {
                let n = rng.below(16);
                input.splice(at..at, (0..n).map(|_| rng.next() as u8));
            }
            3 => input.truncate(at),
            4 if !seeds.is_empty() => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len() + 1);
                input.splice(at..at, other[from..].iter().copied());
            }
            _ => {
                // Repeat a slice: long lines, many literals.
                if !input.is_empty() {
                    let from = rng.below(input.len());
                    let piece = input[from..].to_vec();
                    for _ in 0..rng.below(40) {
                        input.extend_from_slice(&piece);
                    }
                }
            }
        }
    }
    input.truncate(8192);
    input
}

fn run(target: &str, dict_name: &str, body: fn(&[u8])) {
    run_n(target, dict_name, body, 20_000);
}

/// [`run`] with another default count, for a target slow to run
/// unoptimised; `FUZZ_SMOKE_ITERS` still sets the count for all.
fn run_n(target: &str, dict_name: &str, body: fn(&[u8]), default_iterations: usize) {
    let iterations: usize = std::env::var("FUZZ_SMOKE_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_iterations);
    for input in files(&fuzz_dir().join("regressions").join(target)) {
        body(&input);
    }
    let seeds = files(&fuzz_dir().join("seeds").join(target));
    assert!(!seeds.is_empty(), "no seeds for {target}");
    for input in &seeds {
        body(input);
    }
    let dict = dictionary(dict_name);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ target.len() as u64);
    for i in 0..iterations {
        let input = mutate(&mut rng, &seeds, &dict);
        let outcome = std::panic::catch_unwind(|| body(&input));
        if let Err(e) = outcome {
            let path = std::env::temp_dir().join(format!("fuzz-smoke-{target}-{i}"));
            std::fs::write(&path, &input).unwrap();
            panic!(
                "{target}: input {i} failed; saved to {} (copy it to fuzz/regressions/{target}/): {e:?}",
                path.display()
            );
        }
    }
}

#[test]
fn imap_parse() {
    run("imap_parse", "imap", targets::imap_parse);
}

#[test]
fn imap_frontend() {
    run("imap_frontend", "imap", targets::imap_frontend);
}

#[test]
fn sasl() {
    run("sasl", "sasl", targets::sasl);
}

#[test]
fn login_name() {
    run("login_name", "login_name", targets::login_name);
}

#[test]
fn pop3_parse() {
    run("pop3_parse", "pop3", targets::pop3_parse);
}

#[test]
fn pop3_frontend() {
    run("pop3_frontend", "pop3", targets::pop3_frontend);
}

#[test]
fn imap_guard() {
    run("imap_guard", "imap", targets::imap_guard);
}

#[test]
fn pop3_guard() {
    run("pop3_guard", "pop3", targets::pop3_guard);
}

#[test]
fn smtp_parse() {
    run("smtp_parse", "smtp", targets::smtp_parse);
}

#[test]
fn smtp_frontend() {
    run("smtp_frontend", "smtp", targets::smtp_frontend);
}

/// Each input runs twice, the second time byte by byte, through two
/// models of the peers: about 1 ms per input unoptimised, so 5000 (4 s).
#[test]
fn smtp_guard() {
    run_n("smtp_guard", "smtp", targets::smtp_guard, 5_000);
}

#[test]
fn address() {
    run("address", "address", targets::address);
}

#[test]
fn proxy_protocol() {
    run("proxy_protocol", "proxy_protocol", targets::proxy_protocol);
}
