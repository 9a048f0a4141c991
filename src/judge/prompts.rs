//! Prompt templates: the versioned instructions each kind of judge sends, and the renderer for
//! client-supplied templates with `{question}`, `{answer}` and `{prediction}` placeholders.
//!
//! A template's version is part of what identifies a judgment (it is in every result and in the
//! cache key): change the wording, bump the version.

use std::sync::{LazyLock, OnceLock};

use regex::Regex;
use sha2::{Digest, Sha256};

use crate::chat::SystemPrompt;

pub const BINARY_VERSION: &str = "binary-v1";
pub const SCORE_VERSION: &str = "score-v1";
pub const COMPARE_VERSION: &str = "compare-v1";

/// The verdict tokens the binary grader is asked to end with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// `Verdict: 1` / `Verdict: 0`.
    #[default]
    ZeroOne,
    /// `Verdict: yes` / `Verdict: no`.
    YesNo,
}

impl OutputFormat {
    fn tokens(self) -> (&'static str, &'static str) {
        match self {
            OutputFormat::ZeroOne => ("1", "0"),
            OutputFormat::YesNo => ("yes", "no"),
        }
    }
}

/// A rendered prompt: an optional system message and the user message.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// Shared, not copied, by every request that uses it (the binary grader's is built, and
    /// escaped for JSON, once).
    pub system: Option<SystemPrompt>,
    pub user: String,
    pub version: String,
}

/// The strict binary grader.
pub fn binary(question: &str, answer: &str, prediction: &str, format: OutputFormat) -> Rendered {
    static SYSTEM: [OnceLock<SystemPrompt>; 2] = [OnceLock::new(), OnceLock::new()];
    let slot = match format {
        OutputFormat::ZeroOne => &SYSTEM[0],
        OutputFormat::YesNo => &SYSTEM[1],
    };
    let system = slot.get_or_init(|| binary_system(format).into()).clone();
    let user = concat_parts(&[
        "Question:\n",
        question,
        "\n\nReference answer:\n",
        answer,
        "\n\nCandidate answer:\n",
        prediction,
    ]);
    Rendered {
        system: Some(system),
        user,
        version: binary_version(format),
    }
}

/// The parts joined into one string allocated once at its final size.
fn concat_parts(parts: &[&str]) -> String {
    let mut s = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        s.push_str(p);
    }
    s
}

/// The binary grader's instructions for one output format.
fn binary_system(format: OutputFormat) -> String {
    let (yes, no) = format.tokens();
    format!(
        "You are a strict grader. You compare a candidate answer with a reference answer and decide \
whether the candidate is right.\n\
How to decide:\n\
1. When the candidate shows its working, look only at the final answer it commits to.\n\
2. Multiple choice: the candidate is right when it picks the same option as the reference, named \
by its letter or by the option's text.\n\
3. An answer that is only partly right, lists several answers without choosing one, or adds a \
wrong claim is wrong.\n\
4. Layout, capitals, punctuation and wording do not matter when the meaning is the same.\n\
5. Numbers must have the same value; where units are given they must agree (5 km is not 5 m).\n\
Reply with one short sentence of justification, then a last line that is exactly \
`Verdict: {yes}` when the candidate is right or `Verdict: {no}` when it is not."
    )
}

fn binary_version(format: OutputFormat) -> String {
    format!(
        "{BINARY_VERSION}-{}",
        if format == OutputFormat::YesNo {
            "yn"
        } else {
            "01"
        }
    )
}

/// The scale grader, with an optional rubric and reference.
pub fn score(
    question: &str,
    answer: Option<&str>,
    prediction: &str,
    rubric: Option<&str>,
    min: f64,
    max: f64,
) -> Rendered {
    let mut system = format!(
        "You rate how well a response answers a question, on a scale from {min} (worst) to {max} \
(best). Judge correctness first, then completeness and clarity. Do not reward length."
    );
    if answer.is_some() {
        system.push_str(
            " A reference answer is given: a response that contradicts it cannot score high.",
        );
    }
    if let Some(r) = rubric {
        system.push_str("\nUse this rubric:\n");
        system.push_str(r);
    }
    system.push_str(&format!(
        "\nReply with a brief justification, then a last line that is exactly `Score: N`, where N is a \
number from {min} to {max}."
    ));
    let mut user = format!("Question:\n{question}\n\n");
    if let Some(a) = answer {
        user.push_str(&format!("Reference answer:\n{a}\n\n"));
    }
    user.push_str(&format!("Response to rate:\n{prediction}"));
    Rendered {
        system: Some(system.into()),
        user,
        version: SCORE_VERSION.into(),
    }
}

