use super::*;
use serde_json::json;

fn abandoned_cart() -> Value {
    json!({
        "trigger": {"event": "cart_abandoned", "where": {"field": "event.total", "op": ">", "value": 0}},
        "exit_on": ["purchase"],
        "start": "wait",
        "steps": {
            "wait": {"type": "wait", "for": "1h", "next": "remind"},
            "remind": {"type": "send", "channels": ["whatsapp", {"channel": "sms", "after": "failed"}],
                       "content": {"text": "Your cart is waiting"}, "purpose": "marketing", "next": "seen"},
            "seen": {"type": "branch", "on": "read", "within": "2h", "yes": "done", "no": "nudge"},
            "nudge": {"type": "send", "channel": "sms", "content": {"text": "Last chance"}},
            "done": {"type": "exit"}
        }
    })
}

fn errors(doc: Value) -> Vec<(String, String)> {
    JourneyDefinition::parse(&doc)
        .unwrap_err()
        .0
        .into_iter()
        .map(|e| (e.pointer, e.message))
        .collect()
}

#[test]
fn an_abandoned_cart_journey_reads_into_its_steps() {
    let j = JourneyDefinition::parse(&abandoned_cart()).unwrap();
    assert!(
        matches!(&j.trigger, Trigger::Event { name, filter: Some(_) } if name == "cart_abandoned")
    );
    assert_eq!(j.reentry, Reentry::AfterExit, "the default re-entry rule");
    assert!(j.exits_on("purchase"));
    assert_eq!(j.start, "wait");
    assert_eq!(
        j.steps["wait"],
        Step::Wait {
            wait: Wait::For(SignedDuration::from_hours(1)),
            next: Some("remind".into())
        }
    );
    assert!(matches!(
        j.steps["seen"],
        Step::Branch { on: Engagement::Read, within, .. } if within == SignedDuration::from_hours(2)
    ));
    let Step::Send { message, next } = &j.steps["remind"] else {
        panic!("a send")
    };
    assert_eq!(message["purpose"], "marketing");
    assert!(!message.contains_key("type"));
    assert_eq!(next.as_deref(), Some("seen"));
}

#[test]
fn a_dangling_step_is_named_with_its_pointer() {
    let mut doc = abandoned_cart();
    doc["steps"]["remind"]["next"] = json!("sen");
    doc["start"] = json!("wiat");
    let found = errors(doc);
    assert!(
        found.contains(&(
            "/steps/remind/next".into(),
            "no step is named \"sen\"".into()
        )),
        "{found:?}"
    );
    assert!(
        found.contains(&("/start".into(), "no step is named \"wiat\"".into())),
        "{found:?}"
    );
}

#[test]
fn each_bad_step_is_reported_under_its_name() {
    let doc = json!({
        "trigger": {"event": "signup"},
        "start": "a",
        "steps": {
            "a": {"type": "wait", "next": "b"},
            "b": {"type": "send", "channel": "sms", "next": "c"},
            "c": {"type": "branch", "on": "opened", "within": "0s"},
            "d": {"type": "teleport"},
            "e": {"type": "wait", "until": "25:00"},
            "f": {"type": "condition", "if": {"field": "city", "op": "=", "value": "Lyon"}},
            "g": {"type": "exit", "colour": "red"}
        }
    });
    let pointers: Vec<String> = errors(doc).into_iter().map(|(p, _)| p).collect();
    for expected in [
        "/steps/a",
        "/steps/b",
        "/steps/c/on",
        "/steps/c/within",
        "/steps/d/type",
        "/steps/e/until",
        "/steps/f/if/field",
        "/steps/g/colour",
    ] {
        assert!(
            pointers.iter().any(|p| p == expected),
            "{expected} in {pointers:?}"
        );
    }
}

#[test]
fn date_triggers_read_their_attribute_offset_and_hour() {
    let base = json!({"start": "hi", "steps": {"hi": {"type": "send", "content": {"text": "Happy birthday!"}}}});
    let with = |trigger: Value| {
        let mut doc = base.clone();
        doc["trigger"] = trigger;
        JourneyDefinition::parse(&doc).map(|j| j.trigger)
    };
    assert_eq!(
        with(json!({"anniversary": "attributes.birthday", "at": "10:30"})).unwrap(),
        Trigger::Anniversary {
            attribute: "birthday".into(),
            at: when::TimeOfDay::parse("10:30").unwrap()
        }
    );
    assert_eq!(
        with(json!({"date": "renewal_date", "offset": "-30d"})).unwrap(),
        Trigger::Date {
            attribute: "renewal_date".into(),
            offset_days: -30,
            at: when::TimeOfDay::parse("09:00").unwrap()
        }
    );
    assert!(with(json!({"date": "renewal_date", "offset": "soon"})).is_err());
    assert!(with(json!({"event": "a", "geofence": "b"})).is_err());
    assert!(with(json!({"geofence": "shop lyon"})).is_err());
    assert!(
        with(json!({"event": "entered_area"})).is_err(),
        "an area is named by a geofence trigger"
    );
    assert_eq!(
        with(json!({"segment": "vip"})).unwrap(),
        Trigger::Segment { name: "vip".into() }
    );
}

#[test]
fn a_branch_without_any_send_is_refused() {
    let doc = json!({"trigger": {"event": "x"}, "start": "b",
        "steps": {"b": {"type": "branch", "on": "replied", "within": "1h"}}});
    assert_eq!(errors(doc)[0].0, "/steps/b");
}

#[test]
fn unknown_reentry_rules_and_fields_are_refused() {
    let mut doc = abandoned_cart();
    doc["reentry"] = json!("sometimes");
    doc["colour"] = json!("red");
    let pointers: Vec<String> = errors(doc).into_iter().map(|(p, _)| p).collect();
    assert_eq!(pointers, ["/colour", "/reentry"]);
}
