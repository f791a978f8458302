use super::*;
use serde_json::json;

const BAG_FLOW: &str = include_str!("../../../../docs/examples/flows/where-is-my-bag.json");

fn errors_of(document: Value) -> Vec<(String, String)> {
    match FlowDefinition::parse(&document) {
        Ok(_) => panic!("the flow should be refused: {document}"),
        Err(FlowErrors(errors)) => errors.into_iter().map(|e| (e.pointer, e.message)).collect(),
    }
}

#[test]
fn the_documented_airline_flow_is_valid() {
    let document: Value = serde_json::from_str(BAG_FLOW).unwrap();
    let flow = FlowDefinition::parse(&document).unwrap();
    assert_eq!(flow.start, "mood");
    assert!(matches!(flow.node("lookup"), Some(Node::Http(h)) if h.method() == "POST"));
    // Written back, it reads the same.
    let again = FlowDefinition::parse(&serde_json::to_value(&flow).unwrap()).unwrap();
    assert_eq!(again, flow);
}

#[test]
fn a_dangling_reference_is_reported_at_its_pointer() {
    let errors = errors_of(json!({
        "start": "hello",
        "nodes": {
            "hello": {"type": "send", "text": "Bonjour", "next": "ask"},
            "ask": {"type": "ask", "text": "Votre nom ?", "next": "nowhere", "on_fail": "gone"},
            "route": {"type": "branch", "cases": [{"when": {"intent": "x"}, "next": "void"}], "default": "hello"}
        }
    }));
    assert!(errors.contains(&(
        "/nodes/ask/next".into(),
        "no node is named `nowhere`".into()
    )));
    assert!(errors.contains(&(
        "/nodes/ask/on_fail".into(),
        "no node is named `gone`".into()
    )));
    assert!(errors.contains(&(
        "/nodes/route/cases/0/next".into(),
        "no node is named `void`".into()
    )));
    let errors = errors_of(json!({"start": "a/b", "nodes": {"x": {"type": "end"}}}));
    assert_eq!(
        errors,
        vec![("/start".into(), "no node is named `a/b`".into())]
    );
}

#[test]
fn a_misshapen_node_is_reported_at_its_field() {
    let errors = errors_of(json!({
        "start": "a",
        "nodes": {"a": {"type": "sned", "text": "hi"}}
    }));
    assert_eq!(errors[0].0, "/nodes/a/type");
    assert!(
        errors[0].1.contains("unknown node type `sned`"),
        "{errors:?}"
    );
    let errors = errors_of(json!({
        "start": "a",
        "nodes": {"a": {"type": "ask", "text": "Quand ?", "validate": {"type": "time"}}}
    }));
    assert_eq!(errors[0].0, "/nodes/a/validate/type");
    let errors = errors_of(json!({
        "start": "a",
        "nodes": {"a": {"type": "send", "txt": "typo"}}
    }));
    assert!(errors[0].1.contains("unknown field `txt`"), "{errors:?}");
}

#[test]
fn meaning_mistakes_are_all_reported() {
    let errors = errors_of(json!({
        "start": "a",
        "nodes": {
            "a": {"type": "ask", "text": "Oui ou non ?", "validate": {"type": "choice"}, "attempts": 0, "next": "b"},
            "b": {"type": "ask", "text": "Réf ?", "validate": {"type": "text", "pattern": "(["}, "next": "c"},
            "c": {"type": "http", "url": "ftp://crm", "timeout_ms": 60000, "on_fail": "d"},
            "d": {"type": "send", "text": "Bonjour {{ name", "next": "e"},
            "e": {"type": "branch", "cases": [{"when": {}, "next": "f"}, {"when": {"attribute": "vip"}, "next": "f"}], "default": "f"},
            "f": {"type": "set", "value": 1}
        }
    }));
    let pointers: Vec<&str> = errors.iter().map(|(p, _)| p.as_str()).collect();
    for expected in [
        "/nodes/a/attempts",
        "/nodes/a/validate/choices",
        "/nodes/b/validate/pattern",
        "/nodes/c/url",
        "/nodes/c/timeout_ms",
        "/nodes/d/text",
        "/nodes/e/cases/0/when",
        "/nodes/e/cases/1/when",
        "/nodes/f",
    ] {
        assert!(
            pointers.contains(&expected),
            "{expected} missing from {errors:?}"
        );
    }
}

