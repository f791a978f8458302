//! Where a message goes: the channel or fallback chain a request names (a configured
//! channel by name or id, or a channel kind), or the route picked for its contact. A kind
//! is routed among the tenant's channels of that kind by their routing rules
//! ([`crate::routing`]) once the message has its id; a kind the tenant has no channel of
//! is refused, unless the server sends on it without one (`AcceptContext::built_in`).

use super::{AcceptError, Recipient, SendRequest, invalid};
use crate::routing::Accounts;
use relais_core::channel::ChannelKind;
use relais_core::contact::{Contact, Identity};
use relais_core::fallback::FallbackChain;
use relais_store::Store;
use std::collections::HashMap;
use std::sync::Arc;

/// The channel kinds a sandbox server routes to when a request names no channel.
pub const SANDBOX_KINDS: &[ChannelKind] = ChannelKind::SANDBOXES;

pub(crate) fn channel_kind(name: &str, pointer: &str) -> Result<ChannelKind, AcceptError> {
    name.parse::<ChannelKind>()
        .map_err(|e| invalid(pointer, e.to_string()))
}

/// The channel kind a configured channel of provider kind `kind` (`smpp`, …) sends on.
pub fn configured_kind(kind: &str) -> Option<ChannelKind> {
    relais_channels::kind_of(kind).or_else(|| kind.parse().ok())
}

/// A channel kind, or the kind of a configured channel named in the request.
pub(super) fn kind_of(
    named: &HashMap<String, ChannelKind>,
    name: &str,
    pointer: &str,
) -> Result<ChannelKind, AcceptError> {
    match named.get(name) {
        Some(kind) => Ok(*kind),
        None => channel_kind(name, pointer),
    }
}

/// What a request's channels resolved to: the kind of each configured channel it named
/// (by the id that replaced its name), and the tenant's channels of each kind it named,
/// to route among ([`crate::routing`]).
#[derive(Default)]
pub(super) struct Named {
    pub(super) kinds: HashMap<String, ChannelKind>,
    pub(super) routes: HashMap<ChannelKind, Arc<Accounts>>,
}

/// Replaces the names of the tenant's configured channels in `channel` / `channels` by their
/// ids (what the dispatcher routes on), and says which kind each id sends on. A channel
/// kind stays as it is (the message is routed among the tenant's channels of that kind
/// once it has an id), but a kind the tenant has no channel of is refused, unless the
/// server sends on it without configuration (`built_in`: the sandbox).
pub(super) async fn resolve_channel_names(
    store: &dyn Store,
    tenant: &str,
    request: &mut SendRequest,
    base: &str,
    known: &mut ChannelNames,
    built_in: &[ChannelKind],
) -> Result<Named, AcceptError> {
    // A plain function of `base`: a `&dyn Fn` held across the awaits would make the
    // accept future not `Send`.
    let at = |p: &str| format!("{base}{p}");
    // A message addressed on one channel (`{"channel": "email", "address": …}`) goes on
    // that channel only, never on another address of its contact.
    if request.channel.is_none()
        && request.channels.is_none()
        && let Recipient::Address { channel, .. } = &request.to
    {
        request.channel = Some(channel.as_str().to_owned());
    }
    let mut named = Named::default();
    if let Some(name) = &mut request.channel {
        match configured_channel(store, tenant, name, &at("/channel"), known, built_in).await? {
            Some(Resolution::Channel(id, kind)) => {
                *name = id.clone();
                named.kinds.insert(id, kind);
            }
            Some(Resolution::Kind(kind, accounts)) => {
                named.routes.insert(kind, accounts);
            }
            None => {}
        }
    }
    if let Some(chain) = &request.channels {
        let mut steps = chain.steps().to_vec();
        let mut changed = false;
        for (i, step) in steps.iter_mut().enumerate() {
            let pointer = at(&format!("/channels/{i}"));
            match configured_channel(store, tenant, &step.channel, &pointer, known, built_in)
                .await?
            {
                Some(Resolution::Channel(id, kind)) => {
                    step.channel = id.clone();
                    named.kinds.insert(id, kind);
                    changed = true;
                }
                Some(Resolution::Kind(kind, accounts)) => {
                    named.routes.insert(kind, accounts);
                }
                None => {}
            }
        }
        if changed {
            request.channels = Some(
                FallbackChain::new(steps).map_err(|e| invalid(&at("/channels"), e.to_string()))?,
            );
        }
    }
    Ok(named)
}

/// Whether a tenant can configure channels of `kind` (none of the sandbox's kind).
fn configurable(kind: ChannelKind) -> bool {
    relais_channels::configured::KINDS
        .iter()
        .any(|provider| configured_kind(provider) == Some(kind))
}

/// What a name in `channel` / `channels` stands for.
enum Resolution {
    /// One configured channel: its id and the kind it sends on.
    Channel(String, ChannelKind),
    /// A kind the tenant has configured channels of.
    Kind(ChannelKind, Arc<Accounts>),
}

