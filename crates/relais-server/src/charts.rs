//! The dashboard's charts, drawn here as SVG from [`Dashboard`] and campaign reports: no front-end code draws
//! them and nothing is fetched from elsewhere. Every text that comes from a tenant (a
//! channel's name) is escaped.

use relais_engine::analytics::{Dashboard, Funnel};
use relais_engine::campaigns::report::CampaignReport;
use std::fmt::Write;

/// The words a chart shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Fr,
}

impl Lang {
    pub fn parse(raw: Option<&str>) -> Lang {
        match raw {
            Some(l) if l.starts_with("fr") => Lang::Fr,
            _ => Lang::En,
        }
    }

    fn word(self, en: &'static str) -> &'static str {
        if self == Lang::En {
            return en;
        }
        match en {
            "accepted" => "acceptés",
            "sent" => "envoyés",
            "delivered" => "remis",
            "read" => "lus",
            "failed" => "en échec",
            "clicked" => "cliqués",
            "replied" => "réponses",
            "converted" => "convertis",
            "Campaign funnel" => "Entonnoir de la campagne",
            "The campaign has stored no message yet." => {
                "La campagne n'a encore enregistré aucun message."
            }
            "inbound" => "reçus",
            "all channels" => "tous les canaux",
            "Messages per period" => "Messages par période",
            "Delivery funnel" => "Entonnoir de remise",
            "Nothing was sent in this period." => "Rien n'a été envoyé sur cette période.",
            other => other,
        }
    }
}

const PALETTE: [&str; 8] = [
    "#2257d6", "#1d9a6c", "#d68a22", "#8e44ad", "#c0392b", "#16a2b8", "#7f8c8d", "#b8860b",
];
const INBOUND_COLOR: &str = "#1d2330";
const FAILED_COLOR: &str = "#b3261e";
const GRID: &str = "#d9dee8";
const INK: &str = "#1d2330";
const MUTED: &str = "#5d6678";
const FONT: &str = "font-family=\"system-ui, sans-serif\"";

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// A round number at or above `max` for the top of an axis, and its step for 4 lines.
fn axis_top(max: i64) -> (i64, i64) {
    let max = max.max(4);
    let rough = (max + 3) / 4;
    let magnitude = 10_i64.pow(rough.max(1).ilog10());
    let step = [1, 2, 5, 10]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= rough)
        .unwrap_or(rough);
    (step * 4, step)
}

fn bucket_label(d: &Dashboard, at: jiff::Timestamp) -> String {
    let civil = at.to_zoned(jiff::tz::TimeZone::UTC);
    if d.period == "24h" {
        format!("{:02}:00", civil.hour())
    } else {
        format!("{:02}/{:02}", civil.day(), civil.month())
    }
}

