//! The words of a reply with the clause boundaries around them, and the last verdict word
//! among them (`correct`, `wrong`, `yes`, `no`, `1`, `0`, negations read).

/// Nouns after which `correct` / `right` is an adjective ("the correct answer is ...").
const NOUNS: &[&str] = &[
    "answer", "answers", "solution", "result", "value", "response", "option", "choice", "one",
];

/// A word of the reply with the clause boundaries around it.
pub(super) struct Word<'a> {
    pub(super) text: &'a str,
    brk_before: bool,
    brk_after: bool,
    line_start: bool,
}

/// Splits into words: `.` and `,` join digits (`0.1`, `1,000`); `/` `-` `'` join alphanumerics.
pub(super) fn words(s: &str) -> Vec<Word<'_>> {
    let cs: Vec<(usize, char)> = s.char_indices().collect();
    let (mut out, mut brk, mut line_start, mut i) = (Vec::<Word>::new(), true, true, 0);
    while i < cs.len() {
        let c = cs[i].1;
        if !c.is_alphanumeric() {
            if ".,;:!?\n=-()[]".contains(c) {
                brk = true;
                if let Some(w) = out.last_mut() {
                    w.brk_after = true;
                }
            }
            line_start |= c == '\n';
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < cs.len() {
            let (prev, c, next) = (cs[j - 1].1, cs[j].1, cs.get(j + 1).map_or(' ', |x| x.1));
            let joins = match c {
                '.' | ',' => prev.is_ascii_digit() && next.is_ascii_digit(),
                '/' | '-' | '\'' => next.is_alphanumeric(),
                c => c.is_alphanumeric(),
            };
            if !joins {
                break;
            }
            j += if c.is_alphanumeric() { 1 } else { 2 };
        }
        let end = cs.get(j).map_or(s.len(), |x| x.0);
        out.push(Word {
            text: &s[cs[i].0..end],
            brk_before: brk,
            brk_after: false,
            line_start,
        });
        (brk, line_start, i) = (false, false, j);
    }
    if let Some(w) = out.last_mut() {
        w.brk_after = true;
    }
    out
}

fn is_negator(w: &str) -> bool {
    matches!(
        w,
        "not" | "never" | "cannot" | "isnt" | "arent" | "wasnt" | "dont" | "doesnt" | "didnt"
    ) || w.ends_with("n't")
}

/// The last verdict word in `s`. `lenient` (inside a marker line) accepts `right` / `true` /
/// `false` anywhere in the clause and does not look for list items.
pub(super) fn last_verdict(s: &str, lenient: bool) -> Option<bool> {
    let ws = words(s);
    let negated = |i: usize| {
        let mut j = i;
        while j > 0 && !ws[j].brk_before {
            j -= 1;
            if is_negator(ws[j].text) {
                return true;
            }
        }
        false
    };
    let adjective = |i: usize| {
        ws.get(i + 1)
            .is_some_and(|n| !ws[i].brk_after && NOUNS.contains(&n.text))
    };
    let mut last = None;
    for (i, w) in ws.iter().enumerate() {
        let (alone, edge) = (w.brk_before && w.brk_after, w.brk_before || w.brk_after);
        let list_item = !lenient && w.line_start && ws.get(i + 1).is_some_and(|n| !n.line_start);
        let v = match w.text {
            "incorrect" | "wrong" | "inaccurate" => (!negated(i)).then_some(false),
            "correct" if !adjective(i) => Some(!negated(i)),
            "right" | "true" | "accurate" if (lenient || alone) && !adjective(i) => {
                Some(!negated(i))
            }
            "false" if lenient || alone => Some(false),
            "yes" if edge => Some(true),
            "no" if edge => Some(false),
            "1" | "1.0" if alone && !list_item => Some(true),
            "0" | "0.0" if alone && !list_item => Some(false),
            _ => None,
        };
        last = v.or(last);
    }
    last
}
