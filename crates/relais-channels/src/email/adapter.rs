//! [`EmailChannel`]: one SMTP account behind [`ChannelAdapter`].
//!
//! Each send opens a connection to the configured server (`STARTTLS`, TLS or plain text,
//! with the account's login when it has one), gives it the message and closes. The
//! server's answer decides: 2xx → sent, its provider id the `Message-ID` Relais chose;
//! 4xx → retried later (`smtp_transient`); 5xx → permanently undeliverable with the
//! server's text (`smtp_rejected`); a refused login (530, 534, 535) holds the channel a
//! minute (`auth_failed`, no attempt spent); a server that cannot be reached → retried
//! (`connection_failed`).

use super::config::{EmailConfig, TlsMode};
use super::message::compose;
use super::render::render;
use super::unsubscribe;
use crate::adapter::{ChannelAdapter, OutboundMessage, ProviderAck, SendError};
use crate::pace::{AuthPause, Pace};
use crate::whatsapp::adapter::AUTH_PAUSE;
use async_trait::async_trait;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use relais_core::channel::ChannelKind;
use relais_core::consent::Purpose;
use std::time::{Duration, SystemTime};

/// How long a whole SMTP exchange may take before the send is retried.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(60);

/// One configured SMTP account.
pub struct EmailChannel {
    config: EmailConfig,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    pace: Pace,
    auth: AuthPause,
}

impl std::fmt::Debug for EmailChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailChannel")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Why the SMTP client could not be set up (a TLS configuration rustls refuses).
#[derive(Debug, thiserror::Error)]
#[error("the SMTP client cannot be set up: {0}")]
pub struct SetupError(String);

impl EmailChannel {
    pub fn new(config: EmailConfig) -> Result<EmailChannel, SetupError> {
        let tls =
            |host: &str| TlsParameters::new(host.to_owned()).map_err(|e| SetupError(e.to_string()));
        let tls = match config.tls() {
            TlsMode::None => Tls::None,
            TlsMode::StartTls => Tls::Required(tls(config.host())?),
            TlsMode::Tls => Tls::Wrapper(tls(config.host())?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(config.host())
            .port(config.port())
            .tls(tls)
            .timeout(Some(SMTP_TIMEOUT));
        if let Some((user, password)) = config.credentials() {
            builder = builder.credentials(Credentials::new(user.to_owned(), password.to_owned()));
        }
        Ok(EmailChannel {
            pace: Pace::new(config.max_rate()),
            transport: builder.build(),
            config,
            auth: AuthPause::default(),
        })
    }

    pub fn config(&self) -> &EmailConfig {
        &self.config
    }
}

#[async_trait]
impl ChannelAdapter for EmailChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Email
    }

    /// Not ready for a minute after the server refused the login.
    fn is_ready(&self) -> bool {
        self.auth.is_over()
    }

    /// `message.to` is the recipient's address; `message.from` is not read (the
    /// channel's `from` is the sender).
    async fn send(&self, message: &OutboundMessage) -> Result<ProviderAck, SendError> {
        let rendered = render(&message.content)?;
        // Marketing and its topics (newsletter lists) can be left in one click; a
        // transactional mail (an order's receipt) cannot.
        let unsubscribe = matches!(message.purpose, Purpose::Marketing | Purpose::Topic(_))
            .then(|| unsubscribe::current().token(&message.tenant_id, &message.message_id));
        let composed = compose(
            &self.config,
            &message.message_id,
            &message.to,
            &rendered,
            unsubscribe.as_deref(),
            SystemTime::now(),
        )?;
        self.pace.wait_for_turn().await;
        match self
            .transport
            .send_raw(&composed.envelope, &composed.bytes)
            .await
        {
            Ok(_) => Ok(ProviderAck {
                provider_id: composed.provider_id,
            }),
            Err(e) => {
                let error = classify(&e);
                if error.code == "auth_failed" {
                    self.auth.pause(AUTH_PAUSE);
                }
                Err(error)
            }
        }
    }
}

/// What an SMTP client error means for the message.
pub fn classify(error: &lettre::transport::smtp::Error) -> SendError {
    let text = error.to_string();
    let code = error.status().map(|code| code.to_string());
    match code.as_deref() {
        Some("530" | "534" | "535") => SendError::not_sent(
            "auth_failed",
            format!("the SMTP server refused the login: {text}"),
        ),
        _ if error.is_permanent() => SendError::permanent("smtp_rejected", text),
        _ if error.is_transient() => SendError::transient("smtp_transient", text),
        _ => SendError::transient(
            "connection_failed",
            format!("the SMTP server could not be reached or answered oddly: {text}"),
        ),
    }
}
