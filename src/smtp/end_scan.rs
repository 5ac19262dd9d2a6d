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
    /// A bare CR or LF, and the offset where the scan goes on, mid-line:
    /// just past a bare LF, or at the byte after a bare CR (that byte may
    /// start a CRLF of its own: in `CR CR LF "." CR LF` the data ends). The
    /// bytes before the bare one were emitted.
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
                (LineStart | Mid, b'\n') | (Dot, b'\n') => {
                    out.extend_from_slice(&input[from..i]);
                    return Scan::Bare(i + 1);
                }
                (LineStart | Mid, _) => Mid,
                (Cr, b'\n') => LineStart,
                (DotCr, b'\n') => return Scan::End(i + 1),
                // The CR before this byte was bare; this byte is not part
                // of it, and is read again mid-line.
                (Cr | DotCr, _) => {
                    out.extend_from_slice(&input[from..i]);
                    return Scan::Bare(i);
                }
                (Dot, b'\r') => {
                    from = i + 1;
                    DotCr
                }
                (Dot, _) => {
                    // A dot-stuffed or dot-started line: release the dot.
                    out.push(b'.');
                    from = i;
                    Mid
                }
            };
        }
        out.extend_from_slice(&input[from..]);
        Scan::More
    }
}
