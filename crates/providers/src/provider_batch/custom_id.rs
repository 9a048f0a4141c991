//! What identifies a request in a provider batch: the item's index and its attempt.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What identifies a request in a batch: the item's index and its attempt (an item sent again
/// after a failure gets the next attempt), written `i{index}-a{attempt}` (Anthropic allows
/// `[a-zA-Z0-9_-]{1,64}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CustomId {
    pub index: u64,
    pub attempt: u32,
}

impl fmt::Display for CustomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "i{}-a{}", self.index, self.attempt)
    }
}

impl CustomId {
    pub fn new(index: u64, attempt: u32) -> CustomId {
        CustomId { index, attempt }
    }

    /// Reads `i{index}-a{attempt}`; anything else is `None` (a line that is not ours).
    pub fn parse(s: &str) -> Option<CustomId> {
        let (i, a) = s.strip_prefix('i')?.split_once("-a")?;
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        (digits(i) && digits(a)).then_some(())?;
        Some(CustomId {
            index: i.parse().ok()?,
            attempt: a.parse().ok()?,
        })
    }
}

impl Serialize for CustomId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CustomId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        CustomId::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("{s:?} is not i<index>-a<attempt>")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_ids_round_trip_and_refuse_what_is_not_theirs() {
        let id = CustomId::new(123_456, 2);
        assert_eq!(id.to_string(), "i123456-a2");
        assert_eq!(CustomId::parse("i123456-a2"), Some(id));
        for bad in ["", "i-a1", "i1-a", "x1-a1", "i1-a1x", "i+1-a1", "i1a1"] {
            assert_eq!(CustomId::parse(bad), None, "{bad}");
        }
        let max = CustomId::new(u64::MAX, u32::MAX).to_string();
        assert!(max.len() <= 64 && max.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"i123456-a2\"");
    }
}
