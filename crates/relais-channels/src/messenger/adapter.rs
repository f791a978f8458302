//! [`MessengerChannel`]: one Page (or Instagram professional account) behind
//! [`ChannelAdapter`], sending through `POST {base_url}/{api_version}/me/messages`.
//!
//! The token goes in an `Authorization: Bearer` header rather than Meta's
//! `access_token` query parameter, so it never lands in a proxy's access log; the query
//! carries `appsecret_proof` (the token's HMAC under the app secret), which Meta checks
//! when the app requires it and accepts otherwise. A 2xx answer's `message_id` is the
//! provider id that delivery and read webhooks name later. Errors are mapped by
//! [`super::errors`]; a request that never got an answer (refused connection, 10 s
//! timeout) is transient. When Meta refuses the token or a permission, the channel says
//! it is not ready for a minute, so its messages wait in the outbox for the operator.
//!
//! Sends are paced at `max_rate`, and audio and video at most 10 a second as well, the
//! lower limit Meta sets for them.

use super::config::MessengerConfig;
use super::errors::{ErrorCode, classify, excerpt};
use super::send::request_body;
use super::tag::MessagingTag;
use crate::adapter::{ChannelAdapter, OutboundMessage, ProviderAck, SendError};
use crate::pace::{AuthPause, Pace};
use crate::whatsapp::adapter::{AUTH_PAUSE, ClientError, SEND_TIMEOUT, http_client};
use crate::whatsapp::signature::keyed;
use async_trait::async_trait;
use hmac::Mac;
use relais_core::channel::ChannelKind;
use relais_core::content::{Body, MediaKind};
use relais_core::retry::ErrorClass;

/// Meta's Send API takes 10 calls a second per Page or Instagram account for messages
/// with audio or video, against 300 for the rest.
pub const AUDIO_VIDEO_MAX_RATE: f64 = 10.0;

/// Answers larger than this are not read further: Meta's are a few hundred bytes, and a
/// broken proxy must not make us buffer without bound.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// One configured Messenger Page or Instagram account.
pub struct MessengerChannel {
    config: MessengerConfig,
    client: reqwest::Client,
    /// The Send API address with its `appsecret_proof`.
    send_url: String,
    /// The pause after an `auth_failed` answer, while the channel is not ready.
    auth: AuthPause,
    /// Every send waits for its turn at `max_rate`; audio and video also at 10 a second.
    pace: Pace,
    audio_video_pace: Pace,
}

impl std::fmt::Debug for MessengerChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessengerChannel")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl MessengerChannel {
    pub fn new(config: MessengerConfig) -> Result<MessengerChannel, ClientError> {
        Ok(MessengerChannel {
            client: http_client()?,
            send_url: format!(
                "{}?appsecret_proof={}",
                config.messages_url(),
                appsecret_proof(config.app_secret(), config.access_token())
            ),
            pace: Pace::new(config.max_rate()),
            audio_video_pace: Pace::new(config.max_rate().min(AUDIO_VIDEO_MAX_RATE)),
            config,
            auth: AuthPause::default(),
        })
    }

    pub fn config(&self) -> &MessengerConfig {
        &self.config
    }

    /// Sends with an explicit messaging type; [`ChannelAdapter::send`] picks it with
    /// [`MessengerChannel::tag_of`].
    pub async fn send_tagged(
        &self,
        message: &OutboundMessage,
        tag: MessagingTag,
    ) -> Result<ProviderAck, SendError> {
        let body = request_body(self.config.platform(), &message.to, &message.content, tag)?;
        if is_audio_or_video(message) {
            self.audio_video_pace.wait_for_turn().await;
        }
        self.pace.wait_for_turn().await;
        let response = self
            .client
            .post(&self.send_url)
            .bearer_auth(self.config.access_token())
            .json(&body)
            .send()
            .await
            .map_err(unanswered)?;
        let status = response.status().as_u16();
        let answer = read_answer(response).await.map_err(unanswered)?;
        if !(200..300).contains(&status) {
            let error = classify(status, &answer);
            if error.class == ErrorClass::NotSent {
                self.pause_for_auth();
            }
            return Err(error);
        }
        message_id(&answer).map(|provider_id| ProviderAck { provider_id })
    }

    /// The messaging type `message` goes with: a human agent's reply is judged by how
    /// long ago the customer wrote, when it is sent.
    pub fn tag_of(&self, message: &OutboundMessage) -> MessagingTag {
        match message.human_agent_since {
            Some(wrote_at) => self
                .config
                .agent_reply_tag(message.now.duration_since(wrote_at)),
            None => MessagingTag::Response,
        }
    }

    fn pause_for_auth(&self) {
        self.auth.pause(AUTH_PAUSE);
    }
}

#[async_trait]
impl ChannelAdapter for MessengerChannel {
    fn kind(&self) -> ChannelKind {
        self.config.platform().kind()
    }

    fn is_ready(&self) -> bool {
        self.auth.is_over()
    }

    /// `message.from` is not read: the token decides the Page or account that sends.
    /// A human agent's reply (`human_agent_since`) takes [`MessengerConfig::agent_reply_tag`]
    /// (`HUMAN_AGENT` once 24 h have passed, when the channel allows it); everything
    /// else is a `RESPONSE`.
    ///
    /// [`MessengerConfig::agent_reply_tag`]: super::config::MessengerConfig::agent_reply_tag
    async fn send(&self, message: &OutboundMessage) -> Result<ProviderAck, SendError> {
        self.send_tagged(message, self.tag_of(message)).await
    }
}

