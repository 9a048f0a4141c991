//! Word-level reading of short answers: plural-insensitive word matching, negations and
//! hedges, an answer that names the reference inside a sentence, a surname or a name without
//! its generic word (`Everest` for `Mount Everest`), initials, and yes/no answers.

use std::sync::LazyLock;

use regex::Regex;

use super::normal::normalize;

/// A word without a plural ending (`diamonds` -> `diamond`, `boxes` -> `box`); words ending in
/// `ss`, `us` or `is`, and short ones, are left alone.
pub fn stem(w: &str) -> &str {
    if w.len() <= 3 || w.ends_with("ss") || w.ends_with("us") || w.ends_with("is") {
        return w;
    }
    for suffix in ["ches", "shes", "xes", "zes", "sses", "oes"] {
        if w.ends_with(suffix) {
            return &w[..w.len() - 2];
        }
    }
    w.strip_suffix('s').unwrap_or(w)
}

/// The same word, but for a plural ending.
pub fn same_word(a: &str, b: &str) -> bool {
    a == b || stem(a) == stem(b)
}

/// Words that may be related (`sunlight` / `sun`, `gravitational` / `gravity`, `thanks` /
/// `thank`): one starts the other, or they share their first five letters. Used only to hold
/// back an `incorrect`, never to give a `correct`.
pub fn related(a: &str, b: &str) -> bool {
    if same_word(a, b) {
        return true;
    }
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if short.len() >= 3 && long.starts_with(short) {
        return true;
    }
    let common = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    common >= 5
}

static NEGATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(?:not|no|never|none|neither|nor|cannot|isn['\u{2019}]t|aren['\u{2019}]t|wasn['\u{2019}]t|weren['\u{2019}]t|doesn['\u{2019}]t|don['\u{2019}]t|didn['\u{2019}]t|can['\u{2019}]t|won['\u{2019}]t|couldn['\u{2019}]t|shouldn['\u{2019}]t|wouldn['\u{2019}]t)\b",
    )
    .expect("regex")
});

static HEDGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:or|either|maybe|perhaps|possibly|probably|unsure|guess)\b")
        .expect("regex")
});

/// Whether the text negates something (`not`, `never`, `isn't` ...).
pub fn has_negation(text: &str) -> bool {
    NEGATION.is_match(text)
}

/// Whether the text hedges (`or`, `maybe`, `perhaps` ...).
pub fn has_hedge(text: &str) -> bool {
    HEDGE.is_match(text)
}

/// Words that may stand around a named answer without changing it (`The capital of France is
/// Paris`, `It was written by Jane Austen`).
const FILLER: &[&str] = &[
    "a", "an", "the", "is", "are", "was", "were", "be", "been", "it", "its", "s", "they", "them",
    "their", "he", "she", "his", "her", "this", "that", "these", "those", "there", "here", "of",
    "in", "on", "at", "to", "for", "from", "by", "with", "as", "into", "called", "named", "known",
    "written", "wrote", "made", "make", "makes", "means", "mean", "stands", "measure", "measures",
    "mostly", "mainly", "usually", "main", "answer", "final", "my", "we", "you", "do", "does",
    "did", "has", "have", "had", "also", "just", "only", "simply", "speak", "speaks", "spoken",
    "use", "uses", "used",
];

/// Generic words a name can do without (`Pacific` for `Pacific Ocean`).
const GENERIC: &[&str] = &[
    "ocean",
    "sea",
    "river",
    "lake",
    "mount",
    "mountain",
    "mountains",
    "island",
    "islands",
    "desert",
    "city",
    "tower",
    "bridge",
    "bay",
    "gulf",
    "strait",
    "canal",
    "falls",
    "peninsula",
    "planet",
    "kingdom",
    "republic",
    "empire",
    "state",
    "states",
    "province",
    "county",
    "gas",
    "element",
];

/// Particles of a person's name that are written in lower case (`da`, `van`).
const PARTICLES: &[&str] = &[
    "da", "de", "di", "del", "van", "von", "der", "den", "la", "le", "du", "of", "the", "bin",
    "al", "y",
];

fn is_filler(w: &str, question: &[String]) -> bool {
    FILLER.contains(&w)
        || w.chars().all(|c| c.is_ascii_digit())
        || question.iter().any(|q| {
            same_word(q, w) || {
                let common = q.chars().zip(w.chars()).take_while(|(a, b)| a == b).count();
                common >= 5 || (common >= 4 && common == q.len().min(w.len()))
            }
        })
}

