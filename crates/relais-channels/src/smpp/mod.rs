//! Configured `smpp` channels: one [`SmppClient`] per channel, behind [`ChannelAdapter`].
//!
//! The client binds in the background from the moment the channel is started; while no
//! bind is up the channel says it is not ready, and its messages wait in the outbox without
//! spending attempts. `send` submits the message (the client splits long texts) with the
//! Relais message id as reference (also on the wire, in a vendor TLV), and answers with the
//! first part's SMSC id. The client's events become the channel's ([`events`]): receipts
//! folded per message (a multi-part message is delivered only when every part is), and MO
//! messages; a `deliver_sm` is acknowledged to the SMSC only once the engine has stored
//! what it carried, so a crash makes the SMSC deliver it again, never loses it.

mod events;

pub use events::e164_or_raw;

use crate::adapter::{ChannelAdapter, OutboundMessage, ProviderAck, SendError};
use crate::configured::{ChannelIdentity, ConfigError, Started};
use async_trait::async_trait;
use relais_core::channel::ChannelKind;
use relais_core::content::Body;
use relais_smpp::{ClientConfig, ErrorKind, SmppClient, SubmitRequest};
use std::sync::Arc;

/// The `kind` of a configured SMPP channel.
pub const KIND: &str = "smpp";

/// Reads and checks an `smpp` channel's config (keys and defaults in docs/smpp.md).
pub fn parse_config(value: &serde_json::Value) -> Result<ClientConfig, ConfigError> {
    let object = value
        .as_object()
        .ok_or_else(|| ConfigError::new("", "the config must be a JSON object"))?;
    // The client has defaults for every key; these three have no sensible one.
    for key in ["host", "system_id", "password"] {
        if !object.contains_key(key) {
            return Err(ConfigError::new(
                &format!("/{key}"),
                format!("`{key}` is required"),
            ));
        }
    }
    let config: ClientConfig = serde_path_to_error::deserialize(value).map_err(|e| {
        let pointer: String = e
            .path()
            .iter()
            .map(|segment| format!("/{segment}"))
            .collect();
        ConfigError::new(&pointer, e.into_inner().to_string())
    })?;
    if config.host.trim().is_empty() {
        return Err(ConfigError::new("/host", "`host` must not be empty"));
    }
    if config.port == 0 {
        return Err(ConfigError::new(
            "/port",
            "`port` must be between 1 and 65535",
        ));
    }
    if config.system_id.is_empty() || config.system_id.len() > 15 {
        return Err(ConfigError::new(
            "/system_id",
            "`system_id` must hold 1 to 15 characters (SMPP 3.4)",
        ));
    }
    if config.password.len() > 8 {
        return Err(ConfigError::new(
            "/password",
            "`password` is at most 8 characters (SMPP 3.4)",
        ));
    }
    if config.system_type.len() > 12 {
        return Err(ConfigError::new(
            "/system_type",
            "`system_type` is at most 12 characters (SMPP 3.4)",
        ));
    }
    if !(1..=10_000).contains(&config.window) {
        return Err(ConfigError::new(
            "/window",
            "`window` must be between 1 and 10000",
        ));
    }
    if !(1..=64).contains(&config.binds) {
        return Err(ConfigError::new(
            "/binds",
            "`binds` must be between 1 and 64",
        ));
    }
    if let Some(rate) = config.max_rate
        && !(rate.is_finite() && rate > 0.0)
    {
        return Err(ConfigError::new(
            "/max_rate",
            "`max_rate` must be a positive number of messages per second",
        ));
    }
    if let Some(tag) = config.reference_tlv
        && !relais_smpp::pdu::VENDOR_TLVS.contains(&tag)
    {
        return Err(ConfigError::new(
            "/reference_tlv",
            "`reference_tlv` must be a vendor-specific tag, 5120 to 16383 (0x1400 to 0x3FFF), or null",
        ));
    }
    Ok(config)
}

/// One configured SMPP channel.
pub struct SmppChannel {
    identity: ChannelIdentity,
    config: ClientConfig,
    client: SmppClient,
}

