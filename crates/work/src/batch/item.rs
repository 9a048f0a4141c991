//! One item of a batch as the request gave it: parsed and validated for its kind (or not, and
//! then an error entry), or left unread until its own task reads it.

use serde_json::Value;
use serde_json::value::RawValue;

use llm_judge_judge::{BinaryItem, CompareItem, FieldError, JudgeKind, ScoreItem};

/// One item of a batch, parsed (or not) from the request.
#[derive(Debug, Clone)]
pub enum BatchItem {
    Binary(BinaryItem),
    Score(ScoreItem),
    Compare(CompareItem),
    /// The item could not be read or failed validation; it becomes an error entry.
    Invalid(FieldError),
    /// The item's JSON, not read yet: it is read inside the item's own task, so a large batch
    /// starts judging after one scan of its body, not after every item has been parsed.
    Unread(JudgeKind, Box<RawValue>),
}

impl BatchItem {
    /// Parses and validates one JSON item of the given kind. Field names in errors are prefixed
    /// with `items[i].`.
    pub fn parse(kind: JudgeKind, index: usize, value: Value) -> BatchItem {
        Self::from_source(kind, index, Source::Value(value))
    }

    /// Reads an [`BatchItem::Unread`] item, with the errors [`BatchItem::parse`] gives; any
    /// other item is returned as it is.
    pub fn read(self, index: usize) -> BatchItem {
        match self {
            BatchItem::Unread(kind, json) => Self::from_source(kind, index, Source::Text(&json)),
            item => item,
        }
    }

    fn from_source(kind: JudgeKind, index: usize, source: Source<'_>) -> BatchItem {
        fn read<T: serde::de::DeserializeOwned>(index: usize, v: Source) -> Result<T, FieldError> {
            match v {
                Source::Value(v) => llm_judge_judge::items::from_json_value(v),
                Source::Text(json) => llm_judge_judge::items::from_json_item(json.get()),
            }
            .map_err(|e| {
                let field = if e.field == "body" {
                    format!("items[{index}]")
                } else {
                    format!("items[{index}].{}", e.field)
                };
                FieldError::new(field, e.message)
            })
        }
        let prefix =
            |e: FieldError| FieldError::new(format!("items[{index}].{}", e.field), e.message);
        let parsed = match kind {
            JudgeKind::Binary => read::<BinaryItem>(index, source)
                .and_then(|i| i.validate().map_err(prefix).map(|_| BatchItem::Binary(i))),
            JudgeKind::Score => read::<ScoreItem>(index, source)
                .and_then(|i| i.validate().map_err(prefix).map(|_| BatchItem::Score(i))),
            JudgeKind::Compare => read::<CompareItem>(index, source)
                .and_then(|i| i.validate().map_err(prefix).map(|_| BatchItem::Compare(i))),
        };
        parsed.unwrap_or_else(BatchItem::Invalid)
    }
}

/// Where an item is read from.
enum Source<'a> {
    Value(Value),
    Text(&'a RawValue),
}

impl BatchItem {
    /// The judge the item itself names, if any.
    pub fn judge(&self) -> Option<&str> {
        match self {
            BatchItem::Binary(i) => i.judge.as_deref(),
            BatchItem::Score(i) => i.judge.as_deref(),
            BatchItem::Compare(i) => i.judge.as_deref(),
            BatchItem::Invalid(_) | BatchItem::Unread(..) => None,
        }
    }
}
