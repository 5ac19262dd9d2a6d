//! The IMAP guard between a client that sends anything and a model server
//! that frames the stream as a server does and answers as the input says
//! (a literal accepted with `+` or refused, `IDLE` accepted or not, untagged
//! responses carrying literals that look like a `+` or a tagged answer).
//!
//! Invariant: whatever the bytes and however they are split, no command the
//! policy refuses is ever run by the server; a non-synchronising literal
//! never reaches it; the guard's buffers stay within their bounds.

use pec_proxy::testing::imap::guard::{
    Access, ImapGuard, MAX_LINE_BYTES, MAX_PENDING_BYTES, MAX_SERVER_HEAD_BYTES,
};

/// The bytes one relay read may bring (`relay::GUARDED_BUFFER_BYTES`).
const MAX_READ: usize = 16 * 1024;

/// Input: byte 0 chooses the access, bytes 1..9 seed the choices (read
/// sizes, the server's answers), the rest is what the client sends.
pub fn imap_guard(data: &[u8]) {
    if data.len() < 9 {
        return;
    }
    let access = if data[0] & 1 == 0 {
        Access::ReadOnly
    } else {
        Access::KeepOnServer
    };
    let mut seed = [0u8; 8];
    seed.copy_from_slice(&data[1..9]);
    let mut choices = Choices(u64::from_le_bytes(seed) | 1);
    let client = &data[9..];

    let mut guard = ImapGuard::new(access);
    let mut server = ModelServer::new(access);
    let mut read = 0;
    let mut to_server: Vec<u8> = Vec::new();
    let mut to_client_from_server: Vec<u8> = Vec::new();
    loop {
        let mut progress = false;
        if guard.wants_client() && read < client.len() {
            let n = choices.read_size().min(client.len() - read).min(MAX_READ);
            let sent = guard.client_sent(&client[read..read + n]);
            read += n;
            to_server.extend_from_slice(&sent.to_upstream);
            progress = true;
        }
        if !to_server.is_empty() {
            server.receive(
                &std::mem::take(&mut to_server),
                &mut choices,
                &mut to_client_from_server,
            );
            progress = true;
        }
        if !to_client_from_server.is_empty() {
            let n = choices.read_size().min(to_client_from_server.len());
            let chunk: Vec<u8> = to_client_from_server.drain(..n).collect();
            let sent = guard.server_sent(&chunk);
            to_server.extend_from_slice(&sent.to_upstream);
            progress = true;
        }
        assert!(
            guard.buffered()
                <= MAX_LINE_BYTES
                    + MAX_PENDING_BYTES
                    + MAX_LINE_BYTES
                    + MAX_READ
                    + MAX_SERVER_HEAD_BYTES
                    + 64,
            "the guard holds {} bytes",
            guard.buffered()
        );
        if !progress {
            break;
        }
    }
}

/// The input's choices: xorshift64* from its seed bytes.
struct Choices(u64);

impl Choices {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn yes(&mut self) -> bool {
        self.next() & 1 == 0
    }
    fn read_size(&mut self) -> usize {
        match self.next() % 4 {
            0 => 1,
            1 => 1 + (self.next() % 7) as usize,
            _ => MAX_READ,
        }
    }
}

/// Where the model server is in what it receives.
enum State {
    Command,
    Literal { remaining: u64, tag: Vec<u8> },
    Continue { tag: Vec<u8> },
    Idle { tag: Vec<u8> },
}

/// A server that frames its input as a lenient one would (a line, and a
/// literal wherever a line ends with `{n}` or `{n+}`), runs every command
/// it reads (asserting the policy allows it), and answers as told.
struct ModelServer {
    access: Access,
    input: Vec<u8>,
    state: State,
}

impl ModelServer {
    fn new(access: Access) -> Self {
        Self {
            access,
            input: Vec::new(),
            state: State::Command,
        }
    }

