//! The parsers' tests: verdict lines, binary verdicts, scores, pairwise preferences, labels.

use std::fmt;

use super::markers::binary_markers;
use super::reply::re;
use super::words::words;
use super::*;
use UnscoredReason::{Ambiguous, EmptyResponse, OutOfRange, Refusal, Unparseable};

/// The verdict-line rule as a regex: the hand scan must find exactly what it finds.
#[test]
fn verdict_lines_match_the_regex_rule() {
    use rand::{Rng, SeedableRng};
    let rule = re(concat!(
        r"(?m)^[ \t]*(?:(?:my|the|final|overall)[ \t]+)*",
        r"(verdict|judgement|judgment|decision|grade|result|score|evaluation|correctness|answer)",
        r"[ \t]*[:=]([^\n]*)",
    ));
    let pieces = [
        "",
        " ",
        "  ",
        "\t",
        "\n",
        "\r\n",
        "my",
        "the",
        "final",
        "overall",
        "finally",
        "verdict",
        "verdicts",
        "answer",
        "answers",
        "score",
        "grade",
        "judgement",
        "judgment",
        "result",
        "evaluation",
        "correctness",
        "decision",
        ":",
        "=",
        "::",
        "correct",
        "incorrect",
        "1",
        "0",
        "yes",
        "x",
        "é",
        "theverdict",
        "my verdict",
    ];
    let glues = ["", "", " ", "\t ", "my ", "final\t", "x", "=", "\n", "é"];
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut found = 0;
    for _ in 0..20_000 {
        // Random pieces, and half the time a near-verdict line with random pieces mixed in.
        let mut text = String::new();
        for _ in 0..rng.random_range(0..5) {
            let segment = if rng.random_bool(0.5) {
                let mut glue = || glues[rng.random_range(0..glues.len())];
                let (a, b, c) = (glue(), glue(), glue());
                let key = pieces[rng.random_range(0..pieces.len())];
                ["\n", a, "the ", b, key, c, ":", " correct", ""]
            } else {
                let mut pick = || pieces[rng.random_range(0..pieces.len())];
                [pick(), pick(), pick(), pick(), pick(), pick(), "", "", ""]
            };
            text.extend(segment);
        }
        let by_rule: Vec<(String, String)> = rule
            .captures_iter(&text)
            .map(|c| (c[1].to_string(), c[2].to_string()))
            .collect();
        let by_hand: Vec<(String, String)> = binary_markers(&text)
            .into_iter()
            .map(|m| (m.key.to_string(), m.rest.to_string()))
            .collect();
        assert_eq!(by_hand, by_rule, "in {text:?}");
        found += by_rule.len();
    }
    // The generated texts must contain verdict lines, or the comparison proves little.
    assert!(found > 1_000, "only {found} verdict lines were generated");
}

fn reason<T: fmt::Debug>(r: Result<T, Unscored>) -> UnscoredReason {
    r.expect_err("expected Unscored").reason
}

#[test]
fn binary_verdicts() {
    let cases: &[(&str, bool)] = &[
        ("1", true),
        ("0", false),
        ("Yes", true),
        ("No", false),
        ("**Yes**", true),
        ("yes.", true),
        ("__No__", false),
        ("`1`", true),
        ("# Verdict: YES", true),
        ("The answer is correct. Yes", true),
        ("Verdict: no", false),
        ("Verdict: 1", true),
        ("Verdict: 0", false),
        ("**Final Verdict:** Yes", true),
        ("Verdict: yes, although the explanation is wrong", true),
        ("Verdict: yes and no", false),
        ("Yes and no", false),
        ("The answer is correct. Verdict: no", false),
        ("Verdict: no\nOn reflection the answer is correct.", false),
        ("Incorrect.", false),
        ("Correct", true),
        ("Score: 0. The 1st step is wrong", false),
        ("The response is not correct.", false),
        ("The response isn't correct.", false),
        ("The response isn\u{2019}t correct.", false),
        ("I don't think the answer is correct", false),
        ("It is not wrong, and it is correct.", true),
        ("The correct answer is 5, so the response is wrong.", false),
        ("The model's answer matches the reference. True", true),
        ("False", false),
        ("Yesterday's data aside, the answer is wrong.", false),
        ("1.0", true),
        ("0.0", false),
        (
            "1. The final answer matches\n2. Units are right\nVerdict: 0",
            false,
        ),
        ("The reasoning has no errors. Yes", true),
        (
            "I'm sorry, but the answer is incorrect.\nVerdict: no",
            false,
        ),
        ("Answer: yes", true),
        ("Result: the model is right", true),
        ("Is the answer correct? No.", false),
        ("Answer: 42\nVerdict: no", false),
        ("```json\n{\"verdict\": \"yes\"}\n```", true),
        ("{\"verdict\":\"no\"}", false),
        (
            "{\"verdict\":\"correct\",\"reason\":\"numeric match: 4 = 4.0\"}",
            true,
        ),
        (
            "{\"verdict\":\"incorrect\",\"reason\":\"numeric mismatch\"}",
            false,
        ),
        ("{\"correct\": true}", true),
        ("{\"result\": 1}", true),
        ("{\"score\": 0}", false),
        ("Here is my grading: {\"is_correct\": false}", false),
    ];
    for (text, want) in cases {
        assert_eq!(parse_binary(text), Ok(*want), "{text:?}");
    }
}

