//! The dashboard's figures over a period: volume by channel and time, the delivery funnel
//! per channel, read and response rates, the help desk's first responses and SLA breaches,
//! and the progress of campaigns' sends. Read from the store's counts
//! ([`relais_store::AnalyticsStore`]) and shaped here, so the JSON and the charts agree.

use jiff::{SignedDuration, Timestamp};
use relais_core::status::MessageStatus;
use relais_store::{DeskCounts, Period, PeriodCounts, Store, StoreError};
use serde::Serialize;

/// The periods the dashboard offers, with the width of their buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// 24 buckets of an hour.
    Day,
    /// 28 buckets of 6 hours.
    Week,
    /// 30 buckets of a day.
    Month,
}

impl Span {
    /// `24h`, `7d` or `30d`.
    pub fn parse(raw: &str) -> Option<Span> {
        match raw {
            "24h" => Some(Span::Day),
            "7d" => Some(Span::Week),
            "30d" => Some(Span::Month),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Span::Day => "24h",
            Span::Week => "7d",
            Span::Month => "30d",
        }
    }

    fn buckets(self) -> (i64, SignedDuration) {
        match self {
            Span::Day => (24, SignedDuration::from_hours(1)),
            Span::Week => (28, SignedDuration::from_hours(6)),
            Span::Month => (30, SignedDuration::from_hours(24)),
        }
    }

    /// The period ending with the bucket that holds `now`, its buckets aligned on whole
    /// hours (UTC), six-hour marks or days.
    pub fn period(self, now: Timestamp) -> Period {
        let (count, bucket) = self.buckets();
        let width = bucket.as_secs();
        let start_of_current = now.as_second().div_euclid(width) * width;
        let since = start_of_current - (count - 1) * width;
        let until = start_of_current + width;
        Period {
            since: Timestamp::from_second(since).unwrap_or(now),
            until: Timestamp::from_second(until).unwrap_or(now),
            bucket,
        }
    }
}

/// How far the messages of one channel (or of all) went, by their current status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Funnel {
    pub accepted: i64,
    /// Handed to the provider (sent, delivered, read, or reported undelivered).
    pub sent: i64,
    pub delivered: i64,
    pub read: i64,
    /// Failed, rejected, expired, undelivered or canceled.
    pub failed: i64,
    /// Not sent yet: accepted, held for review, scheduled, queued or sending.
    pub pending: i64,
    /// Of them, those whose tracked links someone followed at least once (whatever their
    /// status: a click says the message arrived even without a read receipt).
    pub clicked: i64,
}

impl Funnel {
    fn add(&mut self, status: MessageStatus, count: i64) {
        self.accepted += count;
        match status {
            MessageStatus::Accepted
            | MessageStatus::Held
            | MessageStatus::Scheduled
            | MessageStatus::Queued
            | MessageStatus::Sending => self.pending += count,
            MessageStatus::Sent => self.sent += count,
            MessageStatus::Delivered => {
                self.sent += count;
                self.delivered += count;
            }
            MessageStatus::Read => {
                self.sent += count;
                self.delivered += count;
                self.read += count;
            }
            MessageStatus::Undelivered => {
                self.sent += count;
                self.failed += count;
            }
            MessageStatus::Failed
            | MessageStatus::Rejected
            | MessageStatus::Expired
            | MessageStatus::Canceled => self.failed += count,
        }
    }

    /// Read among delivered, when something was delivered.
    pub fn read_rate(&self) -> Option<f64> {
        (self.delivered > 0).then(|| self.read as f64 / self.delivered as f64)
    }
}

/// One channel's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelFigures {
    /// The channel kind or configured channel id messages were sent on.
    pub channel: String,
    /// The configured channel's name, or the kind.
    pub name: String,
    /// Messages created per bucket.
    pub volume: Vec<i64>,
    pub funnel: Funnel,
    pub read_rate: Option<f64>,
}

