//! What a send that names a template becomes, and which steps of its route the
//! customer-service window leaves it.
//!
//! Everything is decided here, at accept, and stored with the message: the dispatcher reads
//! no template, registry or inbound history per message. A stored template is rendered
//! once for the recipient; when its variant maps to a provider template, the message keeps
//! a template body (sent by name on a channel with provider templates) carrying the
//! rendered content as its `fallback` (sent on every other channel, by
//! [`relais_core::content::degrade`]). So each step of a fallback chain gets its form
//! without the engine asking which channel it is.
//!
//! The window is judged at accept too, from when the contact last wrote on each channel
//! kind: a step whose window is closed for a free-form message is left out of the chain
//! (and the message's events say why); a request with no step left is refused. A human
//! agent's reply ([`super::SendRequest::human_agent`]) is judged by the channel's longer
//! human-agent window where it has one (Messenger's 7 days). A window
//! that closes while an earlier step waits for its delivery is looked at again by the
//! dispatcher when the chain moves on (`dispatch/decide.rs`, `closed_window`).

use super::{AcceptError, invalid};
use jiff::Timestamp;
use relais_core::channel::ChannelKind;
use relais_core::contact::Contact;
use relais_core::content::{Body, ChannelCapabilities, Content, TemplateRef, degrade};
use relais_core::fallback::{FallbackChain, FallbackStep};
use relais_core::status::MessageStatus;
use relais_core::stored_template::StoredTemplate;
use relais_core::template::{
    ContentTemplate, ContentTemplateError, RenderBudget, template_context,
};
use relais_store::{MessageEvent, ProviderTemplate};
use std::collections::HashMap;

/// What the store said about the group's templates and recipients, read once per group.
#[derive(Default)]
pub(super) struct Known {
    /// The tenant's stored templates the group names, by name.
    pub(super) templates: HashMap<String, StoredTemplate>,
    /// Provider templates (any of the tenant's channels) of the names the group may send.
    pub(super) registry: Vec<ProviderTemplate>,
    /// When each recipient last wrote on each channel kind.
    pub(super) last_inbound: HashMap<(String, ChannelKind), Timestamp>,
}

/// The stored template a template body names, rendered for `contact`, or `None` when the
/// tenant has no template of that name (the body then names a provider template).
///
/// The variant is the body's `language`, else the contact's locale, else its `language`
/// attribute, else the template's first. Texts are rendered with the contact's attributes
/// and the request's variables (the body's own `variables` win); those variables are also
/// the provider template's parameters.
pub(super) fn render_stored(
    known: &Known,
    content: &Content,
    contact: &Contact,
    request_variables: &serde_json::Map<String, serde_json::Value>,
    compiled: &mut HashMap<String, ContentTemplate>,
    budget: &mut RenderBudget,
    at: &dyn Fn(&str) -> String,
) -> Result<Option<Content>, AcceptError> {
    let Body::Template(named) = &content.body else {
        return Ok(None);
    };
    let Some(stored) = known.templates.get(&named.name) else {
        return Ok(None);
    };
    let attribute_language = contact
        .attributes
        .get("language")
        .and_then(serde_json::Value::as_str);
    let wanted: Vec<&str> = [
        named.language.as_deref(),
        contact.locale.as_deref(),
        attribute_language,
    ]
    .into_iter()
    .flatten()
    .collect();
    let variant = stored.variant(&wanted).ok_or_else(|| {
        invalid(
            &at("/content/template"),
            format!("stored template `{}` has no variant", named.name),
        )
    })?;
    let mut variables = request_variables.clone();
    variables.extend(named.variables.iter().map(|(k, v)| (k.clone(), v.clone())));
    let context = template_context(&contact.attributes, &variables);
    let key = format!("{}\u{0}{}", named.name, variant.language);
    let template = match compiled.get(&key) {
        Some(t) => t.clone(),
        None => {
            let t = ContentTemplate::compile(&variant.content)
                .map_err(|e| stored_error(named, variant, e, at))?;
            compiled.insert(key, t.clone());
            t
        }
    };
    let rendered = template
        .render_within(&context, budget)
        .map_err(|e| stored_error(named, variant, e, at))?;
    Ok(Some(match &variant.provider {
        Some(provider) => Content {
            body: Body::Template(TemplateRef {
                name: provider.name.clone(),
                language: Some(provider.language.clone()),
                variables: provider_parameters(named, variant, provider, &context, variables, at)?,
                fallback: Some(Box::new(rendered)),
            }),
            buttons: Vec::new(),
            quick_replies: Vec::new(),
        },
        None => rendered,
    }))
}