#[test]
fn binary_unscored() {
    let cases: &[(&str, UnscoredReason)] = &[
        ("", EmptyResponse),
        ("   \n\t", EmptyResponse),
        ("10", Unparseable),
        ("0.1", Unparseable),
        ("1/2", Unparseable),
        ("1st", Unparseable),
        ("Verdict: 10", Unparseable),
        ("Result: the model computes 1 + 1 = 2", Unparseable),
        ("yes/no", Unparseable),
        ("That is nonsense, you know.", Unparseable),
        ("The answer mentions the capital of France.", Unparseable),
        ("There were no issues", Unparseable),
        ("1. Everything checks out\n2. Units match", Unparseable),
        ("I'm sorry, but I can't help with that.", Refusal),
        ("I cannot assist with this request", Refusal),
        ("No, I can't help with that.", Refusal),
        (
            "{\"verdict\":\"unsure\",\"reason\":\"free-form answer\"}",
            Ambiguous,
        ),
        ("{\"score\": 7}", Unparseable),
        ("{\"foo\": 1}", Unparseable),
    ];
    for (text, want) in cases {
        assert_eq!(reason(parse_binary(text)), *want, "{text:?}");
    }
    let e = parse_binary("10").unwrap_err();
    assert_eq!(e.detail, "the reply \"10\" is not a 0/1 verdict");
    let e =
        parse_binary("{\"verdict\":\"unsure\",\"reason\":\"long free-form answer\"}").unwrap_err();
    assert_eq!(e.detail, "long free-form answer");
}

#[test]
fn scores() {
    let cases: &[(&str, f64)] = &[
        ("Score: 7", 7.0),
        ("Score: 7/10", 7.0),
        ("**Score:** 9 out of 10", 9.0),
        ("8.5", 8.5),
        ("Score: 3\nOn reflection, Score: 6", 6.0),
        ("Rating: [[4]]", 4.0),
        ("{\"score\": 7}", 7.0),
        ("{\"score\": 10.0, \"reason\":\"exact match\"}", 10.0),
        ("```json\n{\"score\": 2}\n```", 2.0),
        ("{\"score\": \"5/10\"}", 5.0),
        ("The answer is decent, I'd give it 6 out of 10.", 6.0),
        ("Step 1 is fine; gpt4 would say 5.", 5.0),
        ("Score: 1", 1.0),
        ("Score: 10.", 10.0),
    ];
    for (text, want) in cases {
        assert_eq!(parse_score(text, 1.0, 10.0), Ok(*want), "{text:?}");
    }
}

#[test]
fn scores_unscored() {
    let cases: &[(&str, UnscoredReason)] = &[
        ("", EmptyResponse),
        (" ", EmptyResponse),
        ("Score: 11", OutOfRange),
        ("Score: 0", OutOfRange),
        ("11", OutOfRange),
        ("{\"score\": 42}", OutOfRange),
        ("The reply cites data from 2023.", Unparseable),
        ("Score: N/A", Unparseable),
        ("Good answer overall.", Unparseable),
        ("I'm sorry, I cannot evaluate this response.", Refusal),
        (
            "{\"verdict\":\"unsure\",\"reason\":\"no reference answer\"}",
            Ambiguous,
        ),
        ("{\"comment\": \"fine\"}", Unparseable),
    ];
    for (text, want) in cases {
        assert_eq!(reason(parse_score(text, 1.0, 10.0)), *want, "{text:?}");
    }
    assert_eq!(
        parse_score("Score: 11", 1.0, 10.0).unwrap_err().detail,
        "score 11 is outside [1, 10]"
    );
}

#[test]
fn pairwise() {
    let cases: &[(&str, Winner)] = &[
        ("[[A]]", Winner::A),
        ("Response B is more accurate.\n[[B]]", Winner::B),
        ("[[C]]", Winner::Tie),
        ("[[TIE]]", Winner::Tie),
        ("[[tie]]", Winner::Tie),
        ("**[[ a ]]**", Winner::A),
        ("[[A]] ... as said, [[A]]", Winner::A),
        ("{\"winner\":\"A\"}", Winner::A),
        ("{\"winner\":\"B\",\"reason\":\"A is wrong\"}", Winner::B),
        ("{\"winner\":\"tie\"}", Winner::Tie),
        ("```json\n{\"winner\": \"Response B\"}\n```", Winner::B),
    ];
    for (text, want) in cases {
        assert_eq!(parse_pairwise(text), Ok(*want), "{text:?}");
    }
}

#[test]
fn pairwise_unscored() {
    let cases: &[(&str, UnscoredReason)] = &[
        ("", EmptyResponse),
        ("\n", EmptyResponse),
        ("[[A]] no wait [[B]]", Ambiguous),
        ("[[A]] or [[C]]", Ambiguous),
        ("Both responses are fine.", Unparseable),
        ("Winner: Response A", Unparseable),
        ("[A]", Unparseable),
        ("I can't help with that request.", Refusal),
        (
            "{\"verdict\":\"unsure\",\"reason\":\"both unsure\"}",
            Ambiguous,
        ),
        ("{\"winner\":\"D\"}", Unparseable),
    ];
    for (text, want) in cases {
        assert_eq!(reason(parse_pairwise(text)), *want, "{text:?}");
    }
}

#[test]
fn labels_and_words() {
    let labels: Vec<_> = [EmptyResponse, Refusal, Unparseable, Ambiguous, OutOfRange]
        .iter()
        .map(UnscoredReason::as_str)
        .collect();
    assert_eq!(
        labels,
        [
            "empty_response",
            "refusal",
            "unparseable",
            "ambiguous",
            "out_of_range"
        ]
    );
    let w: Vec<_> = words("0.1, 1st 1,000 isn't yes/no.")
        .into_iter()
        .map(|w| w.text)
        .collect();
    assert_eq!(w, ["0.1", "1st", "1,000", "isn't", "yes/no"]);
}
