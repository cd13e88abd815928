//! Request ids are bound to their request: a request that reuses an id the lease already
//! used for another request (the workload sends a few on purpose, `History::misuses`)
//! must be refused as such (`REQUEST_ID_REUSED`), never answered with the other
//! request's remembered outcome or applied.

use super::Violation;
use crate::history::History;

const NAME: &str = "request-ids";

pub fn check(history: &History) -> Vec<Violation> {
    history
        .misuses
        .iter()
        .filter_map(|misuse| {
            let answer = misuse.wrong_answer.as_ref()?;
            Some(Violation::new(
                NAME,
                format!(
                    "lease {} reused request id {} (first {}) for {}: answered {answer}, not \
                     refused as a reused id",
                    misuse.lease, misuse.request_id, misuse.first, misuse.reused_for
                ),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Misuse;

    #[test]
    fn a_reused_id_answered_from_another_request_is_a_violation() {
        let misuse = |wrong_answer: Option<&str>| Misuse {
            lease: 7,
            request_id: 3,
            first: "an unlock".into(),
            reused_for: "a exclusive try-lock of /sim/p1".into(),
            wrong_answer: wrong_answer.map(str::to_owned),
        };
        let mut history = History::default();
        history.misuses.push(misuse(None));
        assert!(check(&history).is_empty(), "refused as reused: fine");
        history.misuses.push(misuse(Some("acquired=true fencing_token=12")));
        let violations = check(&history);
        assert_eq!(violations.len(), 1);
        assert!(violations[0].message.contains("request id 3"), "{}", violations[0]);
    }
}
