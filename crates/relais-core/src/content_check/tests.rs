use super::links::{decode_punycode, link_hosts};
use super::*;

fn rules(json: serde_json::Value) -> ContentRules {
    let checks: ContentChecks = serde_json::from_value(json).unwrap();
    checks.check().unwrap();
    checks.rules(&["https://relais.example.com"])
}

fn bank() -> ContentRules {
    rules(
        serde_json::json!({"brands": ["mabanque.fr", "Ma Banque"], "allowed_domains": ["mabanque-pro.com"]}),
    )
}

fn codes(assessment: &Assessment) -> Vec<ReasonCode> {
    assessment.reasons.iter().map(|r| r.code).collect()
}

#[test]
fn links_are_found_with_and_without_a_scheme() {
    let hosts: Vec<String> = link_hosts(
        "Allez sur https://www.MaBanque.fr/espace, ou ma-banque-securite.com/login. \
         Écrivez à contact@mabanque.fr ; voir facture.pdf, M.Dupont ou (http://mabanque.fr@evil.example/x).",
    )
    .into_iter()
    .map(|h| h.name)
    .collect();
    assert_eq!(
        hosts,
        ["www.mabanque.fr", "ma-banque-securite.com", "evil.example"]
    );
}

#[test]
fn punycode_labels_are_decoded() {
    assert_eq!(decode_punycode("bcher-kva").as_deref(), Some("bücher"));
    assert_eq!(decode_punycode("mbanque-2fg").as_deref(), Some("mаbanque"));
    assert_eq!(decode_punycode("!!"), None);
    let host = &link_hosts("https://xn--mbanque-2fg.fr/")[0];
    assert!(host.punycode);
    assert_eq!(host.name, "mаbanque.fr");
}

#[test]
fn a_link_to_an_allowed_or_brand_domain_scores_nothing() {
    let assessment = bank().assess([
        "Votre RDV est confirmé : https://www.mabanque.fr/rdv et https://app.mabanque-pro.com/x et https://relais.example.com/l/AbCdEfGhIjKl",
    ]);
    assert_eq!(assessment, Assessment::default());
}

#[test]
fn a_cyrillic_letter_in_the_brand_is_a_homoglyph() {
    let assessment = bank().assess(["Connectez-vous sur https://mаbanque.fr/login"]);
    assert!(
        codes(&assessment).contains(&ReasonCode::LookalikeHomoglyph),
        "{assessment:?}"
    );
    assert!(assessment.score >= 50);
}

#[test]
fn digits_and_rn_for_m_are_homoglyphs() {
    for text in [
        "http://m4banque.fr",
        "rnabanque.fr/x",
        "https://mab4nqu3.com",
    ] {
        let assessment = bank().assess([text]);
        assert_eq!(
            codes(&assessment),
            [ReasonCode::LookalikeHomoglyph, ReasonCode::DomainNotAllowed],
            "{text}"
        );
    }
}

#[test]
fn a_punycode_look_alike_is_decoded_and_compared() {
    let assessment = bank().assess(["https://xn--mbanque-2fg.fr/login"]);
    assert_eq!(
        codes(&assessment),
        [
            ReasonCode::PunycodeDomain,
            ReasonCode::LookalikeHomoglyph,
            ReasonCode::DomainNotAllowed
        ]
    );
    assert_eq!(assessment.score, 20 + 80 + 30);
}

#[test]
fn the_brand_with_added_words_is_a_look_alike() {
    for text in [
        "ma-banque-securite.com/login",
        "https://secure-mabanque.fr",
        "http://mabanque.verify-account.net/",
    ] {
        let assessment = bank().assess([text]);
        assert_eq!(
            codes(&assessment)[0],
            ReasonCode::LookalikeAddedWords,
            "{text}"
        );
        assert!(assessment.score >= 50, "{text}");
    }
}

#[test]
fn a_letter_off_the_brand_is_a_typo() {
    let assessment = bank().assess(["https://mabanqe.fr"]);
    assert_eq!(codes(&assessment)[0], ReasonCode::LookalikeTypo);
    assert!(
        bank()
            .assess(["https://mabonnenouvelle.fr"])
            .reasons
            .iter()
            .all(|r| r.code == ReasonCode::DomainNotAllowed)
    );
}

