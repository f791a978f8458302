pub mod channels;
pub mod contacts;
pub mod import;
pub mod inbound;
pub mod messages;
pub mod nlu;
pub mod sim;
pub mod system;
pub mod tenants;
pub mod tools;
pub mod webhooks;

use crate::AppState;
use axum::Router;

pub fn v1() -> Router<AppState> {
    Router::new()
        .merge(tenants::router())
        .merge(channels::router())
        .merge(contacts::router())
        .merge(import::router())
        .merge(tools::router())
        .merge(messages::router())
        .merge(sim::router())
        .merge(webhooks::router())
        .merge(nlu::router())
        .merge(inbound::router())
}

/// Cursor pagination query: `?limit=50&cursor=…`.
#[derive(Debug, serde::Deserialize)]
pub struct PageQuery {
    /// Items per page, 1 to 1000 (default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageQuery {
    pub fn to_request(&self) -> relais_store::PageRequest {
        relais_store::PageRequest {
            after: self.cursor.clone(),
            limit: self.limit.unwrap_or(50).clamp(1, 1000),
        }
    }
}
