//! One record of an input file, as every reader yields it and the judging loop takes it.

use serde_json::Value;

/// One record: its 1-based line number and its item object, or why it could not be read.
pub type Record = (usize, Result<Value, String>);
