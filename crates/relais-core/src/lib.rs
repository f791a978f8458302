//! Relais domain types and pure rules. No I/O, no async, no SQL, no HTTP.

pub mod agent;
pub mod bucket;
pub mod campaign;
pub mod channel;
pub mod circuit;
pub mod clock;
pub mod consent;
pub mod contact;
pub mod content;
pub mod conversation;
pub mod fallback;
pub mod flow;
pub mod holidays;
pub mod ids;
pub mod keywords;
pub mod phone;
pub mod quiet_hours;
pub mod retry;
pub mod route;
pub mod sender;
pub mod sms;
pub mod status;
pub mod stored_template;
pub mod template;
pub mod tenant;
pub mod text;
