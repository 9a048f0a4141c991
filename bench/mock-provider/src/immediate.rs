//! The answers that come at once: `/stats`, `/stats/reset`, `/healthz` and 404.

use bytes::Bytes;

use crate::reply::Reply;
use crate::route::Route;
use crate::shared::Shared;

/// The answer to anything that is not a chat call.
pub fn immediate(shared: &Shared, route: Route) -> Reply {
    match route {
        Route::Stats => Reply::ok(shared.render_stats()),
        Route::StatsReset => {
            shared.stats.reset();
            shared.batches.stats.reset();
            if let Some(w) = &shared.window {
                w.reset();
            }
            shared.answers.cache.clear();
            Reply::ok(shared.render_stats())
        }
        Route::Health => Reply::ok("\"ok\""),
        Route::NotFound | Route::Chat(_) | Route::Batch => Reply::Answer {
            status: 404,
            body: Bytes::from_static(
                br#"{"error":{"message":"no such endpoint on the mock provider","type":"invalid_request_error","param":null,"code":"not_found"}}"#,
            ),
            content_type: "application/json",
            retry_after: false,
        },
    }
}
