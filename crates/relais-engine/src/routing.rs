//! Which of a tenant's configured channels of one kind a message goes out on, when the
//! message (or a step of its chain) names the kind: the channels' routing keys read from
//! their configs ([`relais_channels::routing_rules`]), ordered for the message's
//! destination by [`relais_core::route::order`]. The first is where the message goes; the
//! others are where it fails over to when the first cannot send.
//!
//! The accept path and the dispatcher read the same channels the same way, so that a
//! message's first channel and its failovers follow one order.

use relais_core::channel::ChannelKind;
use relais_core::route::{Account, Destination, RouteRules, order};
use relais_store::{ChannelRecord, Store, StoreError};

/// A tenant's configured channels of one kind, with their routing rules, oldest first.
#[derive(Debug, Clone, Default)]
pub struct Accounts {
    accounts: Vec<(String, RouteRules)>,
}

impl Accounts {
    /// The channels of `kind` among `records`. A stored config whose routing keys cannot
    /// be read (it passed the checks when it was created) leaves its channel out, loudly.
    pub fn of_kind(records: &[ChannelRecord], kind: ChannelKind) -> Self {
        let accounts = records
            .iter()
            .filter(|record| crate::send::configured_kind(&record.kind) == Some(kind))
            .filter_map(
                |record| match relais_channels::routing_rules(&record.config) {
                    Ok(rules) => Some((record.id.clone(), rules)),
                    Err(e) => {
                        tracing::error!(channel = %record.id, error = %e, "stored routing keys are unreadable; the channel is left out of routing");
                        None
                    }
                },
            )
            .collect();
        Accounts { accounts }
    }

    /// The tenant's channels of `kind`, read from the store.
    pub async fn load(
        store: &dyn Store,
        tenant: &str,
        kind: ChannelKind,
    ) -> Result<Self, StoreError> {
        Ok(Accounts::of_kind(&store.channels(tenant).await?, kind))
    }

    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// The ids of the channels that take a message `message_id` to `address`, best first.
    pub fn order(&self, address: &str, message_id: &str) -> Vec<String> {
        let accounts: Vec<Account<'_>> = self
            .accounts
            .iter()
            .map(|(id, rules)| Account { id, rules })
            .collect();
        order(&accounts, &Destination::of(address), message_id)
            .into_iter()
            .map(str::to_owned)
            .collect()
    }
}
