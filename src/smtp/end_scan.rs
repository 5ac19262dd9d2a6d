//! The end of DATA content, found as it streams; see [`EndScan`].

/// Finds the end of DATA content, `CRLF "." CRLF` (RFC 5321 §4.1.1.4),
/// across reads, and refuses bare CR or LF.
#[derive(Debug, Clone, Copy)]
pub struct EndScan {
    pub state: EndState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndState {
    LineStart,
    Mid,
    Cr,
    Dot,
    DotCr,
}

pub enum Scan {
    /// All consumed, no end yet.
    More,
    /// The final dot ends at this many bytes into the input.
    End(usize),
    /// A bare CR or LF at this offset (bytes before it were emitted).
    Bare(usize),
}

impl EndScan {
    pub fn line_start() -> Self {
        Self {
            state: EndState::LineStart,
        }
    }

    pub fn mid_line() -> Self {
        Self { state: EndState::Mid }
    }

    /// Emits `input`'s content into `out`, except the final `.CRLF` and a
    /// `.`/`.CR` at a line start that might begin it (held until the next
    /// byte decides, possibly in the next read).
    pub fn scan(&mut self, input: &[u8], out: &mut Vec<u8>) -> Scan {
        use EndState::*;
        let mut from = 0;
        for (i, &b) in input.iter().enumerate() {
            self.state = match (self.state, b) {
                (LineStart, b'.') => {
                    out.extend_from_slice(&input[from..i]);
                    from = i + 1;
                    Dot
                }
                (LineStart | Mid, b'\r') => Cr,
                (LineStart | Mid, b'\n') | (Cr, _) if b != b'\n' || self.state != Cr => {
                    out.extend_from_slice(&input[from..i]);
                    return Scan::Bare(i);
                }
                (LineStart | Mid, _) => Mid,
                (Cr, _) => LineStart,
                (Dot, b'\r') => {
                    from = i + 1;
                    DotCr
                }
                (Dot, b'\n') | (DotCr, _) if b != b'\n' || self.state == Dot => {
                    out.extend_from_slice(&input[from..i]);
                    return Scan::Bare(i);
                }
                (Dot, _) => {
                    // A dot-stuffed or dot-started line: release the dot.
                    out.push(b'.');
                    from = i;
                    Mid
                }
                (DotCr, _) => return Scan::End(i + 1),
            };
        }
        out.extend_from_slice(&input[from..]);
        Scan::More
    }
}
