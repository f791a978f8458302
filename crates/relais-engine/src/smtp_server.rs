//! Relais as the mail server of its e-mail channels (`relais serve --smtp-listen`): the
//! SMTP listener of `relais_channels` takes mail for the `from` address of a running
//! e-mail channel, and each mail goes the way a relay's post to that channel's
//! `/hooks/` address goes ([`ConfiguredChannels::mail_arrived`]): a person's mail into the
//! inbound pipeline, a bounce onto the message it names. The listener answers `250` only
//! once that is stored.
//!
//! A mail for the addresses of several channels (two tenants that configured the same
//! sender, or a mail to two of them) goes to each; it is acknowledged when each stored it.

use crate::channels::{ConfiguredChannels, HookError};
use async_trait::async_trait;
use relais_channels::email::smtp_listener::{
    self, ArrivedMail, ListenerSettings, MailRefused, MailSink,
};
use std::collections::BTreeSet;
use std::sync::Arc;

/// The running e-mail channels, as the listener's sink.
struct ChannelMailboxes {
    channels: ConfiguredChannels,
}

#[async_trait]
impl MailSink for ChannelMailboxes {
    fn takes(&self, recipient: &str) -> bool {
        !self.channels.mailboxes_for(recipient).is_empty()
    }

    async fn deliver(&self, mail: ArrivedMail) -> Result<(), MailRefused> {
        let channels: BTreeSet<String> = mail
            .recipients
            .iter()
            .flat_map(|recipient| self.channels.mailboxes_for(recipient))
            .collect();
        if channels.is_empty() {
            // Its channel was removed between RCPT and the end of DATA.
            return Err(MailRefused::Unreadable(
                "no channel takes mail for these recipients any more".into(),
            ));
        }
        for channel in channels {
            match self.channels.mail_arrived(&channel, &mail.data).await {
                Ok(()) => {}
                Err(HookError::Refused(e)) => return Err(MailRefused::Unreadable(e.to_string())),
                // Removed meanwhile, or not stored: the sending server tries again.
                Err(HookError::NotStored | HookError::UnknownChannel(_)) => {
                    return Err(MailRefused::NotStored);
                }
            }
        }
        Ok(())
    }
}

/// Takes mail on `listener` for the running e-mail channels of `channels` until
/// `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    channels: ConfiguredChannels,
    settings: ListenerSettings,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    smtp_listener::serve(
        listener,
        settings,
        Arc::new(ChannelMailboxes { channels }),
        shutdown,
    )
    .await
}