/// The pairwise grader.
pub fn compare(question: &str, answer: Option<&str>, a: &str, b: &str) -> Rendered {
    let mut system = String::from(
        "You decide which of two responses answers a question better. Judge correctness first, then \
completeness and clarity. The order in which the responses appear and their length must not sway \
you.",
    );
    if answer.is_some() {
        system.push_str(" A reference answer is given: prefer the response that agrees with it.");
    }
    system.push_str(
        "\nReply with a brief comparison, then a last line that is exactly `[[A]]` if response A is \
better, `[[B]]` if response B is better, or `[[C]]` if they are equally good.",
    );
    let mut user = format!("Question:\n{question}\n\n");
    if let Some(r) = answer {
        user.push_str(&format!("Reference answer:\n{r}\n\n"));
    }
    user.push_str(&format!("Response A:\n{a}\n\nResponse B:\n{b}"));
    Rendered {
        system: Some(system.into()),
        user,
        version: COMPARE_VERSION.into(),
    }
}

static PLACEHOLDER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}").expect("valid regex"));

/// Checks a client template: every `{name}` must be one of `allowed`. `{{` and `}}` are literal braces.
pub fn validate_template(template: &str, allowed: &[&str]) -> Result<(), String> {
    if template.trim().is_empty() {
        return Err("the template is empty".into());
    }
    for c in PLACEHOLDER.captures_iter(template) {
        if let Some(name) = c.get(1)
            && !allowed.contains(&name.as_str())
        {
            return Err(format!(
                "unknown placeholder {{{}}}; allowed: {}",
                name.as_str(),
                allowed
                    .iter()
                    .map(|a| format!("{{{a}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    Ok(())
}

/// Renders a validated client template.
pub fn render_custom(template: &str, values: &[(&str, &str)]) -> Rendered {
    let user = PLACEHOLDER
        .replace_all(template, |c: &regex::Captures<'_>| match c.get(1) {
            None => c[0][..1].to_string(),
            Some(name) => values
                .iter()
                .find(|(k, _)| *k == name.as_str())
                .map(|(_, v)| v.to_string())
                .unwrap_or_default(),
        })
        .into_owned();
    let digest = Sha256::digest(template.as_bytes());
    let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    Rendered {
        system: None,
        user,
        version: format!("custom-{hex}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_template_names_the_requested_tokens() {
        let r = binary("Q?", "4", "four", OutputFormat::YesNo);
        assert!(r.system.as_ref().unwrap().contains("`Verdict: yes`"));
        assert!(
            r.user.contains("Reference answer:\n4") && r.user.contains("Candidate answer:\nfour")
        );
        let r = binary("Q?", "4", "four", OutputFormat::ZeroOne);
        assert!(r.system.as_ref().unwrap().contains("`Verdict: 1`"));
        assert_ne!(
            binary("q", "a", "p", OutputFormat::YesNo).version,
            r.version
        );
    }

    #[test]
    fn custom_templates_are_checked_and_rendered() {
        let allowed = ["question", "answer", "prediction"];
        assert!(validate_template("Q: {question} A: {answer} P: {prediction}", &allowed).is_ok());
        let e = validate_template("Q: {question} {context}", &allowed).unwrap_err();
        assert!(e.contains("{context}"), "{e}");
        assert!(
            validate_template(r#"Reply as {"verdict": "yes"} for {question}"#, &allowed).is_ok()
        );
        assert!(validate_template("{{context}} {question}", &allowed).is_ok());
        let r = render_custom(
            "{{literal}} {question}={answer}",
            &[("question", "2+2"), ("answer", "4")],
        );
        assert_eq!(r.user, "{literal} 2+2=4");
        assert!(r.version.starts_with("custom-"));
        assert!(r.system.is_none());
    }

    #[test]
    fn optional_parts_appear_only_when_given() {
        let r = score("q", None, "p", None, 1.0, 10.0);
        assert!(!r.user.contains("Reference"));
        let r = score("q", Some("ref"), "p", Some("5 = perfect"), 1.0, 5.0);
        assert!(r.user.contains("Reference answer:\nref"));
        assert!(r.system.unwrap().contains("5 = perfect"));
        let r = compare("q", None, "x", "y");
        assert!(r.user.contains("Response A:\nx") && r.user.contains("Response B:\ny"));
    }
}