/// Stacked bars of messages sent per bucket and channel, with inbound messages as a line.
pub fn volume(d: &Dashboard, lang: Lang) -> String {
    let (width, height) = (760.0_f64, 280.0_f64);
    let (left, right, top, bottom) = (48.0, 12.0, 40.0, 30.0);
    let plot_w = width - left - right;
    let plot_h = height - top - bottom;
    let slots = d.buckets.len().max(1);
    let stacked: Vec<i64> = (0..slots)
        .map(|i| {
            d.channels
                .iter()
                .map(|c| c.volume.get(i).copied().unwrap_or(0))
                .sum()
        })
        .collect();
    let highest = stacked
        .iter()
        .chain(d.inbound.iter())
        .copied()
        .max()
        .unwrap_or(0);
    let (axis_max, step) = axis_top(highest);
    let y = |v: i64| top + plot_h - (v as f64 / axis_max as f64) * plot_h;
    let slot_w = plot_w / slots as f64;
    let mut svg = String::new();
    let title = lang.word("Messages per period");
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"{title}\" {FONT} font-size=\"11\"><title>{title}</title>"
    );
    for line in 0..=4 {
        let v = step * line;
        let _ = write!(
            svg,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"{GRID}\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"{MUTED}\">{v}</text>",
            width - right,
            left - 6.0,
            y(v) + 4.0,
            y = y(v)
        );
    }
    for (i, at) in d.buckets.iter().enumerate() {
        let x = left + i as f64 * slot_w;
        let mut base = 0;
        for (c, channel) in d.channels.iter().enumerate() {
            let v = channel.volume.get(i).copied().unwrap_or(0);
            if v == 0 {
                continue;
            }
            let _ = write!(
                svg,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{}: {v}</title></rect>",
                x + slot_w * 0.15,
                y(base + v),
                slot_w * 0.7,
                y(base) - y(base + v),
                PALETTE[c % PALETTE.len()],
                escape(&channel.name)
            );
            base += v;
        }
        let every = slots.div_ceil(8).max(1);
        if i % every == 0 {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" fill=\"{MUTED}\">{}</text>",
                x + slot_w / 2.0,
                height - 10.0,
                bucket_label(d, *at)
            );
        }
    }
    if d.inbound.iter().any(|v| *v > 0) {
        let points: Vec<String> = d
            .inbound
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", left + (i as f64 + 0.5) * slot_w, y(*v)))
            .collect();
        let _ = write!(
            svg,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{INBOUND_COLOR}\" stroke-width=\"2\" stroke-dasharray=\"4 3\"/>",
            points.join(" ")
        );
    }
    // The legend: each channel's colour, then the inbound line.
    let mut x = left;
    for (c, channel) in d.channels.iter().enumerate().take(PALETTE.len()) {
        let name = escape(&channel.name);
        let _ = write!(
            svg,
            "<rect x=\"{x:.1}\" y=\"12\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{:.1}\" y=\"22\" fill=\"{INK}\">{name}</text>",
            PALETTE[c % PALETTE.len()],
            x + 16.0
        );
        x += 16.0 + 7.0 * channel.name.chars().count().min(24) as f64 + 18.0;
    }
    let _ = write!(
        svg,
        "<line x1=\"{x:.1}\" x2=\"{:.1}\" y1=\"18\" y2=\"18\" stroke=\"{INBOUND_COLOR}\" stroke-width=\"2\" stroke-dasharray=\"4 3\"/><text x=\"{:.1}\" y=\"22\" fill=\"{INK}\">{}</text>",
        x + 14.0,
        x + 18.0,
        lang.word("inbound")
    );
    svg.push_str("</svg>");
    svg
}

