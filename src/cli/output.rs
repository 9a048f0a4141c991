//! The results file of `llm-judge run`: resuming from what an earlier run wrote, and writing one
//! JSON line per finished item.
//!
//! Resume keeps the `ok` entries already in the file (their items are skipped) and drops the
//! rest: `error` entries (those items are judged again), a line cut short by a crash, and
//! repeated indices. When anything is dropped the file is rewritten first (to a temporary file
//! in the same directory, then renamed over it), so that afterwards it holds exactly one line
//! per index.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// A growable set of item indices, one bit each (a million items take 125 kB).
#[derive(Debug, Default, Clone)]
pub struct IndexSet {
    words: Vec<u64>,
    len: usize,
}

impl IndexSet {
    /// Adds `i`; false when it was already there.
    pub fn insert(&mut self, i: usize) -> bool {
        let (w, b) = (i / 64, i % 64);
        if w >= self.words.len() {
            self.words.resize(w + 1, 0);
        }
        let fresh = self.words[w] & (1 << b) == 0;
        self.words[w] |= 1 << b;
        self.len += usize::from(fresh);
        fresh
    }

    pub fn contains(&self, i: usize) -> bool {
        self.words
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many members are below `n`.
    pub fn count_below(&self, n: usize) -> usize {
        let full = (n / 64).min(self.words.len());
        let mut count: usize = self.words[..full]
            .iter()
            .map(|w| w.count_ones() as usize)
            .sum();
        if let Some(w) = self.words.get(n / 64)
            && !n.is_multiple_of(64)
        {
            count += (w & ((1u64 << (n % 64)) - 1)).count_ones() as usize;
        }
        count
    }
}

/// What an earlier run left in the results file.
#[derive(Debug, Default)]
pub struct Prior {
    /// Indices with an `ok` entry: skipped this run.
    pub done: IndexSet,
    /// `error` entries dropped (their items are judged again).
    pub errors_dropped: usize,
    /// Lines dropped for being cut short or repeating an index.
    pub other_dropped: usize,
}

/// The index and status of a result line, if it is one.
fn entry_key(v: &Value) -> Option<(usize, bool)> {
    let index = usize::try_from(v.get("index")?.as_u64()?).ok()?;
    let ok = match v.get("status")?.as_str()? {
        "ok" => true,
        "error" => false,
        _ => return None,
    };
    Some((index, ok))
}

/// Reads the results file at `path` (if any): `keep` is called with each kept `ok` entry. Refuses
/// (with a message) a file that does not look like results, so that a wrong `--output` never
/// destroys someone's data. Rewrites the file when something has to be dropped.
pub fn resume(path: &Path, mut keep: impl FnMut(&Value)) -> Result<Prior, String> {
    let shown = path.display();
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Prior::default()),
        Err(e) => return Err(format!("cannot read the output file {shown}: {e}")),
    };
    let mut prior = Prior::default();
    let mut reader = BufReader::new(file);
    let mut buf = Vec::new();
    let mut line = 0usize;
    let mut pending_bad: Option<usize> = None;
    let mut needs_rewrite = false;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| format!("cannot read the output file {shown}: {e}"))?;
        if n == 0 {
            break;
        }
        line += 1;
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if let Some(bad) = pending_bad {
            return Err(format!(
                "{shown} line {bad} is not a result entry; it does not look like an llm-judge \
                 results file, so it is left alone: choose another --output (or --overwrite)"
            ));
        }
        let complete = buf.ends_with(b"\n");
        match serde_json::from_slice::<Value>(&buf) {
            Ok(v) => match entry_key(&v) {
                Some((index, true)) => {
                    if prior.done.insert(index) {
                        keep(&v);
                    } else {
                        prior.other_dropped += 1;
                    }
                    needs_rewrite |= !complete;
                }
                Some((_, false)) => prior.errors_dropped += 1,
                None => pending_bad = Some(line),
            },
            // Only the last line may be cut short (a run killed while writing).
            Err(_) => pending_bad = Some(line),
        }
    }
    if let Some(bad) = pending_bad {
        // The last line is not an entry: a write cut short, when the rest is results.
        if prior.done.is_empty() && prior.errors_dropped == 0 {
            return Err(format!(
                "{shown} line {bad} is not a result entry; it does not look like an llm-judge \
                 results file, so it is left alone: choose another --output (or --overwrite)"
            ));
        }
        prior.other_dropped += 1;
    }
    if needs_rewrite || prior.errors_dropped > 0 || prior.other_dropped > 0 {
        rewrite_keeping_ok(path).map_err(|e| format!("cannot rewrite {shown}: {e}"))?;
    }
    Ok(prior)
}