/// The provider template's parameters: the variables its mapping lists, numbered `1`,
/// `2`… in that order, or the send's variables as they are when it lists none.
fn provider_parameters(
    named: &TemplateRef,
    variant: &relais_core::stored_template::TemplateVariant,
    provider: &relais_core::stored_template::ProviderTemplateRef,
    context: &serde_json::Value,
    variables: serde_json::Map<String, serde_json::Value>,
    at: &dyn Fn(&str) -> String,
) -> Result<serde_json::Map<String, serde_json::Value>, AcceptError> {
    if provider.parameters.is_empty() {
        return Ok(variables);
    }
    provider
        .parameters
        .iter()
        .enumerate()
        .map(|(i, name)| match context.get(name) {
            Some(value) if !value.is_null() => Ok(((i + 1).to_string(), value.clone())),
            _ => Err(invalid(
                &at("/content/variables"),
                format!(
                    "stored template `{}` ({}) fills parameter {} of provider template `{}` with `{name}`, which neither the contact's attributes nor the variables hold",
                    named.name,
                    variant.language,
                    i + 1,
                    provider.name
                ),
            )),
        })
        .collect()
}

fn stored_error(
    named: &TemplateRef,
    variant: &relais_core::stored_template::TemplateVariant,
    e: ContentTemplateError,
    at: &dyn Fn(&str) -> String,
) -> AcceptError {
    invalid(
        &at("/content/variables"),
        format!(
            "stored template `{}` ({}) cannot be rendered for this contact: {e}",
            named.name, variant.language
        ),
    )
}

/// Loose language match for provider locales: `en_US` is `en-us`.
fn folded(language: &str) -> String {
    language.trim().to_ascii_lowercase().replace('_', "-")
}

