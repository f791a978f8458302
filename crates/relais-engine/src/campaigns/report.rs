//! What a campaign shows of itself: its recipients' progress (done, to do, skipped by
//! reason) and the funnel of its messages per variant and channel, as JSON and as CSV.

use relais_core::status::MessageStatus;
use relais_store::{CampaignRecord, FunnelCount, RecipientCount};
use serde::Serialize;
use std::collections::BTreeMap;

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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FunnelRow {
    pub variant: Option<String>,
    pub channel: String,
    pub accepted: i64,
    pub sent: i64,
    pub delivered: i64,
    pub read: i64,
    /// The contact wrote in after the message.
    pub replied: i64,
    pub failed: i64,
    pub rejected: i64,
    /// Still waiting for their time (send window, best hour, quiet hours).
    pub scheduled: i64,
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
    ) -> CampaignReport {
        let mut rows: BTreeMap<(Option<String>, String), FunnelRow> = BTreeMap::new();
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
            match count.status.parse::<MessageStatus>() {
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
                        MessageStatus::Failed
                        | MessageStatus::Undelivered
                        | MessageStatus::Expired => row.failed += n,
                        MessageStatus::Scheduled => row.scheduled += n,
                        _ => {}
                    }
                }
                Err(_) => {}
            }
        }
        CampaignReport {
            id: record.id.clone(),
            name: record.name.clone(),
            state: record.state,
            winner: record.winner.clone(),
            progress: Progress::from_counts(counts),
            funnel: rows.into_values().collect(),
        }
    }

    /// The funnel as CSV, one line per variant and channel, then one per skip reason.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "variant,channel,accepted,sent,delivered,read,replied,failed,rejected,scheduled\n",
        );
        for row in &self.funnel {
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{}\n",
                csv_field(row.variant.as_deref().unwrap_or("")),
                csv_field(&row.channel),
                row.accepted,
                row.sent,
                row.delivered,
                row.read,
                row.replied,
                row.failed,
                row.rejected,
                row.scheduled
            ));
        }
        out.push_str("\nskip_reason,recipients\n");
        for (reason, count) in &self.progress.skipped_by_reason {
            out.push_str(&format!("{},{count}\n", csv_field(reason)));
        }
        out
    }
}

/// A CSV field, quoted when it holds a separator or a quote, and defused when a
/// spreadsheet would read it as a formula.
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
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

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_field("sms"), "sms");
    }
}
