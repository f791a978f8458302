//! Where a message goes: the channel or fallback chain a request names (a configured
//! channel by name or id, or a channel kind), or the route picked for its contact.

use super::{AcceptError, Recipient, SendRequest, invalid};
use relais_core::channel::ChannelKind;
use relais_core::contact::Contact;
use relais_core::fallback::FallbackChain;
use relais_core::phone::normalize_phone;
use relais_store::Store;
use std::collections::HashMap;

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

/// Replaces the names of the tenant's configured channels in `channel` / `channels` by their
/// ids (what the dispatcher routes on), and says which kind each id sends on.
pub(super) async fn resolve_channel_names(
    store: &dyn Store,
    tenant: &str,
    request: &mut SendRequest,
    base: &str,
    known: &mut ChannelNames,
    configured: &[ChannelKind],
) -> Result<HashMap<String, ChannelKind>, AcceptError> {
    // A plain function of `base`: a `&dyn Fn` held across the awaits would make the
    // accept future not `Send`.
    let at = |p: &str| format!("{base}{p}");
    // A message addressed on one channel (`{"channel": "email", "address": …}`) goes on
    // that channel only, never on another address of its contact.
    let mut only_channel = false;
    if request.channel.is_none()
        && request.channels.is_none()
        && let Recipient::Address { channel, .. } = &request.to
    {
        request.channel = Some(channel.as_str().to_owned());
        only_channel = true;
    }
    let mut named = HashMap::new();
    if let Some(name) = &mut request.channel
        && let Some((id, kind)) = configured_channel(
            store,
            tenant,
            name,
            &at("/channel"),
            known,
            Missing {
                configured,
                refused: only_channel,
            },
        )
        .await?
    {
        *name = id.clone();
        named.insert(id, kind);
    }
    if let Some(chain) = &request.channels {
        let mut steps = chain.steps().to_vec();
        let mut changed = false;
        for (i, step) in steps.iter_mut().enumerate() {
            let pointer = at(&format!("/channels/{i}"));
            if let Some((id, kind)) = configured_channel(
                store,
                tenant,
                &step.channel,
                &pointer,
                known,
                Missing {
                    configured,
                    refused: false,
                },
            )
            .await?
            {
                step.channel = id.clone();
                named.insert(id, kind);
                changed = true;
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

/// What to do with a channel kind the server has no adapter of its own for.
#[derive(Clone, Copy)]
struct Missing<'a> {
    /// The kinds the server sends on without a configured channel (the sandbox).
    configured: &'a [ChannelKind],
    /// Refuse the request when the tenant has no channel of the kind; otherwise the kind
    /// is left as it is (a dispatcher with an adapter for it sends it, others fail it as
    /// an unknown channel).
    refused: bool,
}

/// The id and kind of the configured channel `name` names; `None` for a channel kind the
/// server sends on by itself (the sandbox) or an unknown name (refused later as an unknown
/// channel). Another channel kind names the tenant's first configured channel of that
/// kind (the oldest).
async fn configured_channel(
    store: &dyn Store,
    tenant: &str,
    name: &str,
    pointer: &str,
    known: &mut ChannelNames,
    missing: Missing<'_>,
) -> Result<Option<(String, ChannelKind)>, AcceptError> {
    if let Ok(kind) = name.parse::<ChannelKind>() {
        if missing.configured.contains(&kind) {
            return Ok(None);
        }
        if !known.contains_key(name) {
            let first = store
                .channels(tenant)
                .await?
                .into_iter()
                .find(|record| configured_kind(&record.kind) == Some(kind))
                .map(|record| (record.id, kind));
            known.insert(name.to_owned(), first);
        }
        return match known.get(name).cloned().flatten() {
            Some(found) => Ok(Some(found)),
            None if missing.refused => Err(invalid(
                pointer,
                format!(
                    "no `{kind}` channel is configured for this tenant: create one with POST /v1/channels (docs/channels.md)"
                ),
            )),
            None => Ok(None),
        };
    }
    if let Some(found) = known.get(name) {
        return Ok(found.clone());
    }
    let Some(record) = store.channel_by_name_or_id(tenant, name).await? else {
        known.insert(name.to_owned(), None);
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
    let found = Some((record.id, kind));
    known.insert(name.to_owned(), found.clone());
    Ok(found)
}

/// The configured channels a batch's requests named, by the name they used (`None`: not
/// a configured channel), so that a batch of 10,000 to one channel looks it up once.
pub(super) type ChannelNames = HashMap<String, Option<(String, ChannelKind)>>;

pub(super) fn pick_route(
    request: &SendRequest,
    contact: &Contact,
    address: &str,
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
            let phone = normalize_phone(address, None).is_ok()
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