/// Where `needle` appears in `hay` as a run of words (plurals aside).
fn find_run(hay: &[&str], needle: &[&str]) -> Option<usize> {
    if needle.is_empty() || needle.len() > hay.len() {
        return None;
    }
    (0..=hay.len() - needle.len())
        .find(|&i| needle.iter().zip(&hay[i..]).all(|(n, h)| same_word(n, h)))
}

/// The answer's first clause: up to the first `,` `;` `:` `(` or dash, or a word that starts a
/// subordinate clause (`which`, `because`, `although` ...).
fn first_clause(text: &str) -> &str {
    let cut = text
        .find([',', ';', ':', '(', '\u{2014}', '\u{2013}'])
        .unwrap_or(text.len());
    let head = &text[..cut];
    static SUBORDINATE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"(?i)\s(?:which|who|whom|whose|because|although|though|since|but|while|whereas|so)\b",
        )
        .expect("regex")
    });
    SUBORDINATE.find(head).map_or(head, |m| &head[..m.start()])
}

/// Whether a sentence-like answer names the reference (its normalised words `reference`): in
/// its first clause, with nothing around it but filler and words of the question, no negation
/// or hedge anywhere, and the reference not already in the question (where naming it proves
/// nothing).
pub fn names_reference(question: &str, reference: &[&str], answer: &str) -> bool {
    if reference.is_empty() || reference.len() > 6 || has_negation(answer) || has_hedge(answer) {
        return false;
    }
    let q = normalize(question);
    let q_words: Vec<&str> = q.split(' ').collect();
    if find_run(&q_words, reference).is_some() {
        return false;
    }
    let clause = normalize(first_clause(answer));
    let words: Vec<&str> = clause.split(' ').filter(|w| !w.is_empty()).collect();
    if words.len() > 14 || normalize(answer).split(' ').count() > 40 {
        return false;
    }
    let Some(at) = find_run(&words, reference) else {
        return false;
    };
    let question_words: Vec<String> = q_words.iter().map(|w| w.to_string()).collect();
    words
        .iter()
        .enumerate()
        .filter(|(i, _)| *i < at || *i >= at + reference.len())
        .all(|(_, w)| is_filler(w, &question_words))
}

/// Whether `short` is a shorter form of the name `full` (normalised words; `original` is the
/// reference as written): a person's surname (`Austen` for `Jane Austen`, `da Vinci` for
/// `Leonardo da Vinci`, the reference written as a capitalised name), or the name without its
/// generic words (`Everest` for `Mount Everest`, `Pacific` for `Pacific Ocean`), in either
/// direction for the generic words.
pub fn short_name(original: &str, full: &[&str], short: &[&str]) -> bool {
    if short.is_empty() || short.iter().all(|w| GENERIC.contains(w)) {
        return false;
    }
    let generic_rest = |long: &[&str], part: &[&str]| {
        find_run(long, part).is_some_and(|at| {
            long.iter()
                .enumerate()
                .filter(|(i, _)| *i < at || *i >= at + part.len())
                .all(|(_, w)| GENERIC.contains(w))
        }) && long.len() > part.len()
    };
    if generic_rest(full, short) || generic_rest(short, full) {
        return true;
    }
    let capitalised = original
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
        .filter(|w| !w.is_empty())
        .all(|w| {
            PARTICLES.contains(&w.to_lowercase().as_str())
                || w.chars().next().is_some_and(char::is_uppercase)
        });
    capitalised
        && (2..=4).contains(&full.len())
        && short.len() < full.len()
        && full[full.len() - short.len()..]
            .iter()
            .zip(short)
            .all(|(a, b)| a == b)
        && short.last().is_some_and(|w| w.len() >= 3)
}

/// Whether `abbrev` (one word) is the initials of `full` (`cpu` for `central processing unit`),
/// leaving out small words (`of`, `the`, `and`, `for`).
pub fn initials(abbrev: &[&str], full: &[&str]) -> bool {
    let [word] = abbrev else {
        return false;
    };
    let letters: String = full
        .iter()
        .filter(|w| !matches!(**w, "of" | "the" | "and" | "for" | "a" | "an"))
        .filter_map(|w| w.chars().next())
        .collect();
    full.len() >= 2
        && letters.chars().count() >= 2
        && *word == letters
        && word.chars().all(char::is_alphabetic)
}

