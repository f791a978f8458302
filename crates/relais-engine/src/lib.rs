//! The Relais runtime: what happens to contacts and messages between the API and the
//! channels.

pub mod agents;
pub mod analytics;
pub mod campaigns;
pub mod channels;
pub mod conversations;
pub mod counters;
pub mod crm;
pub mod dispatch;
pub mod entry_points;
pub mod events;
pub mod flows;
pub mod handoff;
pub mod held;
pub mod import;
pub mod inbound;
pub mod journeys;
pub mod keywords;
pub mod link;
pub mod nlu;
pub mod replies;
pub mod routing;
pub mod secrets;
pub mod segments;
pub mod send;
pub mod settings;
pub mod sim;
pub mod smpp_server;
pub mod smtp_server;
pub mod tenants;
pub mod tracked_links;
pub mod twilio;
pub mod unsubscribe;
pub mod web_push_opt_in;
pub mod webhooks;
