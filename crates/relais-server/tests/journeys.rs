//! The journeys API over HTTP: customer events (201, then 200 for the same id, 404 for an
//! unknown contact), geofences, and journey documents refused with the step at fault.

mod support;

use axum::http::StatusCode;
use serde_json::json;
use support::stepped;

#[tokio::test]
async fn an_event_is_recorded_once_per_id_and_refused_for_an_unknown_contact() {
    let s = stepped().await;
    let (status, contact) = s
        .call(
            "POST",
            "/v1/contacts",
            Some(json!({"identities": [{"channel": "sms", "address": "+33612345678"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{contact}");
    let (status, journey) = s
        .call(
            "PUT",
            "/v1/journeys/abandoned-cart",
            Some(json!({"trigger": {"event": "cart_abandoned"}, "exit_on": ["purchase"], "start": "wait",
                "steps": {"wait": {"type": "wait", "for": "1h", "next": "remind"},
                          "remind": {"type": "send", "channel": "sim", "content": {"text": "Your cart"}}}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{journey}");
    assert_eq!(journey["revision"], 1);

    let event = json!({"contact": "+33612345678", "name": "cart_abandoned", "id": "cart-1", "properties": {"total": 12}});
    let (status, first) = s.call("POST", "/v1/events", Some(event.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["entered"], json!(["abandoned-cart"]));
    assert_eq!(first["contact_id"], contact["id"]);
    let (status, again) = s.call("POST", "/v1/events", Some(event)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, first, "the first answer, nothing applied twice");
    let (_, runs) = s
        .call("GET", "/v1/journeys/abandoned-cart/runs", None)
        .await;
    assert_eq!(runs["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(runs["data"][0]["step"], "wait");
    let (status, report) = s
        .call("GET", "/v1/journeys/abandoned-cart/report", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["conversion_events"], json!(["purchase"]));
    assert_eq!(report["steps"][1]["step"], "wait");
    assert_eq!(report["steps"][1]["runs"]["active"], 1, "{report}");
    let (status, problem) = s
        .call("GET", "/v1/journeys/abandoned-cart/report?format=xml", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    let (status, _) = s.call("GET", "/v1/journeys/nope/report", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, purchase) = s
        .call(
            "POST",
            "/v1/events",
            Some(json!({"contact": "+33612345678", "name": "purchase", "value": 12.5})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(purchase["exited"], json!(["abandoned-cart"]));
    let id = contact["id"].as_str().unwrap_or_default();
    let (_, listed) = s
        .call(
            "GET",
            &format!("/v1/contacts/{id}/events?name=purchase"),
            None,
        )
        .await;
    assert_eq!(listed["data"][0]["value"], 12.5);

    let (status, problem) = s
        .call(
            "POST",
            "/v1/events",
            Some(json!({"contact": "+33699999999", "name": "cart_abandoned", "id": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("create_contact")
    );
    let (status, created) = s
        .call("POST", "/v1/events", Some(json!({"contact": "+33699999999", "name": "cart_abandoned", "id": "x", "create_contact": true})))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["created_contact"], true);

    let (status, problem) = s
        .call(
            "POST",
            "/v1/events",
            Some(json!({"contact": "+33612345678", "name": "bad name"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["pointer"], "/name");
}

#[tokio::test]
async fn a_journey_with_mistakes_is_refused_naming_each_step_and_changes_nothing() {
    let s = stepped().await;
    let (status, problem) = s
        .call(
            "PUT",
            "/v1/journeys/broken",
            Some(json!({"trigger": {"event": "signup"}, "start": "hello",
                "steps": {"hello": {"type": "send", "channel": "sim", "content": {"text": "Hi"}, "purpose": "spam", "next": "chek"},
                          "check": {"type": "branch", "on": "opened", "within": "2h"}}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let pointers: Vec<&str> = problem["errors"]
        .as_array()
        .map(|e| e.iter().filter_map(|e| e["pointer"].as_str()).collect())
        .unwrap_or_default();
    assert!(pointers.contains(&"/steps/hello/next"), "{pointers:?}");
    assert!(pointers.contains(&"/steps/check/on"), "{pointers:?}");
    let (status, _) = s.call("GET", "/v1/journeys/broken", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A send step the accept path would refuse is named too.
    let (status, problem) = s
        .call(
            "PUT",
            "/v1/journeys/broken",
            Some(json!({"trigger": {"event": "signup"}, "start": "hello",
                "steps": {"hello": {"type": "send", "channel": "sim", "content": {"text": "Hi"}, "purpose": 42}}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        problem["errors"][0]["pointer"], "/steps/hello/purpose",
        "{problem}"
    );
}

#[tokio::test]
async fn an_area_entered_inside_a_geofence_is_named_in_the_answer() {
    let s = stepped().await;
    let (status, problem) = s
        .call(
            "PUT",
            "/v1/geofences/shop-lyon",
            Some(json!({"lat": 91, "lon": 4.8, "radius_m": 150})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["pointer"], "/lat");
    let (status, area) = s
        .call(
            "PUT",
            "/v1/geofences/shop-lyon",
            Some(json!({"lat": 45.7640, "lon": 4.8357, "radius_m": 150})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{area}");
    let (status, answer) = s
        .call(
            "POST",
            "/v1/events",
            Some(
                json!({"contact": "+33612345678", "name": "entered_area", "create_contact": true,
                "properties": {"lat": 45.7649, "lon": 4.8357}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["geofences"], json!(["shop-lyon"]));
    let (status, problem) = s
        .call("POST", "/v1/events", Some(json!({"contact": "+33612345678", "name": "entered_area", "properties": {"lat": 45.7}})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["pointer"], "/properties/lon");
}