/// One campaign's sends in the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SendProgress {
    pub campaign: String,
    pub funnel: Funnel,
    /// Share of its messages no longer pending.
    pub done: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Totals {
    pub funnel: Funnel,
    pub read_rate: Option<f64>,
    pub contacts_reached: i64,
    pub contacts_replied: i64,
    /// Contacts who wrote in after a message, among those sent one.
    pub response_rate: Option<f64>,
    pub inbound: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Desk {
    pub conversations_opened: i64,
    pub conversations_answered: i64,
    pub mean_first_response_seconds: Option<f64>,
    pub sla_breaches: i64,
}

impl From<DeskCounts> for Desk {
    fn from(d: DeskCounts) -> Desk {
        Desk {
            conversations_opened: d.opened,
            conversations_answered: d.answered,
            mean_first_response_seconds: d.mean_first_response_secs,
            sla_breaches: d.sla_breaches,
        }
    }
}

/// Everything the dashboard shows for a period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dashboard {
    pub period: &'static str,
    pub since: Timestamp,
    pub until: Timestamp,
    pub bucket_seconds: i64,
    /// The start of each bucket.
    pub buckets: Vec<Timestamp>,
    /// The channels that sent in the period, the busiest first.
    pub channels: Vec<ChannelFigures>,
    /// Inbound messages per bucket.
    pub inbound: Vec<i64>,
    pub totals: Totals,
    pub desk: Desk,
    /// Campaigns that sent in the period, those still sending first.
    pub sends: Vec<SendProgress>,
}

fn status_of(raw: &str) -> Option<MessageStatus> {
    MessageStatus::ALL.into_iter().find(|s| s.as_str() == raw)
}

