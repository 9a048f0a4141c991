//! The lines of an NDJSON upload, split as its chunks arrive.

/// The UTF-8 byte-order mark some editors and tools put at the start of a text file.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Splits an upload into lines as its chunks arrive, leaving out a byte-order mark at its start.
/// The search for the next newline resumes where the last one stopped, so every byte is looked
/// at once: a long line sent in small chunks costs its length, not its length times the number
/// of chunks.
#[derive(Default)]
pub struct Lines {
    buf: bytes::BytesMut,
    /// The body's first bytes have been looked at for a byte-order mark.
    started: bool,
    /// The first `scanned` bytes of `buf` hold no newline.
    scanned: usize,
    /// Bytes looked at so far, for the tests.
    examined: u64,
}

impl Lines {
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
        if !self.started && self.buf.len() >= BOM.len() {
            self.skip_bom();
        }
    }

    fn skip_bom(&mut self) {
        self.started = true;
        if self.buf.starts_with(BOM) {
            let _ = self.buf.split_to(BOM.len());
        }
    }

    /// The next complete line, without its `\n` (or `\r\n`).
    pub fn next_line(&mut self) -> Option<bytes::Bytes> {
        if !self.started && !BOM.starts_with(&self.buf) {
            // Fewer bytes than a mark, and not the start of one.
            self.started = true;
        }
        if !self.started {
            return None;
        }
        let unseen = &self.buf[self.scanned..];
        match memchr::memchr(b'\n', unseen) {
            Some(at) => {
                self.examined += at as u64 + 1;
                let mut line = self.buf.split_to(self.scanned + at + 1);
                self.scanned = 0;
                line.truncate(line.len() - 1);
                if line.last() == Some(&b'\r') {
                    line.truncate(line.len() - 1);
                }
                Some(line.freeze())
            }
            None => {
                self.examined += unseen.len() as u64;
                self.scanned = self.buf.len();
                None
            }
        }
    }

    /// What is left after the last newline (a last line without one), once the body has ended.
    pub fn rest(&mut self) -> Option<bytes::Bytes> {
        if !self.started {
            self.skip_bom();
        }
        self.scanned = 0;
        (!self.buf.is_empty()).then(|| self.buf.split().freeze())
    }

    /// Bytes of a line not finished yet.
    pub fn unfinished(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::Lines;

    /// Feeds `chunks` and collects every line, the last one at the end of the body included.
    fn split(chunks: &[&[u8]]) -> (Vec<String>, Lines) {
        let mut lines = Lines::default();
        let mut out = Vec::new();
        for c in chunks {
            lines.push(c);
            while let Some(l) = lines.next_line() {
                out.push(String::from_utf8(l.to_vec()).unwrap());
            }
        }
        if let Some(l) = lines.rest() {
            out.push(String::from_utf8(l.to_vec()).unwrap());
        }
        (out, lines)
    }

    #[test]
    fn lines_split_across_chunks_crlf_empty_lines_and_a_last_line_without_newline() {
        let (lines, _) = split(&[
            b"{\"a\"",
            b":1}\r",
            b"\n\n",
            b"{\"b\":2}\n  \r\n{\"c\"",
            b":3}",
        ]);
        assert_eq!(lines, ["{\"a\":1}", "", "{\"b\":2}", "  ", "{\"c\":3}"]);
        let (lines, _) = split(&[b"x\n", b"", b"y\n"]);
        assert_eq!(
            lines,
            ["x", "y"],
            "a final newline makes no empty last line"
        );
        let (lines, _) = split(&[b"\r\n\r\n"]);
        assert_eq!(lines, ["", ""]);
        let (lines, _) = split(&[]);
        assert!(lines.is_empty());
        // every byte in one chunk each
        let text = b"ab\ncd\r\n\nef";
        let chunks: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(split(&chunks).0, ["ab", "cd", "", "ef"]);
    }

    #[test]
    fn a_byte_order_mark_at_the_start_is_left_out_however_it_arrives() {
        let body = b"\xEF\xBB\xBF{\"a\":1}\n{\"b\":2}\n";
        for size in 1..=body.len() {
            let chunks: Vec<&[u8]> = body.chunks(size).collect();
            assert_eq!(
                split(&chunks).0,
                ["{\"a\":1}", "{\"b\":2}"],
                "chunks of {size}"
            );
        }
        // Only at the start: a mark later in the body is the line's own.
        let (lines, _) = split(&[b"x\n\xEF\xBB\xBFy\n"]);
        assert_eq!(lines, ["x", "\u{feff}y"]);
        // A body that is only a mark, or shorter than one.
        assert!(split(&[b"\xEF\xBB\xBF"]).0.is_empty());
        let mut short = Lines::default();
        short.push(b"\xEF\xBB");
        assert!(short.next_line().is_none());
        assert_eq!(short.rest().as_deref(), Some(&b"\xEF\xBB"[..]));
        assert_eq!(split(&[b"ab"]).0, ["ab"]);
    }

    #[test]
    fn each_byte_is_looked_at_once_however_the_upload_is_chunked() {
        // A 1 MiB line in 4 KiB chunks, then two short lines: the old splitter looked at the
        // whole pending buffer again for every chunk (about 128 MiB looked at here).
        let mut body = vec![b'x'; 1 << 20];
        body.extend_from_slice(b"\n{}\n{}");
        let chunks: Vec<&[u8]> = body.chunks(4096).collect();
        let (lines, splitter) = split(&chunks);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].len(), 1 << 20);
        assert!(
            splitter.examined <= body.len() as u64,
            "looked at {} bytes of a {}-byte body",
            splitter.examined,
            body.len()
        );
    }

    #[test]
    fn an_unfinished_line_is_measured_for_the_length_limit() {
        let mut lines = Lines::default();
        lines.push(b"done\nnot yet");
        assert_eq!(lines.next_line().as_deref(), Some(&b"done"[..]));
        assert_eq!(lines.next_line(), None);
        assert_eq!(lines.unfinished(), 7);
    }
}
