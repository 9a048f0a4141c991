//! Packing requests into provider batches: each encoded once, then grouped within the
//! provider's limits (and, where the API asks, one model per batch); a request that cannot be
//! encoded or is larger than a whole batch is refused, to be sent online.

use super::batch::{Limits, Queued};
use super::calls::Http;
use super::custom_id::CustomId;
use llm_judge_chat::ProviderError;

/// One encoded request, ready to go into a batch.
pub(crate) struct Encoded {
    pub id: CustomId,
    /// OpenAI: a batch takes one model.
    pub model: String,
    /// What it adds to the upload, in bytes.
    pub bytes: Vec<u8>,
}

/// Encodes every request with `encode`; those that cannot be are refused (to go online).
pub(crate) fn encode_all(
    http: &Http,
    requests: &[Queued],
    encode: impl Fn(&Queued) -> Result<Vec<u8>, ProviderError>,
) -> (Vec<Encoded>, Vec<(CustomId, ProviderError)>) {
    let mut encoded = Vec::with_capacity(requests.len());
    let mut refused = Vec::new();
    for q in requests {
        match encode(q) {
            Ok(bytes) => encoded.push(Encoded {
                id: q.id,
                model: q.chat.model.clone(),
                bytes,
            }),
            Err(e) => refused.push((q.id, http.redact(e))),
        }
    }
    (encoded, refused)
}

/// Groups encoded requests into batches within `limits` (`overhead` bytes per batch and
/// `per_item` per request, besides the requests' own), keeping the input order and, with
/// `by_model`, one model per batch. A request larger than a whole batch may be is refused.
pub(crate) fn split(
    encoded: Vec<Encoded>,
    limits: Limits,
    overhead: usize,
    per_item: usize,
    by_model: bool,
) -> (Vec<Vec<Encoded>>, Vec<(CustomId, ProviderError)>) {
    let mut groups: Vec<(String, Vec<Encoded>, usize)> = Vec::new();
    let mut done = Vec::new();
    let mut refused = Vec::new();
    for e in encoded {
        let size = e.bytes.len() + per_item;
        if size + overhead > limits.max_bytes {
            refused.push((
                e.id,
                ProviderError::Unsupported(format!(
                    "the request is {} bytes, more than a provider batch takes ({} bytes)",
                    e.bytes.len(),
                    limits.max_bytes
                )),
            ));
            continue;
        }
        let key = if by_model {
            e.model.clone()
        } else {
            String::new()
        };
        let slot = match groups.iter().position(|(k, _, _)| *k == key) {
            Some(i) => i,
            None => {
                groups.push((key.clone(), Vec::new(), overhead));
                groups.len() - 1
            }
        };
        let (_, items, bytes) = &mut groups[slot];
        if items.len() + 1 > limits.max_requests || *bytes + size > limits.max_bytes {
            done.push(std::mem::take(items));
            *bytes = overhead;
        }
        let (_, items, bytes) = &mut groups[slot];
        *bytes += size;
        items.push(e);
    }
    done.extend(
        groups
            .into_iter()
            .map(|(_, items, _)| items)
            .filter(|g| !g.is_empty()),
    );
    (done, refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(index: u64, model: &str, bytes: usize) -> Encoded {
        Encoded {
            id: CustomId::new(index, 0),
            model: model.into(),
            bytes: vec![b'x'; bytes],
        }
    }

    #[test]
    fn requests_are_split_at_the_count_and_byte_limits_and_by_model() {
        let limits = Limits {
            max_requests: 3,
            max_bytes: 100,
        };
        let items: Vec<Encoded> = (0..7).map(|i| enc(i, "m", 10)).collect();
        let (groups, refused) = split(items, limits, 0, 0, true);
        let sizes: Vec<usize> = groups.iter().map(Vec::len).collect();
        assert_eq!(sizes, [3, 3, 1]);
        assert!(refused.is_empty());
        // Bytes: 40 + 40 fit in 100 with 10 of overhead, a third does not.
        let items: Vec<Encoded> = (0..3).map(|i| enc(i, "m", 40)).collect();
        let (groups, _) = split(items, limits, 10, 0, true);
        assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>(), [2, 1]);
        // One model per batch, in input order within each.
        let items = vec![enc(0, "a", 1), enc(1, "b", 1), enc(2, "a", 1)];
        let (groups, _) = split(items, limits, 0, 0, true);
        let ids: Vec<Vec<u64>> = groups
            .iter()
            .map(|g| g.iter().map(|e| e.id.index).collect())
            .collect();
        assert_eq!(ids, [vec![0, 2], vec![1]]);
        // A request larger than a batch may be goes online.
        let (groups, refused) = split(vec![enc(0, "a", 200), enc(1, "a", 5)], limits, 0, 0, true);
        assert_eq!(groups.len(), 1);
        assert_eq!(refused[0].0, CustomId::new(0, 0));
    }
}