/// The route the message can take: each step checked for the content's form there, the
/// steps a closed window leaves out removed (with an event each), or why none can send it.
#[allow(clippy::too_many_arguments)]
pub(super) fn fit_route(
    chain: FallbackChain,
    content: &Content,
    kinds: &[ChannelKind],
    contact: &Contact,
    reachable: &dyn Fn(ChannelKind) -> bool,
    known: &Known,
    named_steps: bool,
    human_agent: bool,
    now: Timestamp,
    at: &dyn Fn(&str) -> String,
) -> Result<(FallbackChain, Vec<MessageEvent>), AcceptError> {
    let pointer = |i: usize| {
        if named_steps {
            at(&format!("/channels/{i}"))
        } else {
            at("/channel")
        }
    };
    let mut kept: Vec<FallbackStep> = Vec::new();
    let mut skipped: Vec<(usize, ChannelKind, &'static str, String)> = Vec::new();
    for (i, (step, kind)) in chain.steps().iter().zip(kinds).enumerate() {
        if !reachable(*kind) {
            skipped.push((
                i,
                *kind,
                "no_address",
                format!(
                    "the contact has no address on `{kind}` (no identity of theirs reaches them there); add one with POST /v1/contacts/{}/identities or choose another channel",
                    contact.id
                ),
            ));
            continue;
        }
        let caps = ChannelCapabilities::for_kind(*kind);
        if let Body::Template(template) = &content.body {
            if caps.provider_templates {
                check_registry(template, &step.channel, known, at)?;
            } else if template.fallback.is_none() {
                return Err(invalid(
                    &pointer(i),
                    format!(
                        "template `{}` is not stored in this tenant (see /v1/templates) and `{}` has no provider templates to send it by name",
                        template.name, step.channel
                    ),
                ));
            }
        }
        if caps.service_window_hours.is_some() {
            let free_form = !matches!(degrade(content, caps).body, Body::Template(_));
            let wrote_at = known
                .last_inbound
                .get(&(contact.id.clone(), *kind))
                .copied();
            let open = if human_agent {
                caps.allows_human_agent_reply(wrote_at, now)
            } else {
                caps.allows_free_form(wrote_at, now)
            };
            if free_form && !open {
                let hours = if human_agent {
                    caps.human_agent_window_hours
                        .or(caps.service_window_hours)
                        .unwrap_or_default()
                } else {
                    caps.service_window_hours.unwrap_or_default()
                };
                let since = match wrote_at {
                    Some(at) => format!("the contact last wrote on {kind} at {at}"),
                    None => format!("the contact never wrote on {kind}"),
                };
                skipped.push((
                    i,
                    *kind,
                    "window_closed",
                    format!(
                        "the {hours} h customer-service window of `{}` is closed ({since}): outside it only a template may be sent; use a template (content: {{\"template\": NAME}})",
                        step.channel
                    ),
                ));
                continue;
            }
        }
        kept.push(step.clone());
    }
    if kept.is_empty() {
        let (i, _, _, detail) = skipped
            .into_iter()
            .next()
            .ok_or_else(|| invalid(&at("/channels"), "the chain is empty"))?;
        return Err(invalid(&pointer(i), detail));
    }
    if skipped.is_empty() {
        return Ok((chain, Vec::new()));
    }
    let events = skipped
        .into_iter()
        .map(|(_, kind, reason, detail)| {
            MessageEvent::new(MessageStatus::Rejected, now)
                .channel(kind.as_str())
                .reason(reason)
                .detail(format!("fallback skipped: {detail}"))
        })
        .collect();
    let chain = FallbackChain::new(kept).map_err(|e| invalid(&at("/channels"), e.to_string()))?;
    Ok((chain, events))
}

/// A provider template the registry knows and that is not approved cannot be sent.
fn check_registry(
    template: &TemplateRef,
    channel: &str,
    known: &Known,
    at: &dyn Fn(&str) -> String,
) -> Result<(), AcceptError> {
    let by_channel = known.registry.iter().any(|t| t.channel_id == channel);
    let matching: Vec<&ProviderTemplate> = known
        .registry
        .iter()
        .filter(|t| t.name == template.name)
        .filter(|t| !by_channel || t.channel_id == channel)
        .filter(|t| {
            template
                .language
                .as_deref()
                .is_none_or(|language| folded(language) == folded(&t.language))
        })
        .collect();
    if matching.is_empty() || matching.iter().any(|t| t.is_approved()) {
        return Ok(());
    }
    let statuses: Vec<String> = matching
        .iter()
        .map(|t| format!("{} ({})", t.status, t.language))
        .collect();
    Err(invalid(
        &at("/content/template"),
        format!(
            "provider template `{}` is not approved: its status is {}; only APPROVED templates can be sent",
            template.name,
            statuses.join(", ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use relais_core::fallback::MoveOn;

    fn now() -> Timestamp {
        "2026-11-23T10:00:00Z".parse().unwrap()
    }

    fn contact() -> Contact {
        Contact {
            id: "c1".into(),
            attributes: Default::default(),
            timezone: None,
            locale: None,
            identities: Vec::new(),
            created_at: now(),
            updated_at: now(),
        }
    }

    fn chain(channels: &[&str]) -> FallbackChain {
        FallbackChain::new(
            channels
                .iter()
                .map(|c| FallbackStep {
                    channel: (*c).to_owned(),
                    move_on: MoveOn::OnFailure,
                })
                .collect(),
        )
        .unwrap()
    }

    fn wrote(hours_ago: i64) -> Known {
        let mut known = Known::default();
        known.last_inbound.insert(
            ("c1".into(), ChannelKind::Whatsapp),
            now() - jiff::SignedDuration::from_hours(hours_ago),
        );
        known
    }

    fn fit(
        channels: &[&str],
        content: &Content,
        known: &Known,
    ) -> Result<(Vec<String>, Vec<MessageEvent>), AcceptError> {
        let kinds: Vec<ChannelKind> = channels.iter().map(|c| c.parse().unwrap()).collect();
        let at = |p: &str| p.to_owned();
        fit_route(
            chain(channels),
            content,
            &kinds,
            &contact(),
            &|_| true,
            known,
            channels.len() > 1,
            false,
            now(),
            &at,
        )
        .map(|(chain, events)| {
            (
                chain.steps().iter().map(|s| s.channel.clone()).collect(),
                events,
            )
        })
    }

    fn template(fallback: bool) -> Content {
        Content {
            body: Body::Template(TemplateRef {
                name: "order_shipped".into(),
                language: Some("fr".into()),
                variables: Default::default(),
                fallback: fallback.then(|| Box::new(Content::text("Votre commande est partie"))),
            }),
            buttons: Vec::new(),
            quick_replies: Vec::new(),
        }
    }

    #[test]
    fn a_closed_window_leaves_its_step_out_of_the_chain_with_an_event() {
        let text = Content::text("Bonjour");
        let (steps, events) = fit(&["whatsapp", "sms"], &text, &wrote(25)).unwrap();
        assert_eq!(steps, ["sms"]);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].reason.as_deref(), Some("window_closed"));
        assert_eq!(events[0].channel.as_deref(), Some("whatsapp"));
        let (steps, events) = fit(&["whatsapp", "sms"], &text, &wrote(23)).unwrap();
        assert_eq!((steps.len(), events.len()), (2, 0), "open 23 hours later");
    }

    #[test]
    fn a_request_with_no_step_left_is_refused_saying_a_template_is_needed() {
        let Err(AcceptError::Invalid { pointer, detail }) =
            fit(&["whatsapp"], &Content::text("Bonjour"), &Known::default())
        else {
            panic!("refused")
        };
        assert_eq!(pointer, "/channel");
        assert!(
            detail.contains("closed") && detail.contains("template"),
            "{detail}"
        );
    }

    #[test]
    fn a_template_goes_by_name_outside_the_window_and_as_its_fallback_elsewhere() {
        let (steps, _) = fit(&["whatsapp", "sms"], &template(true), &Known::default()).unwrap();
        assert_eq!(steps, ["whatsapp", "sms"]);
        assert!(fit(&["whatsapp"], &template(false), &Known::default()).is_ok());
        let Err(AcceptError::Invalid { pointer, .. }) =
            fit(&["whatsapp", "sms"], &template(false), &Known::default())
        else {
            panic!("sms cannot send an unstored template")
        };
        assert_eq!(pointer, "/channels/1");
        // Messenger has no provider templates: the fallback is free-form there.
        let Err(AcceptError::Invalid { detail, .. }) =
            fit(&["messenger"], &template(true), &Known::default())
        else {
            panic!("the fallback is free-form on Messenger")
        };
        assert!(detail.contains("window"), "{detail}");
    }

    #[test]
    fn a_registry_template_is_sendable_only_when_one_of_its_rows_is_approved() {
        let row = |language: &str, status: &str| ProviderTemplate {
            channel_id: "wa".into(),
            name: "order_shipped".into(),
            language: language.into(),
            category: "UTILITY".into(),
            status: status.into(),
            components: serde_json::Value::Null,
            synced_at: now(),
        };
        let at = |p: &str| p.to_owned();
        let Body::Template(t) = template(false).body else {
            unreachable!()
        };
        let known = |rows: Vec<ProviderTemplate>| Known {
            registry: rows,
            ..Known::default()
        };
        assert!(
            check_registry(&t, "wa", &known(vec![]), &at).is_ok(),
            "unknown: Meta decides"
        );
        assert!(check_registry(&t, "wa", &known(vec![row("fr", "APPROVED")]), &at).is_ok());
        assert!(
            check_registry(&t, "wa", &known(vec![row("en_US", "PAUSED")]), &at).is_ok(),
            "another language"
        );
        let Err(AcceptError::Invalid { detail, .. }) =
            check_registry(&t, "wa", &known(vec![row("fr", "PAUSED")]), &at)
        else {
            panic!("paused")
        };
        assert!(detail.contains("PAUSED"), "{detail}");
    }
}
