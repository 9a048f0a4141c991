//! The settings of judging: defaults, route options, panels.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgeSettings {
    /// The route used when a request names none.
    pub default_route: String,
    /// Ask the deterministic rules judge first; call a model only when it is unsure.
    pub rules_precheck: bool,
    pub temperature: f32,
    /// The sampling seed sent to providers that take one (OpenAI, Azure, Together, Cohere,
    /// Gemini), for answers as repeatable as the provider makes them; a route may set its own.
    pub seed: i64,
    pub max_tokens: u32,
    /// Verdicts kept in the in-memory cache (0 turns the cache off).
    pub cache_entries: usize,
}

/// How a route's verdicts get a confidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfidenceMode {
    /// None measured (panels and swapped comparisons still have theirs).
    #[default]
    None,
    /// From the log probabilities of the verdict token, where the provider returns them.
    Logprobs,
}

/// What a route asks of its judge beyond the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RouteOptions {
    /// Ask for a JSON verdict with a fixed schema, where the provider can enforce one.
    pub structured: bool,
    pub confidence: ConfidenceMode,
    /// The route's own sampling seed (instead of `judge.seed`).
    pub seed: Option<i64>,
}

/// How a panel turns its judges' verdicts into one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    /// The verdict most judges gave (scores: the median).
    #[default]
    Majority,
    /// The mean (binary: correct above one half; scores: the mean score).
    Mean,
    /// The lowest (binary: correct only when every judge says so; scores: the lowest).
    Min,
    /// Only a verdict every judge gave counts; otherwise `on_tie` decides.
    Unanimous,
}

impl Aggregate {
    pub fn as_str(&self) -> &'static str {
        match self {
            Aggregate::Majority => "majority",
            Aggregate::Mean => "mean",
            Aggregate::Min => "min",
            Aggregate::Unanimous => "unanimous",
        }
    }
}

/// What a panel answers when its judges are split evenly (or, for `unanimous`, disagree).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnTie {
    /// The item is unscored, with reason `panel_tie`.
    #[default]
    Unscored,
    /// The pessimistic outcome: incorrect (scores: the lowest given).
    Incorrect,
    /// The optimistic outcome: correct (scores: the highest given).
    Correct,
}

impl OnTie {
    pub fn as_str(&self) -> &'static str {
        match self {
            OnTie::Unscored => "unscored",
            OnTie::Incorrect => "incorrect",
            OnTie::Correct => "correct",
        }
    }
}

/// A panel of judges, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanelSettings {
    /// Route names (configured or ad hoc), in the order they are asked.
    pub judges: Vec<String>,
    pub aggregate: Aggregate,
    /// Judges that must give a verdict for the panel to give one.
    pub quorum: usize,
    pub on_tie: OnTie,
    /// Ask the first two judges; ask the others only when those two disagree (or one fails).
    pub escalate: bool,
}

/// Most judges in one panel.
pub const MAX_PANEL_JUDGES: usize = 8;