/// Starts a channel: it binds in the background, so that MO messages flow before the
/// first send. Until a bind is up the channel is not ready, and its messages wait (a down
/// SMSC at start costs no attempts).
pub fn start(
    identity: ChannelIdentity,
    config: &serde_json::Value,
) -> Result<Started, ConfigError> {
    let config = parse_config(config)?;
    let (client, client_events) =
        SmppClient::start(config.clone()).map_err(|e| ConfigError::new("", e.to_string()))?;
    let events = events::SmppEvents::new(identity.clone(), client_events);
    Ok(Started {
        adapter: Arc::new(SmppChannel {
            identity,
            config,
            client,
        }),
        events: Some(Box::new(events)),
        webhook: None,
        mailbox: None,
    })
}

#[async_trait]
impl ChannelAdapter for SmppChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Sms
    }

    fn is_ready(&self) -> bool {
        self.client.is_ready()
    }

    /// The client's window on each bind that submits: a `kill -9` can send again at most
    /// what the SMSC had in flight.
    fn max_in_flight(&self) -> usize {
        self.config.window.max(1) * self.config.binds.max(1)
    }

    fn close(&self) {
        tracing::info!(channel = %self.identity.id, "SMPP channel stopped");
        self.client.close();
    }

    async fn send(&self, message: &OutboundMessage) -> Result<ProviderAck, SendError> {
        let text = match &message.content.body {
            Body::Text(text) => text.clone(),
            _ => {
                return Err(SendError::permanent(
                    "bad_content",
                    "SMS carries text only; the content did not degrade to text",
                ));
            }
        };
        let request = SubmitRequest {
            destination: message.to.clone(),
            text,
            source: message.from.clone(),
            reference: Some(message.message_id.clone()),
            registered_delivery: None,
        };
        match self.client.submit(request).await {
            Ok(outcome) => outcome
                .part_ids
                .into_iter()
                .next()
                .map(|provider_id| ProviderAck { provider_id })
                .ok_or_else(|| SendError::transient("smpp_no_id", "the SMSC answered no id")),
            Err(e) => {
                let code = match e.status {
                    Some(status) => format!("smpp_{status:#06x}"),
                    None => "smpp_link".to_owned(),
                };
                // Parts already accepted will be delivered anyway: resending them would
                // duplicate them on the handset, so a partial failure is final.
                if e.kind == ErrorKind::Permanent || !e.accepted_part_ids.is_empty() {
                    Err(SendError::permanent(code, e.reason))
                } else if e.is_not_connected() {
                    Err(SendError::not_sent("smpp_not_connected", e.reason))
                } else {
                    Err(SendError::transient(code, e.reason))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pointer(v: serde_json::Value) -> String {
        parse_config(&v)
            .err()
            .map(|e| e.pointer)
            .unwrap_or_default()
    }

    #[test]
    fn configs_are_checked_with_pointers() {
        let ok = json!({"host": "127.0.0.1", "port": 2775, "system_id": "acme", "password": "secret",
            "source_addr": "RELAIS", "window": 10, "binds": 2, "max_rate": 50});
        assert!(parse_config(&ok).is_ok());
        assert_eq!(pointer(json!({"system_id": "a", "password": "b"})), "/host");
        assert_eq!(pointer(json!({"host": "h", "system_id": "a"})), "/password");
        assert_eq!(
            pointer(json!({"host": "h", "system_id": "a", "password": "123456789"})),
            "/password"
        );
        assert_eq!(
            pointer(json!({"host": "h", "system_id": "a", "password": "p", "port": 70000})),
            "/port"
        );
        assert_eq!(
            pointer(
                json!({"host": "h", "system_id": "a", "password": "p", "data_coding": "ebcdic"})
            ),
            "/data_coding"
        );
        assert_eq!(
            pointer(json!({"host": "h", "system_id": "a", "password": "p", "window": 0})),
            "/window"
        );
    }

    #[test]
    fn a_reference_tlv_outside_the_vendor_range_is_refused() {
        let base = json!({"host": "h", "system_id": "a", "password": "p"});
        let with = |tlv: serde_json::Value| {
            let mut c = base.clone();
            c["reference_tlv"] = tlv;
            c
        };
        assert_eq!(pointer(with(json!(0x0204))), "/reference_tlv");
        assert!(parse_config(&with(json!(0x1401))).is_ok());
        let off = parse_config(&with(serde_json::Value::Null)).unwrap();
        assert_eq!(off.reference_tlv, None);
        assert_eq!(
            parse_config(&base).unwrap().reference_tlv,
            Some(relais_smpp::pdu::DEFAULT_REFERENCE_TLV)
        );
    }
}