/// Rewrites the file with only its first `ok` entry per index.
fn rewrite_keeping_ok(path: &Path) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp: PathBuf = dir.join(format!(".{name}.resume-{}", std::process::id()));
    let result = (|| {
        let mut out = BufWriter::new(File::create(&tmp)?);
        let mut reader = BufReader::new(File::open(path)?);
        let mut seen = IndexSet::default();
        let mut buf = Vec::new();
        while reader.read_until(b'\n', &mut buf)? > 0 {
            if let Ok(v) = serde_json::from_slice::<Value>(&buf)
                && let Some((index, true)) = entry_key(&v)
                && seen.insert(index)
            {
                out.write_all(buf.trim_ascii_end())?;
                out.write_all(b"\n")?;
            }
            buf.clear();
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Where result lines go: a file (appended to) or standard output.
pub struct Sink {
    out: BufWriter<Box<dyn Write + Send>>,
}

impl Sink {
    pub fn open(path: Option<&Path>, overwrite: bool) -> io::Result<Sink> {
        let inner: Box<dyn Write + Send> = match path {
            Some(p) => Box::new(
                OpenOptions::new()
                    .create(true)
                    .write(true)
                    .append(!overwrite)
                    .truncate(overwrite)
                    .open(p)?,
            ),
            None => Box::new(io::stdout()),
        };
        Ok(Sink {
            out: BufWriter::with_capacity(64 * 1024, inner),
        })
    }

    /// Writes one entry as one line (in one write, so a flush never splits it).
    pub fn write(&mut self, entry: &Value) -> io::Result<()> {
        let mut line = to_line(entry).map_err(io::Error::other)?;
        line.push(b'\n');
        self.out.write_all(&line)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Keys a reader looks for first.
const LEADING: [&str; 3] = ["index", "line", "status"];

/// An entry as JSON text with `index`, `line` and `status` first, the rest in name order.
fn to_line(entry: &Value) -> serde_json::Result<Vec<u8>> {
    let Value::Object(map) = entry else {
        return serde_json::to_vec(entry);
    };
    let leading = LEADING.iter().filter_map(|k| map.get_key_value(*k));
    let rest = map.iter().filter(|(k, _)| !LEADING.contains(&k.as_str()));
    let mut out = vec![b'{'];
    for (i, (k, v)) in leading.chain(rest).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, k)?;
        out.push(b':');
        serde_json::to_writer(&mut out, v)?;
    }
    out.push(b'}');
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn lines_start_with_index_line_and_status() {
        let v = serde_json::json!({"verdict": "correct", "status": "ok", "line": 3, "index": 2, "a": [1]});
        let text = String::from_utf8(super::to_line(&v).unwrap()).unwrap();
        assert_eq!(
            text,
            r#"{"index":2,"line":3,"status":"ok","verdict":"correct","a":[1]}"#
        );
        assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap(), v);
    }

    use super::*;

    #[test]
    fn index_set_counts() {
        let mut s = IndexSet::default();
        assert!(s.insert(3));
        assert!(!s.insert(3));
        assert!(s.insert(64));
        assert!(s.insert(1000));
        assert_eq!(s.len(), 3);
        assert!(s.contains(64) && !s.contains(65));
        assert_eq!(s.count_below(3), 0);
        assert_eq!(s.count_below(4), 1);
        assert_eq!(s.count_below(65), 2);
        assert_eq!(s.count_below(5000), 3);
    }

    #[test]
    fn resume_keeps_ok_entries_and_drops_errors_and_a_cut_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        std::fs::write(
            &path,
            "{\"index\":0,\"status\":\"ok\",\"verdict\":\"correct\"}\n\
             {\"index\":1,\"status\":\"error\",\"error\":{}}\n\
             {\"index\":2,\"status\":\"ok\",\"verdict\":\"incorrect\"}\n\
             {\"index\":0,\"status\":\"ok\",\"verdict\":\"incorrect\"}\n\
             {\"index\":3,\"sta",
        )
        .unwrap();
        let mut kept = Vec::new();
        let prior = resume(&path, |v| kept.push(v["index"].as_u64().unwrap())).unwrap();
        assert_eq!(kept, vec![0, 2]);
        assert_eq!(prior.errors_dropped, 1);
        assert_eq!(prior.other_dropped, 2);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "{\"index\":0,\"status\":\"ok\",\"verdict\":\"correct\"}\n\
             {\"index\":2,\"status\":\"ok\",\"verdict\":\"incorrect\"}\n"
        );
    }

    #[test]
    fn resume_refuses_a_file_that_is_not_results() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.jsonl");
        let data = "{\"question\":\"q\",\"answer\":\"a\",\"prediction\":\"p\"}\n";
        std::fs::write(&path, data).unwrap();
        let err = resume(&path, |_| {}).unwrap_err();
        assert!(err.contains("line 1"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), data);
    }
}
