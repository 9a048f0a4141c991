//! One item's result: its JSON entry, serialised once when the item is judged, with what the
//! summary counts of it; error entries; and the tallies of the judgments.

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::summary::{self, JudgeVote, PanelTally, Position, Tally};
use llm_judge_judge::{CompareJudgment, Judgment, ScoreJudgment};

/// One item's result: its JSON entry, serialised once when the item is judged, and what the
/// summary counts of it. Results are never rebuilt as `serde_json::Value` trees on the hot path.
#[derive(Debug)]
pub struct Entry {
    pub index: usize,
    /// `{"index","status",...}`, as it goes into responses, streams and the job store.
    pub json: Box<RawValue>,
    pub tally: Tally,
    /// Set when the item failed because its route cannot be served now (every step failed for
    /// a transient reason): a job asks again later instead of keeping this error.
    pub outage: Option<Outage>,
    /// Set when the item has no result yet: its call was kept to be made later (a job's
    /// provider batch). Such an entry is not a result and is never written.
    pub parked: bool,
}

/// Why an item's route cannot be served now: what the last step said, and the providers its
/// steps tried.
#[derive(Debug, Clone, PartialEq)]
pub struct Outage {
    pub reason: String,
    pub providers: Vec<String>,
}

impl Entry {
    /// An entry from a JSON value (error entries, and results read back from storage).
    pub fn from_value(index: usize, v: &Value) -> Entry {
        Entry {
            index,
            json: serde_json::value::to_raw_value(v).expect("a JSON value serialises"),
            tally: Tally::of_value(v),
            outage: None,
            parked: false,
        }
    }

    /// An `ok` entry: `index`, `status`, then the judgment's own fields.
    pub(super) fn ok<J: Serialize>(index: usize, judgment: &J, tally: Tally) -> Entry {
        #[derive(Serialize)]
        struct Ok<'a, J> {
            index: usize,
            status: &'static str,
            #[serde(flatten)]
            judgment: &'a J,
        }
        let ok = Ok {
            index,
            status: "ok",
            judgment,
        };
        match serde_json::value::to_raw_value(&ok) {
            Ok(json) => Entry {
                index,
                json,
                tally,
                outage: None,
                parked: false,
            },
            Err(e) => Entry::from_value(
                index,
                &error_entry(index, "internal_error", &e.to_string(), None, None),
            ),
        }
    }

    pub fn is_ok(&self) -> bool {
        self.tally.ok
    }

    /// The entry as a JSON value (for callers that add fields to it).
    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.json.get()).unwrap_or(Value::Null)
    }

    /// The entry as one NDJSON line.
    pub fn line(&self) -> bytes::Bytes {
        let raw = self.json.get();
        let mut buf = Vec::with_capacity(raw.len() + 1);
        buf.extend_from_slice(raw.as_bytes());
        buf.push(b'\n');
        bytes::Bytes::from(buf)
    }
}

/// The tally of a judgment (every kind shares these fields; the kinds' own are set after).
fn tally(j: &Judgment) -> Tally {
    let panel = j.panel.as_ref().map(|p| {
        Box::new(PanelTally {
            name: p.name.clone(),
            decision: None,
            judges: p
                .judges
                .iter()
                .map(|v| {
                    let verdict = v.verdict.map(|v| v.as_str());
                    JudgeVote {
                        judge: v.judge.clone(),
                        status: v.status.to_string(),
                        verdict: verdict.map(str::to_string),
                        category: summary::category(verdict, v.winner, v.score),
                        score: v.score,
                        consistent: v.consistent,
                        positions: v.positions.iter().map(|p| Position::parse(*p)).collect(),
                    }
                })
                .collect(),
        })
    });
    Tally {
        ok: true,
        verdict: Some(j.verdict.as_str()),
        usage: j.usage,
        cost_usd: j.cost_usd,
        cached: j.cached,
        judge: panel
            .is_none()
            .then(|| format!("{}:{}", j.provider, j.model)),
        fallback: j.fallback,
        panel,
        provider_batch: j.provider_batch.is_some(),
        ..Tally::default()
    }
}

/// The tally of a score judgment.
pub(super) fn score_tally(j: &ScoreJudgment) -> Tally {
    let mut t = tally(&j.judgment);
    t.score = j.score;
    t.chars = Some(j.prediction_chars);
    decide(&mut t, None);
    t
}

/// The tally of a pairwise judgment.
pub(super) fn compare_tally(j: &CompareJudgment) -> Tally {
    let mut t = tally(&j.judgment);
    t.winner = j.winner;
    t.consistent = j.consistent;
    t.positions = j.positions.iter().map(|p| Position::parse(*p)).collect();
    decide(&mut t, j.winner);
    t
}

/// Sets a panel item's own decision (as a category) once its kind's fields are known.
fn decide(t: &mut Tally, winner: Option<&str>) {
    let category = summary::category(t.verdict, winner, t.score);
    if let Some(p) = t.panel.as_mut() {
        p.decision = category;
    }
}

/// The tally of a binary judgment.
pub(super) fn binary_tally(j: &Judgment) -> Tally {
    let mut t = tally(j);
    decide(&mut t, None);
    t
}

/// The result of one item, ready to serialise: `{"index","status",...}`.
pub fn error_entry(
    index: usize,
    code: &str,
    message: &str,
    field: Option<&str>,
    attempts: Option<Value>,
) -> Value {
    let mut err = Map::new();
    err.insert("code".into(), json!(code));
    err.insert("message".into(), json!(message));
    if let Some(f) = field {
        err.insert("field".into(), json!(f));
    }
    let mut entry = Map::new();
    entry.insert("index".into(), json!(index));
    entry.insert("status".into(), json!("error"));
    entry.insert("error".into(), Value::Object(err));
    if let Some(a) = attempts {
        entry.insert("attempts".into(), a);
    }
    Value::Object(entry)
}
