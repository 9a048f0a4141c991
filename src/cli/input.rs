//! Input files for `llm-judge run`, read as a stream: JSON Lines (plain or gzip) and CSV with a
//! header (plain or gzip; its rows are read by [`super::csv_rows`]). Nothing is loaded whole:
//! records come one at a time, each with the 1-based line number it starts on.
//!
//! A record that cannot be read (a line that is not JSON or not an object, a CSV row with the
//! wrong number of cells or invalid UTF-8) is yielded as `Err(message)` and reading goes on; only
//! an I/O error (including a corrupt or truncated gzip stream) ends the stream.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use serde_json::Value;

use super::csv_rows::CsvRows;
use super::record::Record;
use llm_judge_judge::JudgeKind;

/// The layout of the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Csv,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const BUFFER: usize = 256 * 1024;

/// An opened input: its layout, whether it is gzip, and the byte stream (decompressed).
pub struct Opened {
    pub format: Format,
    pub gzip: bool,
    reader: Box<dyn BufRead + Send>,
}

/// The layout named by the file name (`.csv`, `.csv.gz` are CSV; anything else JSON Lines).
pub fn format_from_name(path: &Path) -> Format {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    if name.ends_with(".csv") {
        Format::Csv
    } else {
        Format::Jsonl
    }
}

/// Opens `path` (`-` is standard input); gzip is recognised by its magic bytes, whatever the name.
pub fn open(path: &Path, format: Option<Format>) -> io::Result<Opened> {
    let raw: Box<dyn Read + Send> = if path == Path::new("-") {
        Box::new(io::stdin())
    } else {
        Box::new(File::open(path)?)
    };
    let mut buffered = BufReader::with_capacity(BUFFER, raw);
    let gzip = buffered.fill_buf()?.starts_with(&GZIP_MAGIC);
    let reader: Box<dyn BufRead + Send> = if gzip {
        Box::new(BufReader::with_capacity(
            BUFFER,
            MultiGzDecoder::new(buffered),
        ))
    } else {
        Box::new(buffered)
    };
    Ok(Opened {
        format: format.unwrap_or_else(|| format_from_name(path)),
        gzip,
        reader,
    })
}

impl Opened {
    /// The records. For CSV the header is read and checked first: every column must be a field
    /// of `kind` and the required fields must be there (the error says what is wrong).
    pub fn records(
        self,
        kind: JudgeKind,
    ) -> Result<Box<dyn Iterator<Item = io::Result<Record>> + Send>, String> {
        match self.format {
            Format::Jsonl => Ok(Box::new(JsonLines {
                reader: self.reader,
                line: 0,
                buf: Vec::new(),
                done: false,
            })),
            Format::Csv => Ok(Box::new(CsvRows::new(self.reader, kind)?)),
        }
    }
}

struct JsonLines {
    reader: Box<dyn BufRead + Send>,
    line: usize,
    buf: Vec<u8>,
    done: bool,
}

impl Iterator for JsonLines {
    type Item = io::Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            self.buf.clear();
            match self.reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => self.done = true,
                Ok(_) => {
                    self.line += 1;
                    if self.buf.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    return Some(Ok((self.line, parse_json_line(&self.buf))));
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

/// One JSON Lines line into an item object.
pub fn parse_json_line(bytes: &[u8]) -> Result<Value, String> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(Value::Object(map)),
        Ok(other) => Err(format!(
            "expected a JSON object (one item per line), got {}",
            json_type(&other)
        )),
        Err(e) => Err(format!("not valid JSON: {e}")),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Counts the records cheaply (for the progress bar's total), without parsing JSON: non-blank
/// lines for JSON Lines, rows for CSV. `None` for gzip and standard input.
pub fn count_records(path: &Path, format: Format) -> Option<usize> {
    if path == Path::new("-") {
        return None;
    }
    let mut file = BufReader::with_capacity(BUFFER, File::open(path).ok()?);
    if file.fill_buf().ok()?.starts_with(&GZIP_MAGIC) {
        return None;
    }
    match format {
        Format::Jsonl => {
            let mut count = 0;
            let mut blank = true;
            loop {
                let chunk = file.fill_buf().ok()?;
                if chunk.is_empty() {
                    break;
                }
                for &b in chunk {
                    if b == b'\n' {
                        count += usize::from(!blank);
                        blank = true;
                    } else if !b.is_ascii_whitespace() {
                        blank = false;
                    }
                }
                let n = chunk.len();
                file.consume(n);
            }
            Some(count + usize::from(!blank))
        }
        Format::Csv => {
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(true)
                .flexible(true)
                .from_reader(file);
            let mut record = csv::ByteRecord::new();
            let mut count = 0;
            loop {
                match reader.read_byte_record(&mut record) {
                    Ok(true) => count += 1,
                    Ok(false) => break,
                    Err(e) if matches!(e.kind(), csv::ErrorKind::Io(_)) => return None,
                    Err(_) => count += 1,
                }
            }
            Some(count)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(text: &[u8], name: &str, kind: JudgeKind) -> Vec<Record> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let count = count_records(&path, format_from_name(&path));
        let records: Vec<Record> = open(&path, None)
            .unwrap()
            .records(kind)
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        if !text.starts_with(&GZIP_MAGIC) {
            assert_eq!(count, Some(records.len()), "the pre-count agrees");
        }
        records
    }

    #[test]
    fn json_lines_skip_blank_lines_but_keep_line_numbers() {
        let text = b"{\"a\":1}\n\n  \r\n[1]\nnot json\n{\"b\":2}";
        let r = read_all(text, "x.jsonl", JudgeKind::Binary);
        assert_eq!(r.len(), 4);
        assert_eq!(r[0], (1, Ok(serde_json::json!({"a": 1}))));
        assert_eq!(r[1].0, 4);
        assert!(r[1].1.as_ref().unwrap_err().contains("an array"));
        assert_eq!(r[2].0, 5);
        assert!(r[2].1.as_ref().unwrap_err().contains("not valid JSON"));
        assert_eq!(r[3], (6, Ok(serde_json::json!({"b": 2}))));
    }

    #[test]
    fn gzip_is_recognised_by_its_magic_bytes() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"{\"a\":1}\n{\"a\":2}\n").unwrap();
        let bytes = gz.finish().unwrap();
        let r = read_all(&bytes, "data.jsonl", JudgeKind::Binary);
        assert_eq!(r.len(), 2);
        assert_eq!(r[1], (2, Ok(serde_json::json!({"a": 2}))));
    }

    #[test]
    fn csv_rows_are_counted_even_when_a_cell_spans_lines() {
        let text = b"question,answer,prediction\n\"a\nb\",4,4\n\nq,a,p\nshort\n";
        let r = read_all(text, "d.csv", JudgeKind::Binary);
        assert_eq!(r.len(), 3);
        assert_eq!((r[0].0, r[1].0, r[2].0), (2, 5, 6));
    }
}