/// `hex(HMAC-SHA256(key = app secret, data = access token))`, as Meta's Graph API
/// security guide defines it.
pub fn appsecret_proof(app_secret: &str, access_token: &str) -> String {
    keyed(app_secret.as_bytes(), access_token.as_bytes())
        .map(|mac| hex::encode(mac.finalize().into_bytes()))
        .unwrap_or_default()
}

fn is_audio_or_video(message: &OutboundMessage) -> bool {
    matches!(&message.content.body, Body::Media(media)
        if matches!(media.kind(), MediaKind::Audio | MediaKind::Video))
}

/// The `message_id` of a 2xx answer `{"recipient_id": "…", "message_id": "…"}`.
fn message_id(answer: &[u8]) -> Result<String, SendError> {
    serde_json::from_slice::<serde_json::Value>(answer)
        .ok()
        .and_then(|answer| {
            answer
                .get("message_id")
                .and_then(serde_json::Value::as_str)
                .filter(|id| !id.is_empty())
                .map(str::to_owned)
        })
        .ok_or_else(|| {
            ErrorCode::NoMessageId.error(format!(
                "the Send API answered 2xx without a message id: {}",
                excerpt(&String::from_utf8_lossy(answer), 200)
            ))
        })
}

/// A request that got no answer: the network, DNS, TLS or the 10 s timeout. The URL is
/// left out of the reason: its `appsecret_proof` has no place in the event log.
fn unanswered(error: reqwest::Error) -> SendError {
    let error = error.without_url();
    let what = if error.is_timeout() {
        format!("no answer within {} s", SEND_TIMEOUT.as_secs())
    } else if error.is_connect() {
        "cannot connect".to_owned()
    } else {
        "the request failed".to_owned()
    };
    ErrorCode::ProviderUnavailable.error(format!("Send API: {what}: {error}"))
}

/// The answer's body, at most [`MAX_ANSWER_BYTES`] of it.
async fn read_answer(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_ANSWER_BYTES.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_ANSWER_BYTES {
            break;
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::super::Platform;
    use super::*;
    use std::time::Duration;

    fn channel() -> MessengerChannel {
        let config = MessengerConfig::parse(
            Platform::Instagram,
            &serde_json::json!({"page_id": "17841405822304914",
            "access_token": "t", "app_secret": "s", "verify_token": "v"}),
        )
        .unwrap();
        MessengerChannel::new(config).unwrap()
    }

    #[test]
    fn the_message_id_is_read_from_a_2xx_answer() {
        let answer = br#"{"recipient_id": "1254477777772919",
            "message_id": "AG5Hz2Uq7tuwNEhXfYYKj8mJEM_QPpz5jdCK48PnKAjSdjfipqxqMvK8ma6AC8fplwlqLP_5cgXIbu7I3rBN0P"}"#;
        assert_eq!(
            message_id(answer).map(|id| id.len()),
            Ok(86),
            "the whole id is kept"
        );
        for answer in [&b"{}"[..], b"<html>", br#"{"message_id": ""}"#] {
            let e = message_id(answer).unwrap_err();
            assert_eq!(
                (e.class, e.code.as_str()),
                (ErrorClass::Transient, "no_message_id")
            );
        }
    }

    #[test]
    fn the_appsecret_proof_is_the_hmac_of_the_token_under_the_app_secret() {
        // RFC 4231 test case 2: key "Jefe".
        assert_eq!(
            appsecret_proof("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_channel_carries_its_platforms_kind() {
        assert_eq!(channel().kind(), ChannelKind::Instagram);
    }

    #[test]
    fn an_auth_failure_makes_the_channel_not_ready_for_a_while() {
        let channel = channel();
        assert!(channel.is_ready());
        channel.pause_for_auth();
        assert!(!channel.is_ready());
        channel.auth.pause(Duration::ZERO);
        assert!(channel.is_ready(), "ready again once the pause is over");
    }

    fn reply(human_agent_since: Option<jiff::Timestamp>) -> OutboundMessage {
        OutboundMessage {
            purpose: relais_core::consent::Purpose::Transactional,
            message_id: "m1".into(),
            tenant_id: "t1".into(),
            channel: ChannelKind::Instagram,
            to: "1254477777772919".into(),
            from: None,
            content: relais_core::content::Content::text("Toujours là ?"),
            human_agent_since,
            attempt: 1,
            now: "2026-11-22T10:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn a_human_agents_reply_takes_the_tag_once_24_hours_have_passed() {
        let channel = channel();
        let ago = |hours: i64| Some(reply(None).now - jiff::SignedDuration::from_hours(hours));
        assert_eq!(channel.tag_of(&reply(ago(2))), MessagingTag::Response);
        assert_eq!(channel.tag_of(&reply(ago(48))), MessagingTag::HumanAgent);
        // Not a human agent's reply (an API send, a bot): never tagged.
        assert_eq!(channel.tag_of(&reply(None)), MessagingTag::Response);
    }

    #[test]
    fn with_the_tag_turned_off_an_agents_late_reply_is_a_plain_response() {
        let config = MessengerConfig::parse(
            Platform::Messenger,
            &serde_json::json!({"page_id": "1", "access_token": "t", "app_secret": "s",
                "verify_token": "v", "human_agent_tag": false}),
        )
        .unwrap();
        let channel = MessengerChannel::new(config).unwrap();
        let wrote = reply(None).now - jiff::SignedDuration::from_hours(48);
        assert_eq!(channel.tag_of(&reply(Some(wrote))), MessagingTag::Response);
    }
}
