//! CSV input for `llm-judge run`: a header naming item fields, one item per row.
//!
//! Every column must be a field of the kind being judged (checked before anything runs); an
//! empty cell is an absent field; number, boolean, image-list and options cells are read into
//! their JSON types.

use std::io::{self, BufRead};

use serde_json::{Map, Value};

use super::record::Record;
use llm_judge_judge::JudgeKind;

/// The fields an item of `kind` may have, and those it must have.
pub fn fields(kind: JudgeKind) -> (&'static [&'static str], &'static [&'static str]) {
    match kind {
        JudgeKind::Binary => (
            &[
                "question",
                "answer",
                "prediction",
                "images",
                "prompt",
                "options",
                "judge",
                "output_format",
                "label",
            ],
            &["question", "answer", "prediction"],
        ),
        JudgeKind::Score => (
            &[
                "question",
                "answer",
                "prediction",
                "rubric",
                "min",
                "max",
                "pass_score",
                "images",
                "prompt",
                "options",
                "judge",
            ],
            &["question", "prediction"],
        ),
        JudgeKind::Compare => (
            &[
                "question",
                "answer",
                "response_a",
                "response_b",
                "swap",
                "images",
                "prompt",
                "options",
                "judge",
            ],
            &["question", "response_a", "response_b"],
        ),
    }
}

pub struct CsvRows {
    reader: csv::Reader<Tape>,
    columns: Vec<String>,
    record: csv::StringRecord,
    done: bool,
}

impl CsvRows {
    pub fn new(reader: Box<dyn BufRead + Send>, kind: JudgeKind) -> Result<Self, String> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(Tape {
                inner: reader,
                kept: Vec::new(),
                kept_from: 0,
            });
        let header = reader
            .headers()
            .map_err(|e| format!("cannot read the CSV header: {e}"))?;
        let columns: Vec<String> = header.iter().map(|c| c.trim().to_string()).collect();
        check_columns(&columns, kind)?;
        Ok(CsvRows {
            reader,
            columns,
            record: csv::StringRecord::new(),
            done: false,
        })
    }
}

/// Every column must be a field of `kind`, once; the required fields must be there.
pub fn check_columns(columns: &[String], kind: JudgeKind) -> Result<(), String> {
    let (known, required) = fields(kind);
    if columns.iter().all(String::is_empty) {
        return Err("the CSV file has no header line".into());
    }
    for (i, c) in columns.iter().enumerate() {
        if c.is_empty() {
            return Err(format!("CSV column {} has no name in the header", i + 1));
        }
        if !known.contains(&c.as_str()) {
            return Err(format!(
                "CSV column {c:?} is not a field of {} items (fields: {})",
                kind.as_str(),
                known.join(", ")
            ));
        }
        if columns[..i].contains(c) {
            return Err(format!("CSV column {c:?} appears twice in the header"));
        }
    }
    let missing: Vec<&str> = required
        .iter()
        .filter(|r| !columns.iter().any(|c| c == *r))
        .copied()
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the CSV header lacks the column(s) {} that {} items need",
            missing.join(", "),
            kind.as_str()
        ));
    }
    Ok(())
}

impl CsvRows {
    /// The line a row starts on. The CSV reader reports where it started reading: that can be
    /// the end of the previous line (after a `\r\n` row end) or blank lines it skipped, so the
    /// line breaks read from there up to the row's first cell are added.
    fn line_of(&mut self, at: Option<csv::Position>) -> usize {
        let Some(at) = at else { return 0 };
        let tape = self.reader.get_mut();
        let skipped = tape.leading_line_breaks(at.byte());
        tape.forget_before(at.byte());
        (at.line() + skipped) as usize
    }
}

/// The input under the CSV reader, keeping the bytes the reader may still report a row at (from
/// the start of the last row on: at most one row plus the reader's buffer).
struct Tape {
    inner: Box<dyn BufRead + Send>,
    kept: Vec<u8>,
    kept_from: u64,
}

impl Tape {
    fn leading_line_breaks(&self, at: u64) -> u64 {
        let start = usize::try_from(at.saturating_sub(self.kept_from)).unwrap_or(usize::MAX);
        let rest = self.kept.get(start..).unwrap_or_default();
        rest.iter()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .filter(|b| **b == b'\n')
            .count() as u64
    }

    fn forget_before(&mut self, at: u64) {
        let n = usize::try_from(at.saturating_sub(self.kept_from))
            .unwrap_or(usize::MAX)
            .min(self.kept.len());
        self.kept.drain(..n);
        self.kept_from += n as u64;
    }
}

impl io::Read for Tape {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.kept.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

impl Iterator for CsvRows {
    type Item = io::Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.reader.read_record(&mut self.record) {
            Ok(false) => {
                self.done = true;
                None
            }
            Ok(true) => {
                let line = self.line_of(self.record.position().cloned());
                Some(Ok((line, Ok(row_to_item(&self.columns, &self.record)))))
            }
            Err(e) => {
                let line = self.line_of(e.position().cloned());
                if let csv::ErrorKind::Io(_) = e.kind() {
                    self.done = true;
                    return Some(Err(io::Error::other(e.to_string())));
                }
                Some(Ok((line, Err(csv_message(&e)))))
            }
        }
    }
}