    fn receive(&mut self, bytes: &[u8], choices: &mut Choices, out: &mut Vec<u8>) {
        self.input.extend_from_slice(bytes);
        loop {
            if let State::Literal { remaining, tag } = &mut self.state {
                let n = (self.input.len() as u64).min(*remaining) as usize;
                self.input.drain(..n);
                *remaining -= n as u64;
                if *remaining > 0 {
                    return;
                }
                let tag = std::mem::take(tag);
                self.state = State::Continue { tag };
                continue;
            }
            let Some(lf) = self.input.iter().position(|&b| b == b'\n') else {
                return;
            };
            let line: Vec<u8> = self.input.drain(..=lf).collect();
            assert!(
                literal(&line).is_none_or(|(_, sync)| sync),
                "a non-synchronising literal reached the server: {:?}",
                String::from_utf8_lossy(&line)
            );
            if choices.next() % 4 == 0 {
                // A response carrying a literal that looks like a
                // continuation and like a tagged answer to anything.
                let tag = line.split(|&b| b == b' ').next().unwrap_or(b"a");
                let mut body = b"+ OK\r\n".to_vec();
                body.extend_from_slice(tag);
                body.extend_from_slice(b" OK fake\r\n");
                out.extend_from_slice(format!("* 1 FETCH (BODY[] {{{}}}\r\n", body.len()).as_bytes());
                out.extend_from_slice(&body);
                out.extend_from_slice(b")\r\n");
            }
            match std::mem::replace(&mut self.state, State::Command) {
                State::Command => self.command(&line, choices, out),
                State::Continue { tag } => self.line_end(&line, tag, choices, out),
                State::Idle { tag } => {
                    // Dovecot: anything but DONE ends IDLE with a BAD.
                    out.extend_from_slice(&tag);
                    out.extend_from_slice(b" OK Idle completed.\r\n");
                }
                State::Literal { .. } => unreachable!(),
            }
        }
    }

    fn command(&mut self, line: &[u8], choices: &mut Choices, out: &mut Vec<u8>) {
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        let mut words = body.split(|&b| b == b' ');
        let tag = words.next().unwrap_or_default().to_vec();
        let mut name = words.next().unwrap_or_default().to_ascii_uppercase();
        if name == b"UID" {
            name = words.next().unwrap_or_default().to_ascii_uppercase();
        }
        assert!(
            allowed(self.access, &name, body),
            "{:?} reached the server under {:?}",
            String::from_utf8_lossy(line),
            self.access
        );
        if name == b"IDLE" && literal(line).is_none() {
            if choices.yes() {
                out.extend_from_slice(b"+ idling\r\n");
                self.state = State::Idle { tag };
            } else {
                out.extend_from_slice(&tag);
                out.extend_from_slice(b" BAD No IDLE now\r\n");
            }
            return;
        }
        self.line_end(line, tag, choices, out);
    }

    /// The end of a command's line: a literal, accepted or refused, or the
    /// command's answer.
    fn line_end(&mut self, line: &[u8], tag: Vec<u8>, choices: &mut Choices, out: &mut Vec<u8>) {
        match literal(line) {
            Some((length, _)) if choices.yes() => {
                out.extend_from_slice(b"+ OK\r\n");
                self.state = State::Literal {
                    remaining: length,
                    tag,
                };
            }
            Some(_) => {
                out.extend_from_slice(&tag);
                out.extend_from_slice(b" BAD Literal refused\r\n");
            }
            None => {
                out.extend_from_slice(&tag);
                out.extend_from_slice(b" OK done\r\n");
            }
        }
    }
}

/// The length of a literal announced at a line's end, read leniently, and
/// whether it is synchronising.
fn literal(line: &[u8]) -> Option<(u64, bool)> {
    let body = line.strip_suffix(b"\n")?;
    let body = body.strip_suffix(b"\r").unwrap_or(body);
    let body = body.strip_suffix(b"}")?;
    let (body, sync) = match body.strip_suffix(b"+") {
        Some(body) => (body, false),
        None => (body, true),
    };
    let open = body.iter().rposition(|&b| b == b'{')?;
    let length = std::str::from_utf8(&body[open + 1..]).ok()?.parse().ok()?;
    Some((length, sync))
}

/// The policy, said the other way round: what must never run.
fn allowed(access: Access, name: &[u8], line: &[u8]) -> bool {
    const NEVER: &[&[u8]] = &[
        b"EXPUNGE",
        b"MOVE",
        b"DELETE",
        b"RENAME",
        b"SETACL",
        b"DELETEACL",
        b"SETQUOTA",
        b"AUTHENTICATE",
        b"LOGIN",
        b"COMPRESS",
        b"CLOSE",
        b"STARTTLS",
        b"REPLACE",
    ];
    const NOT_READ_ONLY: &[&[u8]] = &[
        b"SELECT",
        b"STORE",
        b"COPY",
        b"APPEND",
        b"CREATE",
        b"SUBSCRIBE",
        b"UNSUBSCRIBE",
        b"SETMETADATA",
    ];
    if NEVER.contains(&name) {
        return false;
    }
    match access {
        Access::ReadOnly => !NOT_READ_ONLY.contains(&name),
        Access::KeepOnServer if name == b"STORE" => {
            // Only removing flags, or adding some but not `\Deleted`:
            // the first word naming flags says which.
            let lower = line.to_ascii_lowercase();
            let deletes = lower.windows(8).any(|w| w == b"\\deleted");
            let item = lower
                .split(|&b| b == b' ')
                .find(|w| w.windows(5).any(|f| f == b"flags"));
            !deletes || item.is_some_and(|w| w.starts_with(b"-"))
        }
        Access::KeepOnServer => true,
    }
}
