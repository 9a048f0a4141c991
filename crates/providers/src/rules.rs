//! The `rules` provider: a thin adapter over a deterministic [`Grader`], so the rules judge can
//! stand in a route like any model (alone, or as the last step after the models).
//!
//! It grades the raw fields the judge layer attaches ([`ChatRequest::grading`]), not the prompt;
//! a free-form request without them is [`ProviderError::Unsupported`].

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{Ready, ready};

use llm_judge_chat::{ChatRequest, Completion, Grader, ProviderError};

/// The deterministic judge as a `tower::Service`.
#[derive(Clone)]
pub struct RulesAdapter {
    grader: Arc<dyn Grader>,
}

impl RulesAdapter {
    pub fn new(grader: Arc<dyn Grader>) -> Self {
        RulesAdapter { grader }
    }
}

impl tower::Service<Arc<ChatRequest>> for RulesAdapter {
    type Response = Completion;
    type Error = ProviderError;
    type Future = Ready<Result<Completion, ProviderError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ProviderError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Arc<ChatRequest>) -> Self::Future {
        ready(match &req.grading {
            Some(task) => Ok(Completion {
                text: self.grader.grade(task),
                finish_reason: Some("stop".into()),
                ..Completion::default()
            }),
            None => Err(ProviderError::Unsupported(
                "the rules judge needs the item's fields (question, reference, prediction), \
                 not a free-form prompt"
                    .into(),
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    use tower::ServiceExt;

    use super::*;
    use llm_judge_chat::GradingTask;

    struct Echo;

    impl Grader for Echo {
        fn grade(&self, task: &GradingTask) -> String {
            format!("{task:?}")
        }
    }

    #[tokio::test]
    async fn grades_the_fields_and_refuses_a_bare_prompt() {
        let adapter = RulesAdapter::new(Arc::new(Echo));
        let mut req = ChatRequest::user(None, vec![]);
        req.grading = Some(GradingTask::Binary {
            question: "q".into(),
            reference: "4".into(),
            prediction: "4".into(),
        });
        let c = adapter.clone().oneshot(Arc::new(req)).await.unwrap();
        assert!(c.text.starts_with("Binary"));
        assert_eq!(c.usage.total(), 0);
        assert_eq!(c.finish_reason.as_deref(), Some("stop"));
        let bare = Arc::new(ChatRequest::user(None, vec![]));
        let err = adapter.oneshot(bare).await.unwrap_err();
        assert!(
            matches!(err, ProviderError::Unsupported(m) if m.contains("needs the item's fields"))
        );
    }
}
