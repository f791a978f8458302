//! Reading a WhatsApp Business Account's message templates, so that Relais knows which
//! names and languages it may send outside the 24-hour window.
//!
//! `GET {base_url}/{api_version}/{business_account_id}/message_templates?fields=…&limit=100`
//! answers `{"data": [...], "paging": {"cursors": {…}, "next": "…"}}`; pages are followed
//! through `paging.next` until there is none. Two guards: at most [`MAX_PAGES`] pages (a
//! server that always answers a `next` cannot hold us forever), and a `next` outside the
//! configured `base_url` is not followed (our bearer token goes only to the Graph API).

use super::adapter::{read_answer, unanswered};
use super::config::WhatsAppConfig;
use super::errors::classify;
use crate::adapter::SendError;
use serde_json::Value;

/// 100 pages of 100 templates: far above Meta's limit of 250 templates per account
/// (6000 for verified businesses is still 60 pages).
pub const MAX_PAGES: usize = 100;

/// One template as Meta reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovedTemplate {
    pub name: String,
    /// Meta's locale code, e.g. `fr`, `en_US`.
    pub language: String,
    pub status: TemplateStatus,
    pub category: TemplateCategory,
    /// Header, body, footer and buttons, as Meta wrote them.
    pub components: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateStatus {
    Approved,
    Pending,
    Rejected,
    Paused,
    Disabled,
    Other(String),
}

impl TemplateStatus {
    pub fn parse(status: &str) -> TemplateStatus {
        match status {
            "APPROVED" => TemplateStatus::Approved,
            "PENDING" => TemplateStatus::Pending,
            "REJECTED" => TemplateStatus::Rejected,
            "PAUSED" => TemplateStatus::Paused,
            "DISABLED" => TemplateStatus::Disabled,
            other => TemplateStatus::Other(other.to_owned()),
        }
    }