#[test]
fn entry_rules_rank_keyword_then_intent_then_new_conversation() {
    let entry = Entry {
        new_conversation: true,
        keywords: vec!["bagage".into()],
        intents: vec!["lost_bag".into()],
        channels: vec![],
    };
    let facts = |text: &str, intent: Option<&str>| Facts {
        text: text.into(),
        intent: intent.map(str::to_owned),
        ..Facts::default()
    };
    let sms = ChannelKind::Sms;
    assert_eq!(
        entry.matches(sms, false, &facts("Bagage !", None)),
        Some(EntryMatch::Keyword)
    );
    assert_eq!(
        entry.matches(sms, false, &facts("j'ai perdu ma valise", Some("lost_bag"))),
        Some(EntryMatch::Intent)
    );
    assert_eq!(
        entry.matches(sms, true, &facts("bonjour", None)),
        Some(EntryMatch::NewConversation)
    );
    assert_eq!(entry.matches(sms, false, &facts("bonjour", None)), None);
    let whatsapp_only = Entry {
        channels: vec![ChannelKind::Whatsapp],
        ..entry
    };
    assert_eq!(
        whatsapp_only.matches(sms, true, &facts("Bagage", None)),
        None
    );
}

#[test]
fn a_question_offers_its_choices_unless_it_gives_its_own() {
    let text = "Oui ou non ?".to_owned();
    let say = Say {
        text: Some(&text),
        content: None,
        quick_replies: &[],
    };
    let content = say.to_content(&["Oui".into(), "Non".into()]).unwrap();
    let titles: Vec<&str> = content
        .quick_replies
        .iter()
        .map(|q| q.title.as_str())
        .collect();
    assert_eq!(titles, ["Oui", "Non"]);
}

#[test]
fn flow_names_are_plain() {
    assert!(check_name("where-is-my-bag").is_ok());
    assert!(check_name("").is_err());
    assert!(check_name("a/b").is_err());
    assert!(check_name(&"x".repeat(65)).is_err());
}

#[test]
fn a_form_check_needs_a_form_to_fill_in() {
    let errors = errors_of(json!({
        "start": "ask",
        "nodes": {
            "ask": {"type": "ask", "text": "Votre rendez-vous ?", "validate": {"type": "form"}, "next": "end"},
            "end": {"type": "end"}
        }
    }));
    assert!(
        errors.contains(&(
            "/nodes/ask/validate".into(),
            "a `form` check needs `content` with a `form` to fill in".into()
        )),
        "{errors:?}"
    );
    let with_form = json!({
        "start": "ask",
        "nodes": {
            "ask": {"type": "ask", "validate": {"type": "form"}, "next": "end", "content": {"form": {
                "title": "Votre rendez-vous", "fields": [{"name": "date", "label": "Date", "kind": "date"}]}}},
            "end": {"type": "end"}
        }
    });
    assert!(FlowDefinition::parse(&with_form).is_ok());
}

#[test]
fn an_email_or_phone_kept_in_an_attribute_claims_an_identity_unless_link_is_false() {
    let ask = |fields: Value| -> AskNode {
        let mut node = json!({"text": "?"});
        node.as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        serde_json::from_value(node).unwrap()
    };
    let email = ask(json!({"attribute": "email", "validate": {"type": "email"}}));
    assert_eq!(
        email.claimed_identity(&json!("ana@example.com")),
        Some(Identity {
            channel: ChannelKind::Email,
            address: "ana@example.com".into()
        })
    );
    let phone = ask(json!({"attribute": "mobile", "validate": {"type": "phone"}}));
    assert_eq!(
        phone
            .claimed_identity(&json!("+33612345678"))
            .map(|i| i.channel),
        Some(ChannelKind::PHONE_NUMBER)
    );
    for silent in [
        ask(json!({"var": "email", "validate": {"type": "email"}})),
        ask(json!({"attribute": "friend", "validate": {"type": "email"}, "link": false})),
        ask(json!({"attribute": "city"})),
    ] {
        assert_eq!(silent.claimed_identity(&json!("ana@example.com")), None);
    }
}

#[test]
fn link_is_refused_on_an_answer_that_cannot_claim_an_address() {
    let errors = errors_of(json!({
        "start": "a",
        "nodes": {
            "a": {"type": "ask", "text": "Ville ?", "attribute": "city", "link": true, "next": "b"},
            "b": {"type": "ask", "text": "E-mail ?", "var": "email", "validate": {"type": "email"}, "link": true}
        }
    }));
    let pointers: Vec<&str> = errors.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(pointers, ["/nodes/a/link", "/nodes/b/link"], "{errors:?}");
}