fn rate(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// Shapes the store's counts; `names` gives configured channels' names by id.
pub fn dashboard(
    span: Span,
    period: &Period,
    counts: PeriodCounts,
    names: &std::collections::HashMap<String, String>,
) -> Dashboard {
    let width = period.bucket.as_secs().max(1);
    let slots = ((period.until.as_second() - period.since.as_second()) / width).max(0) as usize;
    let buckets = (0..slots)
        .filter_map(|i| Timestamp::from_second(period.since.as_second() + i as i64 * width).ok())
        .collect();
    let slot = |bucket: i64| usize::try_from(bucket).ok().filter(|b| *b < slots);

    let mut channels: Vec<ChannelFigures> = Vec::new();
    let mut campaigns: Vec<(String, Funnel)> = Vec::new();
    let mut total = Funnel::default();
    for count in &counts.messages {
        let Some(status) = status_of(&count.status) else {
            continue;
        };
        let at = match channels.iter().position(|c| c.channel == count.channel) {
            Some(at) => at,
            None => {
                channels.push(ChannelFigures {
                    channel: count.channel.clone(),
                    name: names
                        .get(&count.channel)
                        .cloned()
                        .unwrap_or_else(|| count.channel.clone()),
                    volume: vec![0; slots],
                    funnel: Funnel::default(),
                    read_rate: None,
                });
                channels.len() - 1
            }
        };
        let figures = &mut channels[at];
        if let Some(i) = slot(count.bucket) {
            figures.volume[i] += count.count;
        }
        figures.funnel.add(status, count.count);
        total.add(status, count.count);
        if let Some(campaign) = &count.campaign {
            match campaigns.iter_mut().find(|(name, _)| name == campaign) {
                Some((_, funnel)) => funnel.add(status, count.count),
                None => {
                    let mut funnel = Funnel::default();
                    funnel.add(status, count.count);
                    campaigns.push((campaign.clone(), funnel));
                }
            }
        }
    }
    for figures in &mut channels {
        figures.read_rate = figures.funnel.read_rate();
    }
    channels.sort_by(|a, b| {
        b.funnel
            .accepted
            .cmp(&a.funnel.accepted)
            .then_with(|| a.name.cmp(&b.name))
    });
    let mut inbound = vec![0; slots];
    for (bucket, count) in &counts.inbound {
        if let Some(i) = slot(*bucket) {
            inbound[i] += count;
        }
    }
    let mut sends: Vec<SendProgress> = campaigns
        .into_iter()
        .map(|(campaign, funnel)| SendProgress {
            campaign,
            done: rate(funnel.accepted - funnel.pending, funnel.accepted).unwrap_or(1.0),
            funnel,
        })
        .collect();
    sends.sort_by(|a, b| {
        a.done
            .total_cmp(&b.done)
            .then_with(|| a.campaign.cmp(&b.campaign))
    });
    Dashboard {
        period: span.as_str(),
        since: period.since,
        until: period.until,
        bucket_seconds: width,
        buckets,
        channels,
        totals: Totals {
            read_rate: total.read_rate(),
            funnel: total,
            contacts_reached: counts.contacts_reached,
            contacts_replied: counts.contacts_replied,
            response_rate: rate(counts.contacts_replied, counts.contacts_reached),
            inbound: inbound.iter().sum(),
        },
        inbound,
        desk: counts.desk.into(),
        sends,
    }
}

/// The tenant's dashboard for `span`, ending now.
pub async fn tenant_dashboard(
    store: &dyn Store,
    tenant: &str,
    span: Span,
    now: Timestamp,
) -> Result<Dashboard, StoreError> {
    let period = span.period(now);
    let counts = store.period_counts(tenant, &period).await?;
    let clicked = store
        .clicked_counts(tenant, period.since, period.until)
        .await?;
    let names = store
        .channels(tenant)
        .await?
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect();
    let mut figures = dashboard(span, &period, counts, &names);
    add_clicks(&mut figures, &clicked);
    Ok(figures)
}

/// Adds the clicked messages to the funnels of their channel, their campaign and the total.
pub fn add_clicks(figures: &mut Dashboard, clicked: &[relais_store::ClickedCount]) {
    for count in clicked {
        if let Some(channel) = figures
            .channels
            .iter_mut()
            .find(|c| c.channel == count.channel)
        {
            channel.funnel.clicked += count.messages;
        }
        if let Some(campaign) = &count.campaign
            && let Some(send) = figures.sends.iter_mut().find(|s| &s.campaign == campaign)
        {
            send.funnel.clicked += count.messages;
        }
        figures.totals.funnel.clicked += count.messages;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relais_store::MessageCount;

    fn count(
        channel: &str,
        campaign: Option<&str>,
        status: &str,
        bucket: i64,
        n: i64,
    ) -> MessageCount {
        MessageCount {
            channel: channel.into(),
            campaign: campaign.map(str::to_owned),
            status: status.into(),
            bucket,
            count: n,
        }
    }

    #[test]
    fn a_day_ends_with_the_hour_that_holds_now() {
        let now: Timestamp = "2026-12-04T21:37:12Z".parse().unwrap();
        let period = Span::Day.period(now);
        assert_eq!(period.since.to_string(), "2026-12-03T22:00:00Z");
        assert_eq!(period.until.to_string(), "2026-12-04T22:00:00Z");
        let week = Span::Week.period(now);
        assert_eq!(week.until.to_string(), "2026-12-05T00:00:00Z");
        assert_eq!(Span::parse("7d"), Some(Span::Week));
        assert_eq!(Span::parse("1y"), None);
    }

    #[test]
    fn statuses_fill_the_funnel_by_how_far_each_message_went() {
        let now: Timestamp = "2026-12-04T21:37:12Z".parse().unwrap();
        let period = Span::Day.period(now);
        let counts = PeriodCounts {
            messages: vec![
                count("sim", None, "read", 23, 2),
                count("sim", None, "delivered", 23, 3),
                count("sim", None, "queued", 22, 1),
                count("ch_1", Some("soldes"), "undelivered", 0, 1),
                count("ch_1", Some("soldes"), "sent", 0, 1),
                count("ch_1", None, "failed", 99, 1),
            ],
            inbound: vec![(23, 4), (50, 1)],
            contacts_reached: 8,
            contacts_replied: 2,
            desk: DeskCounts::default(),
        };
        let names = [("ch_1".to_owned(), "orange".to_owned())].into();
        let d = dashboard(Span::Day, &period, counts, &names);
        assert_eq!(d.buckets.len(), 24);
        let sim = &d.channels[0];
        assert_eq!(sim.name, "sim");
        assert_eq!(
            sim.funnel,
            Funnel {
                accepted: 6,
                sent: 5,
                delivered: 5,
                read: 2,
                failed: 0,
                pending: 1,
                clicked: 0,
            }
        );
        assert_eq!(sim.volume[23], 5);
        assert_eq!(sim.volume[22], 1);
        assert_eq!(sim.read_rate, Some(0.4));
        let orange = &d.channels[1];
        assert_eq!(orange.name, "orange");
        assert_eq!((orange.funnel.sent, orange.funnel.failed), (2, 2));
        assert_eq!(
            orange.volume.iter().sum::<i64>(),
            2,
            "a bucket out of range counts in no bar"
        );
        assert_eq!(d.totals.funnel.accepted, 9);
        assert_eq!(d.totals.response_rate, Some(0.25));
        assert_eq!(d.inbound[23], 4);
        assert_eq!(d.totals.inbound, 4);
        assert_eq!(d.sends.len(), 1);
        assert_eq!(d.sends[0].campaign, "soldes");
        assert_eq!(d.sends[0].done, 1.0);
    }
}
