//! A system prompt shared by every request that uses it, escaped to JSON once.

use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::Serialize;
use serde_json::value::RawValue;

/// A system prompt, shared by every request that uses it, with its JSON string form made on first
/// use and kept. A template's instructions go out with every item; escaping them again for each
/// request costs more than the rest of the request body.
#[derive(Clone)]
pub struct SystemPrompt(Arc<SystemInner>);

struct SystemInner {
    text: Box<str>,
    json: OnceLock<Box<RawValue>>,
}

impl SystemPrompt {
    pub fn new(text: impl Into<Box<str>>) -> Self {
        SystemPrompt(Arc::new(SystemInner {
            text: text.into(),
            json: OnceLock::new(),
        }))
    }

    pub fn as_str(&self) -> &str {
        &self.0.text
    }

    /// The text as a JSON string, escaped once.
    pub fn json(&self) -> &RawValue {
        self.0.json.get_or_init(|| {
            serde_json::value::to_raw_value(&*self.0.text).expect("a string serialises")
        })
    }
}

impl std::ops::Deref for SystemPrompt {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for SystemPrompt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq for SystemPrompt {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

/// Serialises as the JSON string it holds (serde_json only: that is every wire format here).
impl Serialize for SystemPrompt {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.json().serialize(serializer)
    }
}

impl From<&str> for SystemPrompt {
    fn from(text: &str) -> Self {
        SystemPrompt::new(text)
    }
}

impl From<String> for SystemPrompt {
    fn from(text: String) -> Self {
        SystemPrompt::new(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_system_prompt_serialises_as_its_text_and_is_escaped_once() {
        let text = "Say \"yes\" or `no`.\nTabs\there, a backslash \\, é and \u{1}.";
        let p = SystemPrompt::from(text);
        let copy = p.clone();
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            serde_json::to_string(text).unwrap()
        );
        assert_eq!(
            serde_json::to_value(&copy).unwrap(),
            serde_json::json!(text)
        );
        // The clone shares the escaped form made for the first.
        assert!(std::ptr::eq(p.json(), copy.json()));
        assert_eq!(&*p, text);
    }
}
