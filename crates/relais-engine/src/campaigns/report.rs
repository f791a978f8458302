//! What a campaign shows of itself: its recipients' progress (done, to do, skipped by
//! reason) and the funnel of its messages per variant and channel, as JSON and as CSV.

use super::spec::Campaign;
use relais_core::channel::ChannelKind;
use relais_core::csv::field as csv_field;
use relais_core::prices::PriceTable;
use relais_core::status::MessageStatus;
use relais_store::{CampaignRecord, FunnelCount, FunnelQuery, RecipientCount};
use serde::Serialize;
use std::collections::BTreeMap;

/// What the funnel of `campaign` counts: its conversion event, and the start of each
/// address that `prices` (when given) needs to price it by country.
pub fn funnel_query(campaign: &Campaign, prices: Option<&PriceTable>) -> FunnelQuery {
    FunnelQuery {
        conversion: campaign.conversion.as_ref().map(|c| {
            let micros = i64::try_from(c.window.as_micros()).unwrap_or(i64::MAX);
            (vec![c.event.clone()], micros)
        }),
        address_prefix_chars: prices.map_or(0, address_prefix_chars),
    }
}

/// Recipients by what became of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Progress {
    pub recipients: i64,
    pub pending: i64,
    /// The rest of an A/B test, waiting for the winner.
    pub waiting: i64,
    pub enqueued: i64,
    pub skipped: i64,
    pub canceled: i64,
    /// Skips by reason (`opted_out`, `no_opt_in`, `frequency_cap`, `no_address`,
    /// `after_end`, `rejected`…).
    pub skipped_by_reason: BTreeMap<String, i64>,
}

impl Progress {
    pub fn from_counts(counts: &[RecipientCount]) -> Progress {
        let mut progress = Progress::default();
        for count in counts {
            progress.recipients += count.count;
            match count.state.as_str() {
                "pending" => progress.pending += count.count,
                "waiting" => progress.waiting += count.count,
                "enqueued" => progress.enqueued += count.count,
                "canceled" => progress.canceled += count.count,
                "skipped" => {
                    progress.skipped += count.count;
                    *progress
                        .skipped_by_reason
                        .entry(count.reason.clone().unwrap_or_else(|| "unknown".into()))
                        .or_default() += count.count;
                }
                _ => {}
            }
        }
        progress
    }
}

/// One row of the funnel: the messages of a variant on a channel, by how far they got.
/// Each figure counts the messages that reached that stage or a later one.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FunnelRow {
    /// The campaign's variant (absent for a campaign without variants, and in a journey's
    /// report, which groups rows by step).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    pub channel: String,
    pub accepted: i64,
    pub sent: i64,
    pub delivered: i64,
    pub read: i64,
    /// The contact wrote in after the message.
    pub replied: i64,
    /// A tracked link of the message was clicked.
    pub clicked: i64,
    /// A conversion event was credited to the message (the last one the contact was sent
    /// before it, within the campaign's window).
    pub converted: i64,
    /// The sum of the credited conversions' values.
    pub conversion_value: f64,
    /// What the messages that reached the provider cost, by currency, by the tenant's
    /// price table (empty without one).
    pub cost: BTreeMap<String, f64>,
    /// Messages that reached the provider with no row of the price table for them.
    pub unpriced: i64,
    pub failed: i64,
    pub rejected: i64,
    /// Still waiting for their time (send window, best hour, quiet hours).
    pub scheduled: i64,
}

