//! The two wire formats the stand-in speaks, named once for the modules that answer, cache and
//! route by them.

/// Which wire format a call used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    OpenAi,
    Anthropic,
}