fn funnel_rows(funnel: &Funnel) -> [(&'static str, i64); 5] {
    [
        ("accepted", funnel.accepted),
        ("sent", funnel.sent),
        ("delivered", funnel.delivered),
        ("read", funnel.read),
        ("failed", funnel.failed),
    ]
}

/// Per channel and for all of them: how many messages were accepted, sent, delivered,
/// read, and failed, as bars relative to the accepted ones.
pub fn funnel(d: &Dashboard, lang: Lang) -> String {
    let mut groups: Vec<(String, Vec<(&'static str, i64)>)> = Vec::new();
    if d.channels.len() != 1 {
        groups.push((
            lang.word("all channels").to_owned(),
            funnel_rows(&d.totals.funnel).to_vec(),
        ));
    }
    for channel in d.channels.iter().take(6) {
        groups.push((channel.name.clone(), funnel_rows(&channel.funnel).to_vec()));
    }
    if d.totals.funnel.accepted == 0 {
        groups.clear();
    }
    stages_chart(
        lang.word("Delivery funnel"),
        lang.word("Nothing was sent in this period."),
        &groups,
        lang,
    )
}

/// A campaign's funnel per variant (all channels together): accepted, sent, delivered,
/// read, clicked, replied, converted and failed, as bars relative to the accepted ones.
pub fn campaign_funnel(report: &CampaignReport, lang: Lang) -> String {
    let mut groups: Vec<(String, Vec<(&'static str, i64)>)> = Vec::new();
    for row in &report.funnel {
        let name = row.variant.clone().unwrap_or_else(|| report.name.clone());
        let stages = [
            ("accepted", row.accepted),
            ("sent", row.sent),
            ("delivered", row.delivered),
            ("read", row.read),
            ("clicked", row.clicked),
            ("replied", row.replied),
            ("converted", row.converted),
            ("failed", row.failed),
        ];
        match groups.iter_mut().find(|(n, _)| *n == name) {
            Some((_, sums)) => {
                for (sum, (_, n)) in sums.iter_mut().zip(stages) {
                    sum.1 += n;
                }
            }
            None => groups.push((name, stages.to_vec())),
        }
    }
    groups.retain(|(_, stages)| stages[0].1 > 0);
    stages_chart(
        lang.word("Campaign funnel"),
        lang.word("The campaign has stored no message yet."),
        &groups,
        lang,
    )
}

/// Groups of stages as bars relative to each group's first stage; `empty` when there is
/// no group.
fn stages_chart(
    title: &str,
    empty: &str,
    groups: &[(String, Vec<(&'static str, i64)>)],
    lang: Lang,
) -> String {
    let width = 760.0_f64;
    let (label_w, bar_left, row_h, group_gap) = (90.0, 110.0, 18.0, 16.0);
    let bar_w = width - bar_left - 120.0;
    let rows: usize = groups.iter().map(|(_, stages)| stages.len()).sum();
    let height = 20.0 + groups.len() as f64 * (24.0 + group_gap) + rows as f64 * row_h;
    let height = height.max(60.0);
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"{title}\" {FONT} font-size=\"12\"><title>{title}</title>"
    );
    if groups.is_empty() {
        let _ = write!(
            svg,
            "<text x=\"10\" y=\"30\" fill=\"{MUTED}\">{empty}</text></svg>"
        );
        return svg;
    }
    let mut y = 20.0;
    for (name, stages) in groups {
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{:.1}\" font-weight=\"600\" fill=\"{INK}\" data-group=\"{}\">{}</text>",
            y + 12.0,
            escape(name),
            escape(name)
        );
        y += 24.0;
        let base = stages.first().map_or(0, |(_, n)| *n);
        for (stage, count) in stages {
            let share = if base > 0 {
                *count as f64 / base as f64
            } else {
                0.0
            };
            let color = if *stage == "failed" {
                FAILED_COLOR
            } else {
                PALETTE[0]
            };
            let _ = write!(
                svg,
                "<text x=\"{label_w}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"{MUTED}\">{}</text>\
                 <rect x=\"{bar_left}\" y=\"{y:.1}\" width=\"{bar_w:.1}\" height=\"{:.1}\" fill=\"{GRID}\" opacity=\"0.5\"/>\
                 <rect x=\"{bar_left}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{color}\" data-stage=\"{stage}\" data-count=\"{count}\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" fill=\"{INK}\">{count} ({:.0} %)</text>",
                y + 12.0,
                lang.word(stage),
                row_h - 4.0,
                bar_w * share,
                row_h - 4.0,
                bar_left + bar_w + 8.0,
                y + 12.0,
                share * 100.0
            );
            y += row_h;
        }
        y += group_gap;
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_axis_ends_on_a_round_number_above_the_highest_bar() {
        assert_eq!(axis_top(0), (4, 1));
        assert_eq!(axis_top(37), (40, 10));
        assert_eq!(axis_top(1234), (2000, 500));
        assert_eq!(axis_top(10_001), (20_000, 5000));
    }

    #[test]
    fn a_campaign_funnel_adds_up_each_variants_channels_and_escapes_its_name() {
        use relais_engine::campaigns::report::{CampaignReport, FunnelRow, Progress};
        let row = |variant: &str, channel: &str, accepted: i64, delivered: i64| FunnelRow {
            variant: Some(variant.into()),
            channel: channel.into(),
            accepted,
            sent: accepted,
            delivered,
            clicked: 1,
            ..Default::default()
        };
        let report = CampaignReport {
            id: "c".into(),
            name: "soldes".into(),
            state: relais_core::campaign::CampaignState::Running,
            winner: None,
            progress: Progress::default(),
            funnel: vec![
                row("A", "sms", 10, 8),
                row("A", "whatsapp", 5, 5),
                row("<b>", "sms", 4, 1),
            ],
        };
        let svg = campaign_funnel(&report, Lang::Fr);
        assert!(svg.contains("data-group=\"A\""), "{svg}");
        assert!(
            svg.contains("data-stage=\"delivered\" data-count=\"13\""),
            "{svg}"
        );
        assert!(
            svg.contains("data-stage=\"clicked\" data-count=\"2\""),
            "{svg}"
        );
        assert!(svg.contains("&lt;b&gt;") && !svg.contains("<b>"), "{svg}");
        assert!(svg.contains("cliqués"), "{svg}");
        let empty = CampaignReport {
            funnel: Vec::new(),
            ..report
        };
        assert!(campaign_funnel(&empty, Lang::En).contains("no message yet"));
    }

    #[test]
    fn text_from_a_tenant_cannot_become_markup() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"co\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;co&quot;"
        );
    }
}