/// The funnel rows of `funnel`, one per group (variant or step) and channel, priced by
/// `prices`.
pub fn funnel_rows(funnel: &[FunnelCount], prices: &PriceTable) -> Vec<FunnelRow> {
    let mut rows: BTreeMap<(Option<String>, String), FunnelRow> = BTreeMap::new();
    let mut costs: BTreeMap<(Option<String>, String), BTreeMap<String, i64>> = BTreeMap::new();
    for count in funnel {
        let row = rows
            .entry((count.variant.clone(), count.channel.clone()))
            .or_insert_with(|| FunnelRow {
                variant: count.variant.clone(),
                channel: count.channel.clone(),
                ..Default::default()
            });
        let n = count.count;
        row.replied += count.replied;
        row.clicked += count.clicked;
        row.converted += count.converted;
        row.conversion_value += count.conversion_value;
        let status = count.status.parse::<MessageStatus>();
        if !prices.rows().is_empty()
            && matches!(
                status,
                Ok(MessageStatus::Sent
                    | MessageStatus::Delivered
                    | MessageStatus::Read
                    | MessageStatus::Undelivered)
            )
        {
            let priced = count.channel.parse::<ChannelKind>().ok().and_then(|kind| {
                let segments = u32::try_from(count.segments).unwrap_or(1);
                let address = count.address_prefix.as_deref().unwrap_or("");
                prices.cost_of(kind, address, segments)
            });
            match priced {
                Some(cost) => {
                    *costs
                        .entry((count.variant.clone(), count.channel.clone()))
                        .or_default()
                        .entry(cost.currency)
                        .or_default() += cost.micros.saturating_mul(n);
                }
                None => row.unpriced += n,
            }
        }
        match status {
            Ok(MessageStatus::Rejected) => row.rejected += n,
            Ok(MessageStatus::Canceled) => {}
            Ok(status) => {
                row.accepted += n;
                match status {
                    MessageStatus::Read => {
                        row.read += n;
                        row.delivered += n;
                        row.sent += n;
                    }
                    MessageStatus::Delivered => {
                        row.delivered += n;
                        row.sent += n;
                    }
                    MessageStatus::Sent => row.sent += n,
                    MessageStatus::Failed | MessageStatus::Undelivered | MessageStatus::Expired => {
                        row.failed += n
                    }
                    MessageStatus::Scheduled => row.scheduled += n,
                    _ => {}
                }
            }
            Err(_) => {}
        }
    }
    rows.into_iter()
        .map(|(key, mut row)| {
            if let Some(by_currency) = costs.remove(&key) {
                row.cost = by_currency
                    .into_iter()
                    .map(|(currency, micros)| (currency, units(micros)))
                    .collect();
            }
            row
        })
        .collect()
}

/// How much of each address the funnel keeps for `prices` to price it by country: `+`
/// and the digits of the table's longest country prefix (nothing without one).
pub fn address_prefix_chars(prices: &PriceTable) -> usize {
    match prices.longest_prefix() {
        0 => 0,
        digits => digits + 1,
    }
}

/// A campaign's report.
#[derive(Debug, Clone, Serialize)]
pub struct CampaignReport {
    pub id: String,
    pub name: String,
    pub state: relais_core::campaign::CampaignState,
    pub winner: Option<String>,
    pub progress: Progress,
    pub funnel: Vec<FunnelRow>,
}

impl CampaignReport {
    pub fn new(
        record: &CampaignRecord,
        counts: &[RecipientCount],
        funnel: &[FunnelCount],
        prices: &PriceTable,
    ) -> CampaignReport {
        let funnel = funnel_rows(funnel, prices);
        CampaignReport {
            id: record.id.clone(),
            name: record.name.clone(),
            state: record.state,
            winner: record.winner.clone(),
            progress: Progress::from_counts(counts),
            funnel,
        }
    }

    /// The funnel as CSV, one line per variant and channel, then one per skip reason.
    pub fn to_csv(&self) -> String {
        let mut out = funnel_csv("variant", &self.funnel);
        out.push_str("\nskip_reason,recipients\n");
        for (reason, count) in &self.progress.skipped_by_reason {
            out.push_str(&format!("{},{count}\n", csv_field(reason)));
        }
        out
    }
}

