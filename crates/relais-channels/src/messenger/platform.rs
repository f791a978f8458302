//! Which of Meta's two inboxes a channel serves: a Facebook Page on Messenger, or an
//! Instagram professional account. Both speak the same Send API and webhook format; what
//! differs is data, read here and nowhere else.

use relais_core::channel::ChannelKind;
use relais_core::content::ChannelCapabilities;

/// Messenger or Instagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Platform {
    Messenger,
    Instagram,
}

impl Platform {
    /// The configured kind's name (`messenger`, `instagram`), as `POST /v1/channels` takes it.
    pub fn as_str(self) -> &'static str {
        self.kind().as_str()
    }

    /// The kind of messages the channel carries.
    pub fn kind(self) -> ChannelKind {
        match self {
            Platform::Messenger => ChannelKind::Messenger,
            Platform::Instagram => ChannelKind::Instagram,
        }
    }

    /// The platform of a channel kind; `None` for kinds this module does not serve.
    pub fn of_kind(kind: ChannelKind) -> Option<Platform> {
        match kind {
            ChannelKind::Messenger => Some(Platform::Messenger),
            ChannelKind::Instagram => Some(Platform::Instagram),
            _ => None,
        }
    }

    /// The `object` of every webhook delivery about this platform's inbox.
    pub fn webhook_object(self) -> &'static str {
        match self {
            Platform::Messenger => "page",
            Platform::Instagram => "instagram",
        }
    }

    /// What the platform can show; [`super::send`] guards with the same figures the engine
    /// degrades with, so the two never disagree.
    pub fn capabilities(self) -> &'static ChannelCapabilities {
        ChannelCapabilities::for_kind(self.kind())
    }

    /// How the platform is named in errors an operator reads.
    pub fn label(self) -> &'static str {
        match self {
            Platform::Messenger => "Messenger",
            Platform::Instagram => "Instagram",
        }
    }

    /// What the configured `page_id` names: the Page, or the Instagram professional
    /// account (whose id is also the `entry[].id` of Instagram webhooks).
    pub fn account_label(self) -> &'static str {
        match self {
            Platform::Messenger => "Page",
            Platform::Instagram => "Instagram account",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_platform_has_its_kind_and_webhook_object() {
        assert_eq!(Platform::Messenger.kind(), ChannelKind::Messenger);
        assert_eq!(Platform::Instagram.kind(), ChannelKind::Instagram);
        assert_eq!(Platform::Messenger.webhook_object(), "page");
        assert_eq!(Platform::Instagram.webhook_object(), "instagram");
        assert_eq!(Platform::Instagram.as_str(), "instagram");
        assert_eq!(
            Platform::of_kind(ChannelKind::Messenger),
            Some(Platform::Messenger)
        );
        assert_eq!(Platform::of_kind(ChannelKind::Whatsapp), None);
    }

    #[test]
    fn the_limits_that_differ_come_from_the_capabilities() {
        let messenger = Platform::Messenger.capabilities();
        let instagram = Platform::Instagram.capabilities();
        assert!(messenger.buttons.call && !instagram.buttons.call);
        assert!(messenger.media.document && !instagram.media.document);
    }
}