/// The configured channel `name` names, or the tenant's channels of the kind it names;
/// `None` for a kind the server sends on by itself (the sandbox) or an unknown name
/// (refused later as an unknown channel).
async fn configured_channel(
    store: &dyn Store,
    tenant: &str,
    name: &str,
    pointer: &str,
    known: &mut ChannelNames,
    built_in: &[ChannelKind],
) -> Result<Option<Resolution>, AcceptError> {
    if let Ok(kind) = name.parse::<ChannelKind>() {
        if !configurable(kind) {
            // No channel of it can exist (the sandbox's kind): the store is not asked.
            return if built_in.contains(&kind) {
                Ok(None)
            } else {
                Err(invalid(
                    pointer,
                    format!(
                        "no `{kind}` channel is configured for this tenant, and Relais cannot configure `{kind}` channels yet (docs/channels.md)"
                    ),
                ))
            };
        }
        let accounts = match known.kinds.get(&kind) {
            Some(accounts) => accounts.clone(),
            None => {
                let accounts = Arc::new(Accounts::load(store, tenant, kind).await?);
                known.kinds.insert(kind, accounts.clone());
                accounts
            }
        };
        if !accounts.is_empty() {
            return Ok(Some(Resolution::Kind(kind, accounts)));
        }
        if built_in.contains(&kind) {
            return Ok(None);
        }
        return Err(invalid(
            pointer,
            format!(
                "no `{kind}` channel is configured for this tenant: create one with POST /v1/channels (docs/channels.md)"
            ),
        ));
    }
    if let Some(found) = known.names.get(name) {
        return Ok(found
            .clone()
            .map(|(id, kind)| Resolution::Channel(id, kind)));
    }
    let Some(record) = store.channel_by_name_or_id(tenant, name).await? else {
        known.names.insert(name.to_owned(), None);
        return Ok(None);
    };
    let kind = configured_kind(&record.kind).ok_or_else(|| {
        invalid(
            pointer,
            format!(
                "channel `{name}` (kind `{}`) does not send messages",
                record.kind
            ),
        )
    })?;
    known
        .names
        .insert(name.to_owned(), Some((record.id.clone(), kind)));
    Ok(Some(Resolution::Channel(record.id, kind)))
}

/// The configured channels a batch's requests named, by the name they used (`None`: not
/// a configured channel), and the tenant's channels of each kind they named, so that a
/// batch of 10,000 to one channel looks it up once.
#[derive(Default)]
pub(super) struct ChannelNames {
    pub(super) names: HashMap<String, Option<(String, ChannelKind)>>,
    kinds: HashMap<ChannelKind, Arc<Accounts>>,
}

/// The channel each step of `chain` that names a kind the tenant has channels of goes out
/// on for a message `message_id` to its address on that kind (`address_on`): the first
/// of the kind's channels that take the destination, by their routing rules. Refused when
/// none takes it.
pub(super) fn route_steps(
    chain: &FallbackChain,
    routes: &HashMap<ChannelKind, Arc<Accounts>>,
    address_on: &dyn Fn(ChannelKind) -> Option<String>,
    message_id: &str,
    at: &dyn Fn(&str) -> String,
) -> Result<Vec<Option<String>>, AcceptError> {
    chain
        .steps()
        .iter()
        .map(|step| {
            let Some((kind, accounts)) = step
                .channel
                .parse::<ChannelKind>()
                .ok()
                .and_then(|kind| Some((kind, routes.get(&kind)?)))
            else {
                return Ok(None);
            };
            let address = address_on(kind).unwrap_or_default();
            match accounts.order(&address, message_id).into_iter().next() {
                Some(id) => Ok(Some(id)),
                None => Err(invalid(
                    &at("/to"),
                    format!(
                        "none of this tenant's `{kind}` channels takes `{address}`: their routing rules (`prefixes`, `countries`) leave it out; add a channel that takes it (docs/channels.md, \"Routing between accounts\")"
                    ),
                )),
            }
        })
        .collect()
}

pub(super) fn pick_route(
    request: &SendRequest,
    contact: &Contact,
    given: Option<&Identity>,
    configured: &[ChannelKind],
    named: &HashMap<String, ChannelKind>,
    at: &dyn Fn(&str) -> String,
) -> Result<FallbackChain, AcceptError> {
    match (&request.channel, &request.channels) {
        (Some(_), Some(_)) => Err(invalid(
            &at("/channels"),
            "give either `channel` or `channels`, not both",
        )),
        (Some(channel), None) => {
            kind_of(named, channel, &at("/channel"))?;
            Ok(FallbackChain::single(channel.clone()))
        }
        (None, Some(chain)) => {
            for (i, step) in chain.steps().iter().enumerate() {
                kind_of(named, &step.channel, &at(&format!("/channels/{i}")))?;
            }
            Ok(chain.clone())
        }
        (None, None) => {
            if let Some(identity) = contact
                .identities
                .iter()
                .find(|i| !i.channel.is_sandbox() && configured.contains(&i.channel))
            {
                return Ok(FallbackChain::single(identity.channel.as_str()));
            }
            let phone = given.is_some_and(|g| g.channel.is_phone_addressed())
                || contact
                    .identities
                    .iter()
                    .any(|i| i.channel.is_phone_addressed());
            if phone && let Some(sandbox) = configured.iter().find(|kind| kind.is_sandbox()) {
                return Ok(FallbackChain::single(sandbox.as_str()));
            }
            Err(invalid(
                &at("/channel"),
                "no configured channel reaches this contact; name one with `channel`",
            ))
        }
    }
}