fn csv_message(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("CSV row has {len} cells, the header has {expected_len}"),
        csv::ErrorKind::Utf8 { .. } => "CSV row is not valid UTF-8".to_string(),
        _ => format!("CSV row cannot be read: {e}"),
    }
}

/// One CSV row into an item object: empty cells are absent; numbers, booleans, image lists and
/// options are read into their JSON types (a cell that does not read stays text, and the item's
/// validation names the field).
pub fn row_to_item(columns: &[String], row: &csv::StringRecord) -> Value {
    let mut item = Map::new();
    for (name, cell) in columns.iter().zip(row.iter()) {
        if cell.is_empty() {
            continue;
        }
        item.insert(name.clone(), cell_value(name, cell));
    }
    Value::Object(item)
}

fn cell_value(column: &str, cell: &str) -> Value {
    let text = || Value::String(cell.to_string());
    let trimmed = cell.trim();
    match column {
        "min" | "max" | "pass_score" => trimmed
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(text, Value::Number),
        "swap" => match trimmed.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Value::Bool(true),
            "false" | "no" | "0" => Value::Bool(false),
            _ => text(),
        },
        // A JSON array, or URLs separated by whitespace.
        "images" if trimmed.starts_with('[') => {
            serde_json::from_str(trimmed).unwrap_or_else(|_| text())
        }
        "images" => Value::Array(
            trimmed
                .split_whitespace()
                .map(|u| Value::String(u.to_string()))
                .collect(),
        ),
        "options" => serde_json::from_str(trimmed).unwrap_or_else(|_| text()),
        _ => text(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(text: &str, kind: JudgeKind) -> Vec<Record> {
        let reader: Box<dyn BufRead + Send> =
            Box::new(std::io::Cursor::new(text.as_bytes().to_vec()));
        CsvRows::new(reader, kind)
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }

    #[test]
    fn csv_rows_become_items_with_typed_cells() {
        let text = "question,answer,prediction,images,options\n\
                    \"What is 2+2,\nreally?\",4,4.0,,\n\
                    Q,A,P,https://x/a.png https://x/b.png,\"{\"\"temperature\"\":0}\"\n\
                    short,row\n";
        let r = read_all(text, JudgeKind::Binary);
        assert_eq!(r.len(), 3);
        assert_eq!(
            r[0],
            (
                2,
                Ok(
                    serde_json::json!({"question": "What is 2+2,\nreally?", "answer": "4", "prediction": "4.0"})
                )
            )
        );
        assert_eq!(r[1].0, 4);
        let item = r[1].1.as_ref().unwrap();
        assert_eq!(
            item["images"],
            serde_json::json!(["https://x/a.png", "https://x/b.png"])
        );
        assert_eq!(item["options"], serde_json::json!({"temperature": 0}));
        assert_eq!(r[2].0, 5);
        assert!(r[2].1.as_ref().unwrap_err().contains("2 cells"));
    }

    #[test]
    fn csv_headers_are_checked_against_the_kind() {
        let cols = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(
            check_columns(
                &cols(&["question", "answer", "prediction"]),
                JudgeKind::Binary
            )
            .is_ok()
        );
        let e = check_columns(
            &cols(&["id", "question", "answer", "prediction"]),
            JudgeKind::Binary,
        )
        .unwrap_err();
        assert!(e.contains("\"id\""), "{e}");
        let e = check_columns(&cols(&["question", "answer"]), JudgeKind::Binary).unwrap_err();
        assert!(e.contains("prediction"), "{e}");
        assert!(check_columns(&cols(&["question", "prediction", "min"]), JudgeKind::Score).is_ok());
        // A person's label goes with binary items only.
        let labelled = cols(&["question", "answer", "prediction", "label"]);
        assert!(check_columns(&labelled, JudgeKind::Binary).is_ok());
        let e = check_columns(
            &cols(&["question", "prediction", "label"]),
            JudgeKind::Score,
        );
        assert!(e.unwrap_err().contains("\"label\""));
    }

    #[test]
    fn line_numbers_skip_blank_lines_and_count_cells_spanning_lines() {
        let text = "question,answer,prediction\n\n\"a\nb\",4,4\n\n\nq,a,p\r\nshort\n\nx,y,z";
        let lines: Vec<usize> = read_all(text, JudgeKind::Binary)
            .iter()
            .map(|r| r.0)
            .collect();
        assert_eq!(lines, vec![3, 7, 8, 10]);
        let lines: Vec<usize> = read_all(
            "question,answer,prediction\nq,a,p\nq,a,p\n",
            JudgeKind::Binary,
        )
        .iter()
        .map(|r| r.0)
        .collect();
        assert_eq!(lines, vec![2, 3]);
        let crlf = "question,answer,prediction\r\n\"a\r\nb\",4,4\r\nq,a,p\r\nshort\r\nx,y,z\r\n";
        let lines: Vec<usize> = read_all(crlf, JudgeKind::Binary)
            .iter()
            .map(|r| r.0)
            .collect();
        assert_eq!(lines, vec![2, 4, 5, 6]);
    }
}
