//! Small pieces of both batch APIs' wire formats: ids shaped like the providers', the check that
//! a body is a JSON object, and JSON answers.

use bytes::Bytes;

use crate::reply::Reply;

/// A random id: `prefix` and `len` characters of `[0-9A-Za-z]` (`hex`: of `[0-9a-f]`).
pub fn random_id(prefix: &str, len: usize, hex: bool) -> String {
    const ALNUM: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    const HEX: &[u8] = b"0123456789abcdef";
    let alphabet = if hex { HEX } else { ALNUM };
    let mut id = String::with_capacity(prefix.len() + len);
    id.push_str(prefix);
    for _ in 0..len {
        id.push(alphabet[rand::random_range(0..alphabet.len())] as char);
    }
    id
}

/// True when `json` opens an object (serde would also read a struct from an array).
pub fn is_object(json: &[u8]) -> bool {
    json.trim_ascii_start().starts_with(b"{")
}

/// A JSON answer.
pub fn json(status: u16, value: &serde_json::Value) -> Reply {
    Reply::Answer {
        status,
        body: Bytes::from(value.to_string()),
        content_type: "application/json",
        retry_after: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_look_like_the_providers() {
        let f = random_id("file-", 22, false);
        assert_eq!(f.len(), 27);
        assert!(f[5..].chars().all(|c| c.is_ascii_alphanumeric()));
        let b = random_id("batch_", 32, true);
        assert!(
            b[6..]
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
            "{b}"
        );
        assert_ne!(random_id("x", 16, false), random_id("x", 16, false));
    }
}