#[test]
fn ip_literals_are_scored_v4_and_v6() {
    let none = rules(serde_json::json!({}));
    for text in [
        "http://192.0.2.7/login",
        "Go to 192.0.2.7/login",
        "http://[2001:db8::1]/login",
        "http://3221225991/",
    ] {
        let assessment = none.assess([text]);
        assert_eq!(codes(&assessment), [ReasonCode::IpLiteral], "{text}");
        assert_eq!(none.verdict(&assessment), Verdict::Hold, "{text}");
    }
}

#[test]
fn third_party_shorteners_are_scored_but_not_alone_held() {
    let none = rules(serde_json::json!({}));
    let assessment = none.assess(["Votre colis : https://bit.ly/3xYz et tinyurl.com/abc"]);
    assert_eq!(
        codes(&assessment),
        [ReasonCode::Shortener, ReasonCode::Shortener]
    );
    assert_eq!(assessment.score, 60);
    let one = none.assess(["https://bit.ly/3xYz"]);
    assert_eq!(none.verdict(&one), Verdict::Send);
    let allowed = rules(serde_json::json!({"allowed_domains": ["bit.ly"]}));
    assert_eq!(
        allowed.assess(["https://bit.ly/3xYz"]),
        Assessment::default()
    );
}

#[test]
fn credential_phrasing_is_found_in_french_and_english() {
    let none = rules(serde_json::json!({}));
    for text in [
        "Please VERIFY your account now",
        "Vérifiez   votre compte !",
        "Votre compte sera suspendu demain",
        "Mettez à jour vos coordonnées bancaires ici",
        "Confirm your password",
    ] {
        assert_eq!(
            codes(&none.assess([text])),
            [ReasonCode::CredentialPhrasing],
            "{text}"
        );
    }
    assert!(
        none.assess(["Votre compte est à jour, merci"])
            .reasons
            .is_empty()
    );
}

#[test]
fn without_listed_domains_a_foreign_domain_is_not_scored() {
    let none = rules(serde_json::json!({}));
    assert_eq!(
        none.assess(["https://example.org/rdv"]),
        Assessment::default()
    );
    let listed = rules(serde_json::json!({"allowed_domains": ["example.fr"]}));
    assert_eq!(
        codes(&listed.assess(["https://example.org/rdv"])),
        [ReasonCode::DomainNotAllowed]
    );
}

#[test]
fn weights_threshold_and_action_are_the_tenants() {
    let strict = rules(
        serde_json::json!({"threshold": 30, "action": "refuse", "weights": {"shortener": 35}}),
    );
    let assessment = strict.assess(["https://bit.ly/x"]);
    assert_eq!(assessment.score, 35);
    assert_eq!(strict.verdict(&assessment), Verdict::Refuse);
    let off = rules(serde_json::json!({"enabled": false}));
    assert_eq!(off.assess(["http://192.0.2.7/"]), Assessment::default());
}

#[test]
fn unworkable_sections_are_refused_with_a_pointer() {
    let check = |json: serde_json::Value| {
        serde_json::from_value::<ContentChecks>(json)
            .unwrap()
            .check()
            .unwrap_err()
            .pointer
    };
    assert_eq!(check(serde_json::json!({"threshold": 0})), "/threshold");
    assert_eq!(
        check(serde_json::json!({"allowed_domains": ["https://x.fr/a"]})),
        "/allowed_domains/0"
    );
    assert_eq!(check(serde_json::json!({"brands": ["ab"]})), "/brands/0");
    assert!(
        serde_json::from_value::<ContentChecks>(serde_json::json!({"weights": {"nope": 1}}))
            .is_err()
    );
}

#[test]
fn a_media_files_address_is_not_read_but_a_buttons_link_is() {
    let content: crate::content::Content = serde_json::from_value(serde_json::json!({
        "media": {"url": "http://192.0.2.7/photo.jpg", "mime_type": "image/jpeg", "caption": "Votre colis"},
        "buttons": [{"type": "url", "title": "Suivre", "url": "https://bit.ly/colis"}]
    }))
    .unwrap();
    let texts = texts_of(&content);
    let assessment = rules(serde_json::json!({})).assess(texts.iter().map(String::as_str));
    assert_eq!(codes(&assessment), [ReasonCode::Shortener], "{texts:?}");
}
