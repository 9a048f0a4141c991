//! The rules judge as the grader behind the `rules` provider: a grading task answered with
//! the JSON the verdict parsers read.

use serde_json::{Value, json};

use super::grade::grade_binary;
use super::verdict::RulesVerdict::{Correct, Incorrect, Unsure};
use llm_judge_chat::{Grader, GradingTask};

/// The deterministic judge behind the `rules` provider: it answers with the JSON the verdict
/// parsers read.
pub struct RulesGrader;

impl Grader for RulesGrader {
    fn grade(&self, task: &GradingTask) -> String {
        grade_task(task).to_string()
    }
}

/// The JSON reply for one grading task.
fn grade_task(task: &GradingTask) -> Value {
    let unsure = |reason: String| json!({"verdict": "unsure", "reason": reason});
    match task {
        GradingTask::Binary {
            question,
            reference,
            prediction,
        } => match grade_binary(question, reference, prediction) {
            Correct(r) => json!({"verdict": "correct", "reason": r}),
            Incorrect(r) => json!({"verdict": "incorrect", "reason": r}),
            Unsure(r) => unsure(r),
        },
        GradingTask::Score {
            question,
            reference,
            prediction,
            min,
            max,
        } => {
            let Some(reference) = reference else {
                return unsure("no reference answer to score against".into());
            };
            match grade_binary(question, reference, prediction) {
                Correct(r) => json!({"score": number(*max), "reason": r}),
                Incorrect(r) => json!({"score": number(*min), "reason": r}),
                Unsure(r) => unsure(r),
            }
        }
        GradingTask::Compare {
            question,
            reference,
            response_a,
            response_b,
        } => {
            let Some(reference) = reference else {
                return unsure(
                    "comparing two responses without a reference answer needs a model".into(),
                );
            };
            let a = grade_binary(question, reference, response_a);
            let b = grade_binary(question, reference, response_b);
            match (a, b) {
                (Unsure(r), _) => unsure(format!("response A: {r}")),
                (_, Unsure(r)) => unsure(format!("response B: {r}")),
                (Correct(x), Incorrect(y)) => {
                    json!({"winner": "A", "reason": format!("A: {x}; B: {y}")})
                }
                (Incorrect(x), Correct(y)) => {
                    json!({"winner": "B", "reason": format!("A: {x}; B: {y}")})
                }
                (Correct(x), Correct(y)) => {
                    json!({"winner": "tie", "reason": format!("both correct (A: {x}; B: {y})")})
                }
                (Incorrect(x), Incorrect(y)) => {
                    json!({"winner": "tie", "reason": format!("both incorrect (A: {x}; B: {y})")})
                }
            }
        }
    }
}

/// A whole number as a JSON integer (`10`, not `10.0`), anything else as a float.
fn number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        json!(v as i64)
    } else {
        json!(v)
    }
}
