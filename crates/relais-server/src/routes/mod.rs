pub mod agents;
pub mod analytics;
pub mod audit;
pub mod campaigns;
pub mod channels;
pub mod contacts;
pub mod conversations;
pub mod customer_events;
pub mod entry_points;
pub mod events;
pub mod flows;
pub mod hooks;
pub mod import;
pub mod inbound;
pub mod journeys;
pub mod keywords;
pub mod links;
pub mod media;
pub mod messages;
pub mod nlu;
pub mod privacy;
pub mod segments;
pub mod senders;
pub mod settings;
pub mod sim;
pub mod system;
pub mod templates;
pub mod tenants;
pub mod tools;
pub mod twilio;
pub mod unsubscribe;
pub mod webchat;
pub mod webchat_push;
pub mod webhooks;

use crate::AppState;
use crate::problem::{ApiError, ApiResult};
use axum::Router;

pub fn v1() -> Router<AppState> {
    Router::new()
        .merge(tenants::router())
        .merge(channels::router())
        .merge(contacts::router())
        .merge(import::router())
        .merge(privacy::router())
        .merge(tools::router())
        // Its handlers read the body as bytes (for idempotency) rather than through ApiJson.
        .merge(
            messages::router()
                .route_layer(axum::middleware::from_fn(crate::extract::json_bodies_only)),
        )
        .merge(sim::router())
        .merge(senders::router())
        .merge(analytics::router())
        .merge(webhooks::router())
        .merge(nlu::router())
        .merge(inbound::router())
        .merge(media::router())
        .merge(keywords::router())
        .merge(conversations::router())
        .merge(flows::router())
        .merge(templates::router())
        .merge(events::router())
        .merge(agents::router())
        .merge(segments::router())
        .merge(campaigns::router())
        .merge(entry_points::router())
        .merge(settings::router())
        .merge(customer_events::router())
        .merge(journeys::router())
        .merge(twilio::credentials_router())
        .merge(audit::router())
}

/// The most items a page holds; a larger `limit` is lowered to it.
const MAX_PAGE: u32 = 1000;

/// Cursor pagination query: `?limit=50&cursor=…`.
#[derive(Debug, serde::Deserialize)]
pub struct PageQuery {
    /// Items per page, 1 to 1000 (default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageQuery {
    /// The page asked for; a `limit` of 0, or a cursor that no page gave (cursors are the
    /// UUIDv7 of the last item), is a 400 naming the parameter.
    pub fn to_request(&self) -> ApiResult<relais_store::PageRequest> {
        self.to_request_with(|cursor| uuid::Uuid::try_parse(cursor).is_ok())
    }

    /// [`PageQuery::to_request`] for a list whose cursors `is_cursor` recognises.
    pub fn to_request_with(
        &self,
        is_cursor: impl Fn(&str) -> bool,
    ) -> ApiResult<relais_store::PageRequest> {
        let limit = match self.limit {
            Some(0) => {
                return Err(ApiError::bad_parameter(
                    "limit",
                    format!("must be from 1 to {MAX_PAGE}, not 0"),
                ));
            }
            Some(n) => n.min(MAX_PAGE),
            None => 50,
        };
        if let Some(cursor) = &self.cursor
            && !is_cursor(cursor)
        {
            return Err(ApiError::bad_parameter(
                "cursor",
                "is not a cursor this API gave (use the `next_cursor` of the previous page)",
            ));
        }
        Ok(relais_store::PageRequest {
            after: self.cursor.clone(),
            limit,
        })
    }
}