/// Funnel rows as CSV, `first` naming the group column (`variant`, `step`).
pub fn funnel_csv(first: &str, rows: &[FunnelRow]) -> String {
    let mut out = format!(
        "{first},channel,accepted,sent,delivered,read,clicked,replied,converted,conversion_value,failed,rejected,scheduled,cost,unpriced\n",
    );
    for row in rows {
        let cost: Vec<String> = row
            .cost
            .iter()
            .map(|(currency, amount)| format!("{amount} {currency}"))
            .collect();
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            csv_field(row.variant.as_deref().unwrap_or("")),
            csv_field(&row.channel),
            row.accepted,
            row.sent,
            row.delivered,
            row.read,
            row.clicked,
            row.replied,
            row.converted,
            row.conversion_value,
            row.failed,
            row.rejected,
            row.scheduled,
            csv_field(&cost.join(" ")),
            row.unpriced
        ));
    }
    out
}

/// Millionths of a currency unit as an amount.
fn units(micros: i64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let amount = micros as f64 / 1_000_000.0;
    amount
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(state: &str, reason: Option<&str>, n: i64) -> RecipientCount {
        RecipientCount {
            state: state.into(),
            reason: reason.map(str::to_owned),
            variant: None,
            count: n,
        }
    }

    #[test]
    fn progress_adds_up_and_keeps_each_skip_reason() {
        let p = Progress::from_counts(&[
            count("enqueued", None, 7),
            count("skipped", Some("opted_out"), 2),
            count("skipped", Some("frequency_cap"), 1),
            count("pending", None, 5),
        ]);
        assert_eq!(p.recipients, 15);
        assert_eq!(p.enqueued, 7);
        assert_eq!(p.skipped, 3);
        assert_eq!(p.skipped_by_reason["frequency_cap"], 1);
    }

    fn funnel(status: &str, prefix: &str, segments: i64, n: i64) -> FunnelCount {
        FunnelCount {
            variant: None,
            channel: "sms".into(),
            status: status.into(),
            address_prefix: Some(prefix.into()),
            segments,
            count: n,
            replied: 0,
            clicked: n / 2,
            converted: n / 5,
            conversion_value: 40.0 * (n / 5) as f64,
        }
    }

    #[test]
    fn the_funnel_prices_what_reached_the_provider_and_sums_conversions() {
        let prices: PriceTable = serde_json::from_value(serde_json::json!([
            {"channel": "sms", "country_prefix": "+33", "price": 0.05, "per": "segment", "currency": "EUR"}
        ]))
        .unwrap();
        let record = CampaignRecord {
            id: "c".into(),
            tenant_id: "t".into(),
            name: "soldes".into(),
            definition: serde_json::json!({}),
            state: relais_core::campaign::CampaignState::Running,
            phase: relais_core::campaign::CampaignPhase::Send,
            plan: None,
            winner: None,
            test_ends_at: None,
            started_at: None,
            finished_at: None,
            created_at: jiff::Timestamp::UNIX_EPOCH,
            updated_at: jiff::Timestamp::UNIX_EPOCH,
        };
        let report = CampaignReport::new(
            &record,
            &[],
            &[
                funnel("delivered", "+33", 2, 10),
                funnel("sent", "+44", 1, 5),
                funnel("failed", "+33", 1, 2),
            ],
            &prices,
        );
        let row = &report.funnel[0];
        assert_eq!(
            (row.accepted, row.sent, row.delivered, row.failed),
            (17, 15, 10, 2)
        );
        assert_eq!((row.clicked, row.converted), (5 + 2 + 1, 2 + 1));
        assert_eq!(row.conversion_value, 120.0);
        // 10 messages of 2 segments at 0.05; the 5 to +44 have no price; failed ones cost nothing.
        assert_eq!(row.cost["EUR"], 1.0);
        assert_eq!(row.unpriced, 5);
        assert!(
            report.to_csv().contains(",1 EUR,5\n"),
            "{}",
            report.to_csv()
        );
    }
}
