//! The message content phase of the [`Guard`]: the header block held back
//! for the PEC header rules, then the body streamed through under the size
//! limit and the bare-line-end check. Split from `guard.rs` to keep each file
//! one idea; same state machine, same fields.

use super::*;

impl Guard {
    /// One line of the header block.
    pub(super) fn next_header_line(&mut self) -> bool {
        let Mode::Header { block } = &mut self.mode else {
            return false;
        };
        let Some(lf) = self.client_in.iter().position(|&b| b == b'\n') else {
            // The partial line starts a line; "." or "." CR may still be
            // the final dot, which is no header and does not count.
            let maybe_end = b".\r\n".starts_with(&self.client_in);
            if block.len() + self.client_in.len() > self.opts.max_header_bytes && !maybe_end {
                self.refuse_content(reply::HEADER_TOO_LARGE, false, EndScan::line_start());
                return true;
            }
            return false;
        };
        let line = self.client_in.split_to(lf + 1);
        let crlf = line.len() >= 2 && line[line.len() - 2] == b'\r';
        if !crlf {
            // A bare LF ends no line: `LF "." CRLF` after it is content, not
            // the end of data (the SMTP smuggling desync), so the dropping
            // goes on mid-line, as in the body.
            self.refuse_content(BARE_NEWLINE, false, EndScan::mid_line());
            return true;
        }
        if line[..line.len() - 2].contains(&b'\r') {
            self.refuse_content(BARE_NEWLINE, false, EndScan::line_start());
            return true;
        }
        let end_of_data = &line[..] == b".\r\n";
        if !end_of_data && block.len() + line.len() > self.opts.max_header_bytes {
            self.refuse_content(reply::HEADER_TOO_LARGE, false, EndScan::line_start());
            return true;
        }
        block.extend_from_slice(&line);
        if &line[..] != b"\r\n" && !end_of_data {
            return true;
        }
        // The header block is complete (or so is the whole message).
        let Mode::Header { block } = std::mem::replace(&mut self.mode, Mode::Commands) else {
            return false;
        };
        let headers = &block[..block.len() - line.len()];
        let none = Recipients::default();
        let recipients = self.tx.as_ref().map_or(&none, |t| &t.recipients);
        match checks::check_headers(headers, &self.mailbox, recipients, self.opts.header_rules) {
            Ok(()) => {
                // The block goes upstream whole at the 354, before any read
                // of the body is checked; it may be the whole message.
                let size = (block.len() - if end_of_data { line.len() } else { 0 }) as u64;
                let rcpts = self.tx.as_ref().map_or(1, |t| t.rcpts.max(1));
                let ok = size.saturating_mul(rcpts) <= self.opts.max_message_bytes;
                if self.opts.check_size && (!ok || end_of_data) {
                    checks::count(Check::Size, ok);
                }
                if !self.opts.check_size || ok {
                    self.mode = self.go_ahead(block, end_of_data);
                } else if end_of_data {
                    self.refused(reply::TOO_BIG, false);
                } else {
                    self.refuse_content(reply::TOO_BIG, false, EndScan::line_start());
                }
            }
            Err(refusal) => {
                if refusal == HeaderRefusal::LineTooLong {
                    metrics_header_line_too_long();
                }
                if end_of_data {
                    self.refused(refusal.reply(), false);
                } else {
                    self.refuse_content(refusal.reply(), false, EndScan::line_start());
                }
            }
        }
        true
    }

    pub(super) fn refuse_content(&mut self, why: &str, kill_upstream: bool, scan: EndScan) {
        self.mode = Mode::Swallow {
            scan,
            reply: why.to_owned(),
            kill_upstream,
        };
    }

    /// A message was refused and its content is all read.
    pub(super) fn refused(&mut self, why: &str, kill_upstream: bool) {
        self.mode = Mode::Commands;
        self.queue_local(why);
        if kill_upstream {
            // The upstream holds part of the message and no way to abort it.
            self.queue_local(reply::UPSTREAM_LOST);
            self.flush_locals_all();
            self.end_transaction(false);
            self.finished = true;
        } else {
            self.forward(b"RSET\r\n", Expect::HiddenRset);
        }
    }

    /// Body bytes: streamed (Body) or dropped (Swallow) up to the final dot.
    pub(super) fn content(&mut self) -> bool {
        if self.client_in.is_empty() {
            return false;
        }
        let data = self.client_in.split();
        match std::mem::replace(&mut self.mode, Mode::Commands) {
            Mode::Body { mut scan, mut size } => {
                let start = self.to_upstream.len();
                let outcome = scan.scan(&data, &mut self.to_upstream);
                size += (self.to_upstream.len() - start) as u64;
                let rcpts = self.tx.as_ref().map_or(1, |t| t.rcpts.max(1));
                if self.opts.check_size && size.saturating_mul(rcpts) > self.opts.max_message_bytes {
                    checks::count(Check::Size, false);
                    // This chunk never leaves; what went before cannot be called back.
                    self.to_upstream.truncate(start);
                    match outcome {
                        // The whole message is here: refuse it now.
                        Scan::End(used) => {
                            self.client_in = BytesMut::from(&data[used..]);
                            self.refused(reply::TOO_BIG, true);
                        }
                        // Drop the rest of the message, going on from where
                        // the scan stopped: the end of this read (in the
                        // state it reached there: a final dot may start the
                        // next read), or just past a bare line end.
                        Scan::More | Scan::Bare(_) => {
                            let (scan, rest) = match outcome {
                                Scan::Bare(resume) => (EndScan::mid_line(), &data[resume..]),
                                _ => (scan, &data[data.len()..]),
                            };
                            self.client_in = BytesMut::from(rest);
                            self.mode = Mode::Swallow {
                                scan,
                                reply: reply::TOO_BIG.to_owned(),
                                kill_upstream: true,
                            };
                        }
                    }
                    return true;
                }
                match outcome {
                    Scan::More => self.mode = Mode::Body { scan, size },
                    Scan::End(used) => {
                        if self.opts.check_size {
                            checks::count(Check::Size, true);
                        }
                        self.to_upstream.extend_from_slice(b".\r\n");
                        self.pending.push_back(Pending::Upstream(Expect::DataEnd));
                        self.client_in = BytesMut::from(&data[used..]);
                    }
                    Scan::Bare(resume) => {
                        self.client_in = BytesMut::from(&data[resume..]);
                        self.refuse_content(BARE_NEWLINE, true, EndScan::mid_line());
                    }
                }
            }
            Mode::Swallow {
                mut scan,
                reply,
                kill_upstream,
            } => {
                let mut sink = Vec::new();
                let mut off = 0;
                loop {
                    match scan.scan(&data[off..], &mut sink) {
                        Scan::More => {
                            self.mode = Mode::Swallow {
                                scan,
                                reply,
                                kill_upstream,
                            };
                            break;
                        }
                        Scan::End(used) => {
                            self.client_in = BytesMut::from(&data[off + used..]);
                            self.refused(&reply, kill_upstream);
                            break;
                        }
                        // Already refusing: a bare newline is just dropped.
                        Scan::Bare(resume) => {
                            off += resume;
                            scan.state = EndState::Mid;
                        }
                    }
                    sink.clear();
                }
            }
            other => self.mode = other,
        }
        true
    }
}
