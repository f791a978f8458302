//! A dead push address, through the server, on each push channel: the push service
//! answers that the subscription or device token is gone for good (Web Push 410, FCM 404
//! `UNREGISTERED`, APNs 410 `Unregistered`). The message fails once with the reason and
//! is never retried, the identity leaves the contact (the failure's event says so), and
//! the next send to that contact on that channel is refused at accept.
//!
//! Each fake push service answers every request with its "gone" answer and counts them;
//! the APNs one speaks HTTP/2 only, as Apple does.

mod support;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use support::{AUTH, P256DH, Stepped, VAPID_PRIVATE};

/// The service account the FCM channel tests use (an RSA key made for tests).
const FCM_KEY: &str =
    include_str!("../../relais-channels/tests/fixtures/rcs-service-account-key.pem");
/// A P-256 key made for this test with `openssl genpkey -algorithm EC -pkeyopt
/// ec_paramgen_curve:P-256` (the fake does not check the provider token it signs).
const APNS_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgcY4KMnGTMfOyhNlE
1yIEPRrip9ijxkJAUHIy3PGRDxWhRANCAARngEg4ttFeR6V4T22c2dDaXf9B6JWU
BMayomPVn5/CJFNHAKa8Np4obmnR3SxT2OuuI6h2i6pHJdafsukaULol
-----END PRIVATE KEY-----
";

/// Configures channel `push` of `kind`, and a contact with `address` on it and an e-mail
/// address; sends to the contact on `push` until the message is final; checks what a dead
/// address must leave behind. `requests` counts what the fake received.
async fn a_dead_address_is_removed(
    kind: &str,
    config: Value,
    address: &str,
    requests: &AtomicUsize,
) {
    let api: Stepped = support::stepped().await;
    let (status, channel) = api
        .call(
            "POST",
            "/v1/channels",
            Some(json!({"kind": kind, "name": "push", "config": config})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{channel}");
    let email = json!({"channel": "email", "address": "ana@example.com"});
    let (status, contact) = api
        .call(
            "POST",
            "/v1/contacts",
            Some(json!({"identities": [{"channel": kind, "address": address}, email]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{contact}");
    let contact_id = contact["id"].as_str().unwrap().to_owned();
    let send = json!({"to": {"contact_id": contact_id}, "channel": "push",
        "content": {"text": "Votre colis est arrivé"}});
    let (status, accepted) = api.call("POST", "/v1/messages", Some(send.clone())).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");

    let message = api.settle(accepted["id"].as_str().unwrap()).await;
    assert_eq!(message["status"], "failed", "{message}");
    let last = message["events"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["reason"], "subscription_gone", "{message}");
    let detail = last["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!(
            "this {kind} address was removed from contact {contact_id}"
        )),
        "{detail}"
    );
    // More rounds find nothing to retry.
    for _ in 0..3 {
        api.dispatcher.run_once().await.unwrap();
    }
    assert_eq!(
        requests.load(Ordering::SeqCst),
        1,
        "a dead address is tried once, never retried"
    );

    let (_, contact) = api
        .call("GET", &format!("/v1/contacts/{contact_id}"), None)
        .await;
    assert_eq!(contact["identities"], json!([email]), "{contact}");

    let (status, problem) = api.call("POST", "/v1/messages", Some(send)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/channel", "{problem}");
    let refusal = problem["errors"][0]["detail"].as_str().unwrap();
    assert!(
        refusal.contains(&format!("the contact has no address on `{kind}`")),
        "{refusal}"
    );
    api.dispatcher.run_once().await.unwrap();
    assert_eq!(
        requests.load(Ordering::SeqCst),
        1,
        "nothing more was pushed"
    );
}

/// Serves `app` on 127.0.0.1; its base URL.
async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

#[tokio::test]
async fn a_web_push_subscription_answered_410_is_removed_from_its_contact() {
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    let base = serve(axum::Router::new().route(
        "/push/{id}",
        axum::routing::post(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            async {
                (
                    StatusCode::GONE,
                    "push subscription has unsubscribed or expired.",
                )
                    .into_response()
            }
        }),
    ))
    .await;
    let subscription = json!({"endpoint": format!("{base}/push/ana"), "expirationTime": null,
        "keys": {"p256dh": P256DH, "auth": AUTH}})
    .to_string();
    let config = json!({"vapid_private_key": VAPID_PRIVATE,
        "vapid_subject": "mailto:ops@example.com", "allow_http_endpoints": true});
    a_dead_address_is_removed("webpush", config, &subscription, &requests).await;
}

#[tokio::test]
async fn an_fcm_token_answered_unregistered_is_removed_from_its_contact() {
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    let app = axum::Router::new()
        .route(
            "/token",
            axum::routing::post(|| async {
                axum::Json(json!({"access_token": "ya29.test", "expires_in": 3599,
                    "token_type": "Bearer"}))
            }),
        )
        .route(
            "/v1/projects/relais-push-1/messages:send",
            axum::routing::post(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                async {
                    // FCM's documented answer for a token whose app was uninstalled.
                    (
                        StatusCode::NOT_FOUND,
                        axum::Json(json!({"error": {"code": 404,
                            "message": "Requested entity was not found.", "status": "NOT_FOUND",
                            "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                                "errorCode": "UNREGISTERED"}]}})),
                    )
                }
            }),
        );
    let base = serve(app).await;
    let config = json!({"service_account": {"type": "service_account",
        "project_id": "relais-push-1", "private_key_id": "3f1a", "private_key": FCM_KEY,
        "client_email": "relais@relais-push-1.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.googleapis.com/token"},
        "base_url": format!("{base}/"), "token_uri": format!("{base}/token")});
    let token = "dK3xVq0wRb2:APA91bHPRgkF3JUikC4ENAHEeMrd41Zxv3hVZjC9KtT8OvPVGJ";
    a_dead_address_is_removed("fcm", config, token, &requests).await;
}

#[tokio::test]
async fn an_apns_token_answered_410_unregistered_is_removed_from_its_contact() {
    let requests = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let counted = requests.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_request| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    // Apple's documented answer for a token no longer active for the topic.
                    let body = json!({"reason": "Unregistered", "timestamp": 1750000000000i64});
                    async move {
                        hyper::Response::builder()
                            .status(410)
                            .body(Full::new(Bytes::from(body.to_string())))
                    }
                });
                // HTTP/2 only, as APNs.
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let config = json!({"team_id": "ABC123DEFG", "key_id": "KEY456HIJK",
        "private_key": APNS_KEY, "topic": "com.example.relais", "base_url": format!("{base}/")});
    let token = "0f".repeat(32);
    a_dead_address_is_removed("apns", config, &token, &requests).await;
}
