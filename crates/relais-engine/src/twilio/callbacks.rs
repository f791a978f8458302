//! Status callbacks: when a message sent with a `StatusCallback` changes status, its URL
//! is posted the form Twilio posts (`MessageSid`, `MessageStatus`, `To`, `From`,
//! `AccountSid`, `ErrorCode`…), signed with `X-Twilio-Signature` under the tenant's auth
//! token.
//!
//! The store is the queue: a callback is due while its message's status is not the one
//! last called back, so a crash loses nothing and several nodes share the work through
//! leases. A status that changed twice between two rounds is called back once, with the
//! latest. A failed post is retried with backoff ([`backoff`]), [`MAX_ATTEMPTS`] times at
//! most; then that status is given up and the next change is called back as usual.

use super::accounts::{Credentials, open};
use super::signature::{form_body, sign};
use crate::webhooks::WebhookPoster;
use jiff::{SignedDuration, Timestamp};
use relais_core::clock::Clock;
use relais_core::twilio::{finished, message_sid, status_of};
use relais_store::{DueTwilioCallback, Store, StoreError, TwilioCallbackOutcome};
use std::collections::HashMap;
use std::sync::Arc;

/// Callbacks claimed per round.
const BATCH: u32 = 100;

/// How long a claimed callback is held: more than the 10-second timeout of a post.
const LEASE_FOR: SignedDuration = SignedDuration::from_secs(60);

/// Posts of one status at most, over about an hour and a half with [`backoff`].
pub const MAX_ATTEMPTS: i64 = 10;

/// The wait after the `attempts`-th failure: 5 s doubling up to 20 minutes.
pub fn backoff(attempts: i64) -> SignedDuration {
    let exp = attempts.clamp(1, 9) as u32 - 1;
    SignedDuration::from_secs((5_i64 << exp).min(20 * 60))
}

/// What one [`CallbackWorker::run_once`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallbackRound {
    /// Callbacks the receiver took (2xx).
    pub called: usize,
    /// Posts that failed (retried later, or given up).
    pub failed: usize,
}

impl CallbackRound {
    pub fn did_work(&self) -> bool {
        self.called + self.failed > 0
    }
}

/// Calls due status callbacks back.
pub struct CallbackWorker {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    poster: Arc<dyn WebhookPoster>,
    lease_owner: String,
}

/// The form Twilio posts to a `StatusCallback` for this status.
pub fn callback_params(due: &DueTwilioCallback, account_sid: &str) -> Vec<(String, String)> {
    let sid = message_sid(&due.message_id).unwrap_or_else(|| due.message_id.clone());
    let (status, error) = status_of(due.status);
    let mut params = vec![
        ("AccountSid".to_owned(), account_sid.to_owned()),
        ("ApiVersion".to_owned(), super::API_VERSION.to_owned()),
        ("From".to_owned(), due.sender.clone().unwrap_or_default()),
        ("MessageSid".to_owned(), sid.clone()),
        ("MessageStatus".to_owned(), status.to_owned()),
        ("SmsSid".to_owned(), sid),
        ("SmsStatus".to_owned(), status.to_owned()),
        ("To".to_owned(), due.to_address.clone()),
    ];
    if let Some(code) = error {
        params.push(("ErrorCode".to_owned(), code.to_string()));
    }
    params
}

impl CallbackWorker {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        poster: Arc<dyn WebhookPoster>,
        lease_owner: String,
    ) -> Self {
        CallbackWorker {
            store,
            clock,
            poster,
            lease_owner,
        }
    }

    /// Claims what is due and posts it, the posts side by side.
    pub async fn run_once(&self) -> Result<CallbackRound, StoreError> {
        let now = self.clock.now();
        let due = self
            .store
            .claim_twilio_callbacks(now, BATCH, &self.lease_owner, LEASE_FOR)
            .await?;
        let mut accounts: HashMap<String, Option<Credentials>> = HashMap::new();
        for callback in &due {
            if !accounts.contains_key(&callback.tenant_id) {
                let account = match self.store.twilio_account(&callback.tenant_id).await? {
                    Some(account) => Some(open(&account)?),
                    None => None,
                };
                accounts.insert(callback.tenant_id.clone(), account);
            }
        }
        let posts = due.iter().map(|callback| {
            let account = accounts.get(&callback.tenant_id).cloned().flatten();
            self.call(callback, account, now)
        });
        let outcomes = futures::future::join_all(posts).await;
        let mut round = CallbackRound::default();
        for (callback, (outcome, ok)) in due.iter().zip(outcomes) {
            if ok {
                round.called += 1;
            } else {
                round.failed += 1;
            }
            self.store
                .finish_twilio_callback(&callback.message_id, &self.lease_owner, &outcome, now)
                .await?;
        }
        Ok(round)
    }

    /// Posts one callback: its outcome, and whether the receiver took it.
    async fn call(
        &self,
        due: &DueTwilioCallback,
        account: Option<Credentials>,
        now: Timestamp,
    ) -> (TwilioCallbackOutcome, bool) {
        let done = finished(due.status);
        let Some(account) = account else {
            // The tenant's account is gone: nothing can be signed, nothing is posted.
            return (
                TwilioCallbackOutcome::Called {
                    status: due.status,
                    done,
                    error: Some("the tenant has no Twilio account".into()),
                },
                false,
            );
        };
        let params = callback_params(due, account.account_sid.as_str());
        let signature = sign(&account.auth_token, &due.url, &params);
        let headers = [
            (
                "content-type",
                "application/x-www-form-urlencoded".to_owned(),
            ),
            ("x-twilio-signature", signature),
            (
                "i-twilio-idempotency-token",
                format!("{}-{}", due.message_id, due.status.as_str()),
            ),
        ];
        let error = match self
            .poster
            .post(&due.url, &headers, &form_body(&params))
            .await
        {
            Ok(code) if (200..300).contains(&code) => None,
            Ok(code) => Some(format!("the receiver answered {code}")),
            Err(e) => Some(e),
        };
        let Some(error) = error else {
            return (
                TwilioCallbackOutcome::Called {
                    status: due.status,
                    done,
                    error: None,
                },
                true,
            );
        };
        let attempts = due.attempts + 1;
        let outcome = if attempts >= MAX_ATTEMPTS {
            tracing::warn!(message = %due.message_id, %error, "status callback given up");
            TwilioCallbackOutcome::Called {
                status: due.status,
                done,
                error: Some(error),
            }
        } else {
            TwilioCallbackOutcome::Retry {
                due_at: now.checked_add(backoff(attempts)).unwrap_or(now),
                error,
            }
        };
        (outcome, false)
    }

    /// Runs rounds until the task is dropped: at once again after a round that did
    /// something, after `idle` otherwise (a status change waits `idle` at most).
    pub async fn run_forever(self, idle: std::time::Duration) {
        loop {
            match self.run_once().await {
                Ok(round) if round.did_work() => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "status callbacks: the store failed"),
            }
            tokio::time::sleep(idle).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_from_five_seconds_to_twenty_minutes() {
        assert_eq!(backoff(1), SignedDuration::from_secs(5));
        assert_eq!(backoff(2), SignedDuration::from_secs(10));
        assert_eq!(backoff(9), SignedDuration::from_secs(20 * 60));
        assert_eq!(backoff(50), SignedDuration::from_secs(20 * 60));
    }
}
