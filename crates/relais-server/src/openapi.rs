//! The OpenAPI description, generated from the handlers and types themselves.

use crate::routes::settings;
use crate::routes::{
    analytics, channels, contacts, conversations, events, flows, import, inbound, keywords, media,
    messages, nlu, sim, system, templates, tenants, tools, webchat, webchat_push, webhooks,
};
use crate::routes::{entry_points, links};
use std::sync::OnceLock;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "Relais API", description = "Self-hosted omnichannel messaging: contacts, consent, messages, conversations."),
    paths(
        system::healthz,
        tenants::create_tenant, tenants::list_tenants, tenants::create_api_key,
        contacts::create_contact, contacts::list_contacts, contacts::get_contact, contacts::update_contact,
        contacts::delete_contact, contacts::add_identity, contacts::remove_identity, contacts::record_consent,
        contacts::list_consents, contacts::consent_decision, contacts::merge_contact, contacts::list_merges,
        import::import,
        crate::routes::privacy::export_contact, crate::routes::privacy::erase_contact,
        crate::routes::privacy::retention, crate::routes::privacy::sweep,
        tools::sms_segments,
        messages::send_message, messages::send_batch, messages::list_messages, messages::get_message, messages::cancel_message, messages::release_message, messages::reject_message, sim::phones, sim::phone_messages, sim::phone_reply,
        channels::create_channel, channels::list_channels, channels::get_channel, channels::delete_channel, channels::create_smpp_credentials,
        channels::sync_provider_templates, channels::list_provider_templates,
        webhooks::create_webhook, webhooks::list_webhooks, webhooks::delete_webhook, webhooks::list_deliveries,
        nlu::classify, nlu::train, nlu::put_knowledge_base, nlu::get_llm, nlu::put_llm, nlu::answer, nlu::suggest, nlu::summarize,
        inbound::list_inbound, inbound::get_inbound, media::get_media,
        webchat::upload, webchat::visitor_media,
        webchat_push::key, webchat_push::subscribe, webchat_push::unsubscribe,
        keywords::get_keywords, keywords::put_keywords,
        conversations::list_conversations, conversations::get_conversation, conversations::update_conversation, conversations::reply, conversations::typing,
        flows::list_flows, flows::get_flow, flows::put_flow, flows::delete_flow, flows::simulate_flow,
        templates::create_template, templates::list_templates, templates::get_template, templates::put_template, templates::delete_template,
        events::stream,
        analytics::figures, analytics::volume_chart, analytics::funnel_chart,
        links::follow,
        entry_points::create_entry_point, entry_points::list_entry_points, entry_points::get_entry_point,
        entry_points::delete_entry_point, entry_points::qr_code, entry_points::conversations,
        settings::get_settings, settings::put_settings, settings::patch_settings,
        crate::routes::senders::create_sender, crate::routes::senders::list_senders, crate::routes::senders::get_sender,
        crate::routes::senders::delete_sender, crate::routes::senders::send_code, crate::routes::senders::verify_sender,
        crate::routes::customer_events::post_event, crate::routes::customer_events::list_contact_events,
        crate::routes::journeys::list_journeys, crate::routes::journeys::get_journey, crate::routes::journeys::put_journey,
        crate::routes::journeys::delete_journey, crate::routes::journeys::list_runs, crate::routes::journeys::journey_report,
        crate::routes::journeys::list_geofences, crate::routes::journeys::put_geofence, crate::routes::journeys::delete_geofence,
        crate::routes::twilio::issue_account, crate::routes::twilio::show_account, crate::routes::twilio::set_inbound,
        crate::routes::twilio::create_service, crate::routes::twilio::list_services,
        crate::routes::audit::list_audit,
    ),
    components(schemas(crate::problem::Problem, crate::problem::FieldError)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The description as JSON, built once.
pub fn openapi_json() -> String {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    })
    .clone()
}
