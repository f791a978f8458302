//! An address a customer gives as their own in a flow (an `email` or `phone` answer),
//! joined to their contact by the rule of [`relais_core::contact::decide_claim`]: added
//! when nobody holds it; when a known customer does and the one who gave it is only a
//! visitor, the visitor is merged into the customer (who survives, their attributes
//! winning) so that the thread goes on in the customer's conversation, on the customer's
//! channels.
//!
//! A claim is what someone typed: a web chat visitor may give anybody's address. The merge
//! is recorded with its cause (flow, node, message, conversation) for an agent to read
//! (`GET /v1/contacts/{id}/merges`), and what the visitor sees stays theirs: the widget's
//! history is that of their own web chat address.
//!
//! It is done in two steps, [`examine`] then [`carry_out`], because the answer is written
//! on the claimant between them: merged afterwards, the known customer's values win.
//! Idempotent: a message taken again after a crash finds the address held and the merge
//! it made (by its cause), and changes nothing.

use jiff::Timestamp;
use relais_core::contact::{ClaimDecision, Contact, Identity, MergeCause, decide_claim};
use relais_store::{MergeRecord, Store, StoreError};
use serde::Serialize;

/// What claiming an address did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Linked {
    /// The contact held it already.
    Held,
    /// It became one of the contact's identities.
    Added,
    /// The claimant was merged into `contact_id`, who held it (by this message: a run
    /// taken again reports the merge its first run made).
    Merged {
        merge_id: String,
        contact_id: String,
        merged_contact_id: String,
    },
    /// `holder_id` holds it, and the claimant has an address of their own: nothing was
    /// merged (an agent may merge them, after checking).
    KeptApart { holder_id: String },
}

/// What claiming an address will do, from [`examine`].
#[derive(Debug, Clone)]
pub struct Plan {
    decision: ClaimDecision,
    /// The merge this very message made already (a run taken again).
    made: Option<MergeRecord>,
}

impl Plan {
    /// Whether this message made its merge already, in a run a crash cut short: then the
    /// answer is not written again on the contact, whose values won.
    pub fn done_before(&self) -> bool {
        self.made.is_some()
    }
}

/// Reads what `contact_id` claiming `identity` (in `message_id`) would do.
pub async fn examine(
    store: &dyn Store,
    tenant: &str,
    contact_id: &str,
    identity: &Identity,
    message_id: &str,
) -> Result<Plan, StoreError> {
    let claimant = store
        .contact(tenant, contact_id)
        .await?
        // Merged meanwhile by another message: that one's run is taken again later with
        // the surviving contact.
        .ok_or_else(|| StoreError::NotFound(format!("contact {contact_id}")))?;
    let holder = holder_of(store, tenant, identity).await?;
    let decision = decide_claim(&claimant, holder.as_ref(), identity);
    let made = if decision == ClaimDecision::Held {
        store
            .merges(tenant, contact_id)
            .await?
            .into_iter()
            .find(|m| matches!(&m.cause, MergeCause::FlowAnswer { message_id: by, .. } if by == message_id))
    } else {
        None
    };
    Ok(Plan { decision, made })
}

/// Carries out `plan` for `contact_id`; `cause` is recorded with a merge.
pub async fn carry_out(
    store: &dyn Store,
    tenant: &str,
    contact_id: &str,
    identity: &Identity,
    plan: Plan,
    cause: &MergeCause,
    now: Timestamp,
) -> Result<Linked, StoreError> {
    match plan.decision {
        ClaimDecision::Held => Ok(plan.made.map_or(Linked::Held, merged)),
        ClaimDecision::Add => {
            // Taken meanwhile by another contact: `Conflict`, and the message is taken
            // again later, when the address has a holder to merge into.
            store
                .add_identity(tenant, contact_id, identity, now)
                .await?;
            Ok(Linked::Added)
        }
        ClaimDecision::MergeInto(holder) => {
            let record = store
                .merge_contacts(tenant, &holder, contact_id, cause, now)
                .await?;
            tracing::info!(tenant, survivor = %holder, merged = %contact_id, address = %identity.address, "a contact who gave a known customer's address was merged into them");
            Ok(merged(record))
        }
        ClaimDecision::KeepApart(holder) => {
            tracing::info!(tenant, contact = %contact_id, holder = %holder, channel = %identity.channel, "an address given in a flow belongs to another known contact; not merged");
            Ok(Linked::KeptApart { holder_id: holder })
        }
    }
}

fn merged(record: MergeRecord) -> Linked {
    Linked::Merged {
        merge_id: record.id,
        contact_id: record.survivor_id,
        merged_contact_id: record.merged_id,
    }
}

/// The contact holding `identity` as inbound messages find it: a phone number on any
/// phone channel (the earliest identity first), anything else on its own channel.
async fn holder_of(
    store: &dyn Store,
    tenant: &str,
    identity: &Identity,
) -> Result<Option<Contact>, StoreError> {
    let channel = (!identity.channel.is_phone_addressed()).then_some(identity.channel);
    let found = store
        .contact_by_identity(tenant, channel, &identity.address)
        .await?;
    Ok(found.filter(|c| c.identities.iter().any(|i| i.same_address(identity))))
}
