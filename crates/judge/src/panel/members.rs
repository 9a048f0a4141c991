//! Asking a panel's judges: all at once, or with `escalate` the first two and the others only
//! when needed.

use std::future::Future;

use futures::future::join_all;

use super::ballot::{Ballot, Member};
use super::combine::same;
use crate::error::JudgeError;
use crate::settings::PanelSettings;

/// Asks the panel's judges: all at once, or with `escalate` the first two and the rest only
/// when those two do not agree.
pub(super) async fn ask_members<J, F, Fut>(panel: &PanelSettings, call: F) -> Vec<Member<J>>
where
    J: Ballot,
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<J, JudgeError>>,
{
    let member = |r: Result<J, JudgeError>| match r {
        Ok(j) => Member::Answered(j),
        Err(e) => Member::Failed(e),
    };
    let judges = &panel.judges;
    let first = if panel.escalate { 2 } else { judges.len() };
    let mut out: Vec<Member<J>> = join_all(judges[..first].iter().map(|r| call(r.clone())))
        .await
        .into_iter()
        .map(member)
        .collect();
    if first < judges.len() {
        let settled = matches!((out[0].vote(), out[1].vote()), (Some(a), Some(b)) if same(a, b));
        if settled {
            out.extend(judges[first..].iter().map(|_| Member::NotCalled));
        } else {
            let rest = join_all(judges[first..].iter().map(|r| call(r.clone()))).await;
            out.extend(rest.into_iter().map(member));
        }
    }
    out
}