    /// As Meta writes it (`APPROVED`).
    pub fn as_str(&self) -> &str {
        match self {
            TemplateStatus::Approved => "APPROVED",
            TemplateStatus::Pending => "PENDING",
            TemplateStatus::Rejected => "REJECTED",
            TemplateStatus::Paused => "PAUSED",
            TemplateStatus::Disabled => "DISABLED",
            TemplateStatus::Other(other) => other,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateCategory {
    Marketing,
    Utility,
    Authentication,
    Other(String),
}

impl TemplateCategory {
    pub fn parse(category: &str) -> TemplateCategory {
        match category {
            "MARKETING" => TemplateCategory::Marketing,
            "UTILITY" => TemplateCategory::Utility,
            "AUTHENTICATION" => TemplateCategory::Authentication,
            other => TemplateCategory::Other(other.to_owned()),
        }
    }

    /// As Meta writes it (`UTILITY`).
    pub fn as_str(&self) -> &str {
        match self {
            TemplateCategory::Marketing => "MARKETING",
            TemplateCategory::Utility => "UTILITY",
            TemplateCategory::Authentication => "AUTHENTICATION",
            TemplateCategory::Other(other) => other,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateSyncError {
    #[error(
        "`waba_id` (the WhatsApp Business Account id) is not configured; it is needed to read the templates"
    )]
    NoBusinessAccount,
    /// Meta answered an error; its class says whether trying later can help.
    #[error("the Graph API refused to list the templates: {0}")]
    Refused(SendError),
    #[error("cannot reach the Graph API: {0}")]
    Unreachable(SendError),
    #[error("the Graph API's template list is not as documented: {0}")]
    BadAnswer(String),
    #[error("the template list has more than {MAX_PAGES} pages; stopped there")]
    TooManyPages,
    #[error("the next page is at `{0}`, outside the configured base_url; not followed")]
    ForeignPage(String),
}

/// Every template of the configured business account, following the pages.
pub async fn fetch_templates(
    client: &reqwest::Client,
    config: &WhatsAppConfig,
) -> Result<Vec<ApprovedTemplate>, TemplateSyncError> {
    let account = config
        .business_account_id()
        .ok_or(TemplateSyncError::NoBusinessAccount)?;
    let mut url = format!(
        "{}/{}/{account}/message_templates?fields=name,language,status,category,components&limit=100",
        config.base_url(),
        config.api_version()
    );
    let mut templates = Vec::new();
    for _ in 0..MAX_PAGES {
        let response = client
            .get(&url)
            .bearer_auth(config.access_token())
            .send()
            .await
            .map_err(|e| TemplateSyncError::Unreachable(unanswered(e)))?;
        let status = response.status().as_u16();
        let answer = read_answer(response)
            .await
            .map_err(|e| TemplateSyncError::Unreachable(unanswered(e)))?;
        if !(200..300).contains(&status) {
            return Err(TemplateSyncError::Refused(classify(status, &answer)));
        }
        let page: Value = serde_json::from_slice(&answer)
            .map_err(|e| TemplateSyncError::BadAnswer(format!("not JSON: {e}")))?;
        let data = page
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| TemplateSyncError::BadAnswer("no `data` array".into()))?;
        for (index, item) in data.iter().enumerate() {
            templates.push(template(item).map_err(|field| {
                TemplateSyncError::BadAnswer(format!("`data/{index}/{field}` is not a string"))
            })?);
        }
        match page.pointer("/paging/next").and_then(Value::as_str) {
            None => return Ok(templates),
            Some(next) if same_origin(config.base_url(), next) => url = next.to_owned(),
            Some(next) => return Err(TemplateSyncError::ForeignPage(next.to_owned())),
        }
    }
    Err(TemplateSyncError::TooManyPages)
}

/// One template, or the name of the field that is missing.
fn template(item: &Value) -> Result<ApprovedTemplate, &'static str> {
    let text = |field: &'static str| item.get(field).and_then(Value::as_str).ok_or(field);
    Ok(ApprovedTemplate {
        name: text("name")?.to_owned(),
        language: text("language")?.to_owned(),
        status: TemplateStatus::parse(text("status")?),
        category: TemplateCategory::parse(text("category")?),
        components: item
            .get("components")
            .cloned()
            .unwrap_or(Value::Array(Vec::new())),
    })
}

/// Whether `url` is under `base` (scheme, host and port the same).
fn same_origin(base: &str, url: &str) -> bool {
    url.strip_prefix(base)
        .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn statuses_and_categories_keep_unknown_values() {
        assert_eq!(TemplateStatus::parse("APPROVED"), TemplateStatus::Approved);
        assert_eq!(
            TemplateStatus::parse("IN_APPEAL"),
            TemplateStatus::Other("IN_APPEAL".into())
        );
        assert_eq!(
            TemplateCategory::parse("UTILITY"),
            TemplateCategory::Utility
        );
        assert_eq!(
            TemplateCategory::parse("TRANSACTIONAL"),
            TemplateCategory::Other("TRANSACTIONAL".into())
        );
    }

    #[test]
    fn a_template_needs_its_name_language_status_and_category() {
        let item = json!({"name": "order_shipped", "language": "fr", "status": "APPROVED",
            "category": "UTILITY", "components": [{"type": "BODY", "text": "Bonjour {{1}}"}], "id": "1"});
        let read = template(&item).unwrap();
        assert_eq!(
            (read.name.as_str(), read.language.as_str()),
            ("order_shipped", "fr")
        );
        assert_eq!(read.components[0]["type"], "BODY");
        assert_eq!(
            template(&json!({"name": "x", "language": "fr", "status": "APPROVED"})),
            Err("category")
        );
    }

    #[test]
    fn only_pages_under_the_base_url_are_followed() {
        let base = "https://graph.facebook.com";
        assert!(same_origin(
            base,
            "https://graph.facebook.com/v23.0/1/message_templates?after=QVFI"
        ));
        assert!(!same_origin(
            base,
            "https://graph.facebook.com.evil.example/v23.0/1"
        ));
        assert!(!same_origin(
            base,
            "https://evil.example/https://graph.facebook.com/"
        ));
    }

    #[tokio::test]
    async fn without_a_business_account_nothing_is_asked() {
        let config = WhatsAppConfig::parse(&json!({"phone_number_id": "1", "access_token": "t",
            "app_secret": "s", "verify_token": "v"}))
        .unwrap();
        let client = crate::whatsapp::adapter::http_client().unwrap();
        assert_eq!(
            fetch_templates(&client, &config).await,
            Err(TemplateSyncError::NoBusinessAccount)
        );
    }
}