/// Yes (`true`) or no (`false`) for a word that says so.
pub fn yes_no(word: &str) -> Option<bool> {
    match word {
        "yes" | "true" | "yeah" | "yep" | "correct" => Some(true),
        "no" | "false" | "nope" => Some(false),
        _ => None,
    }
}

/// What an answer says to a yes/no question: its first word, when that is yes or no and the
/// answer does not say both.
pub fn answer_yes_no(words: &[&str]) -> Option<bool> {
    let first = yes_no(words.first()?)?;
    let both = words.iter().any(|w| matches!(*w, "yes" | "true"))
        && words.iter().any(|w| matches!(*w, "no" | "false"));
    (!both).then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<&str> {
        s.split(' ').collect()
    }

    #[test]
    fn plurals_and_related_words() {
        assert!(same_word("diamonds", "diamond"));
        assert!(same_word("avocados", "avocado"));
        assert!(same_word("boxes", "box"));
        assert!(!same_word("mice", "mouses"));
        assert!(!same_word("bus", "bu"));
        assert_eq!(stem("glass"), "glass");
        assert!(related("sunlight", "sun"));
        assert!(related("gravitational", "gravity"));
        assert!(!related("rome", "roma"));
        assert!(!related("paris", "lyon"));
    }

    #[test]
    fn an_answer_naming_the_reference_in_a_sentence() {
        let yes = [
            (
                "What is the capital of France?",
                "paris",
                "The capital of France is Paris.",
            ),
            (
                "Who wrote Pride and Prejudice?",
                "jane austen",
                "It was written by Jane Austen in 1813.",
            ),
            (
                "What is the largest planet?",
                "jupiter",
                "The largest planet is Jupiter, a gas giant.",
            ),
            (
                "What language is mainly spoken in Brazil?",
                "portuguese",
                "Brazilians mostly speak Portuguese.",
            ),
            ("What is the currency of Japan?", "yen", "Japanese yen"),
            ("What is the capital of France?", "paris", "Paris, France"),
        ];
        for (q, r, a) in yes {
            assert!(names_reference(q, &words(r), a), "{a:?}");
        }
        let no = [
            ("What is the capital of France?", "paris", "Paris and Lyon"),
            (
                "What is the capital of France?",
                "paris",
                "Lyon is bigger than Paris",
            ),
            (
                "What is the capital of Australia?",
                "canberra",
                "It's Canberra, not Sydney.",
            ),
            (
                "What is H2O commonly called?",
                "water",
                "Ice, which is frozen water",
            ),
            (
                "What is the capital of Canada?",
                "ottawa",
                "Toronto or Ottawa",
            ),
            ("Is the capital Paris or Lyon?", "paris", "Paris"),
        ];
        for (q, r, a) in no {
            assert!(!names_reference(q, &words(r), a), "{a:?}");
        }
    }

    #[test]
    fn short_names_initials_and_yes_no() {
        assert!(short_name(
            "Jane Austen",
            &words("jane austen"),
            &words("austen")
        ));
        assert!(short_name(
            "Leonardo da Vinci",
            &words("leonardo da vinci"),
            &words("da vinci")
        ));
        assert!(short_name(
            "Mount Everest",
            &words("mount everest"),
            &words("everest")
        ));
        assert!(short_name(
            "Pacific Ocean",
            &words("pacific ocean"),
            &words("pacific")
        ));
        assert!(short_name(
            "Amazon",
            &words("amazon"),
            &words("amazon river")
        ));
        assert!(!short_name(
            "George Washington",
            &words("george washington"),
            &words("george")
        ));
        assert!(!short_name(
            "United States",
            &words("united states"),
            &words("states")
        ));
        assert!(!short_name(
            "Blue whale",
            &words("blue whale"),
            &words("whale")
        ));
        assert!(initials(&["cpu"], &words("central processing unit")));
        assert!(initials(&["usa"], &words("united states of america")));
        assert!(!initials(&["usa"], &words("united states")));
        assert_eq!(
            answer_yes_no(&words("no it is an oblate spheroid")),
            Some(false)
        );
        assert_eq!(answer_yes_no(&words("yes and no")), None);
        assert_eq!(answer_yes_no(&words("penguins cannot fly")), None);
    }
}
