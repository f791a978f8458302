use super::*;
use proptest::prelude::*;
use serde_json::json;

fn render(source: &str, context: Value) -> Result<String, TemplateError> {
    Template::compile(source)?.render(&context)
}

#[test]
fn compiled_templates_can_be_shared_between_tasks() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<Template>();
    shareable::<ContentTemplate>();
}

#[test]
fn greets_by_first_name() {
    assert_eq!(
        render(
            "Bonjour {{ first_name }} !",
            json!({"first_name": "Amélie"})
        )
        .unwrap(),
        "Bonjour Amélie !"
    );
}

#[test]
fn nested_values_loops_and_conditions() {
    let source = "{% if vip %}Cher client VIP, {% endif %}commande {{ order.id }} :\n{% for line in order.lines %}- {{ line.name }}\n{% endfor %}";
    let context = json!({"vip": true, "order": {"id": "A-12", "lines": [{"name": "Pain"}, {"name": "Lait"}]}});
    assert_eq!(
        render(source, context).unwrap(),
        "Cher client VIP, commande A-12 :\n- Pain\n- Lait\n"
    );
}

#[test]
fn an_undefined_variable_is_named_with_its_line() {
    let err = render("Bonjour {{ first_name }}", json!({})).unwrap_err();
    assert_eq!(err.to_string(), "undefined variable `first_name` at line 1");
    let err = render(
        "Bonjour {{ name }},\nvotre code : {{ code }}",
        json!({"name": "Léa"}),
    )
    .unwrap_err();
    assert_eq!(
        err,
        TemplateError::UndefinedVariable {
            name: "code".into(),
            line: Line(Some(2))
        }
    );
    let err = render("{{ order.total }}", json!({"order": {}})).unwrap_err();
    assert_eq!(
        err.to_string(),
        "undefined variable `order.total` at line 1"
    );
}

#[test]
fn a_condition_on_a_missing_variable_is_an_error_too() {
    let err = render("{% if vip %}VIP{% endif %}", json!({})).unwrap_err();
    assert_eq!(err.to_string(), "undefined variable `vip` at line 1");
}

#[test]
fn optional_values_use_default_or_is_defined() {
    assert_eq!(
        render("Hi {{ nickname | default('there') }}", json!({})).unwrap(),
        "Hi there"
    );
    assert_eq!(
        render(
            "{% if coupon is defined %}{{ coupon }}{% else %}-{% endif %}",
            json!({})
        )
        .unwrap(),
        "-"
    );
}

#[test]
fn syntax_errors_carry_their_line() {
    let err = Template::compile("Hello\n{{ name ").unwrap_err();
    assert!(
        matches!(
            err,
            TemplateError::Syntax {
                line: Line(Some(2)),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("template syntax error at line 2"),
        "{err}"
    );
}

#[test]
fn a_hostile_loop_runs_out_of_fuel() {
    let context = json!({"items": (0..1000).collect::<Vec<_>>()});
    let source = "{% for a in items %}{% for b in items %}{{ a }}{% endfor %}{% endfor %}";
    let err = render(source, context).unwrap_err();
    assert!(matches!(err, TemplateError::TooExpensive { .. }), "{err:?}");
}

#[test]
fn huge_ranges_and_repetition_are_refused() {
    let err = Template::compile("{% for i in range(10**9) %}x{% endfor %}").unwrap_err();
    assert!(matches!(err, TemplateError::NotAllowed { .. }), "{err:?}");
    assert!(Template::compile("{{ 'x' * 100000000 }}").is_err());
    let err = render("{% for i in range(100) %}x{% endfor %}", json!({})).unwrap_err();
    assert!(err.to_string().contains("range"), "{err}");
    // A `*` inside a string is just a character.
    assert_eq!(
        render("{{ '*' }} 5* rating", json!({})).unwrap(),
        "* 5* rating"
    );
}

#[test]
fn value_building_statements_are_refused() {
    for source in [
        "{% set a = 1 %}",
        "{% macro m() %}{% endmacro %}",
        "{% include 'x' %}",
        "{%- set a = 1 -%}",
    ] {
        let err = Template::compile(source).unwrap_err();
        assert!(
            err.to_string()
                .contains("is not available in message templates"),
            "{source}: {err}"
        );
    }
    assert_eq!(
        render("{% raw %}{% set x %}{{ * }}{% endraw %}", json!({})).unwrap(),
        "{% set x %}{{ * }}"
    );
}

#[test]
fn output_is_capped() {
    let big = "x".repeat(60_000);
    let err = render("{{ a }}{{ a }}", json!({"a": big})).unwrap_err();
    assert_eq!(
        err,
        TemplateError::OutputTooLong {
            max: MAX_OUTPUT_BYTES
        }
    );
}

#[test]
fn no_html_escaping_in_messages() {
    assert_eq!(
        render("{{ name }}", json!({"name": "Tom & <Jerry>"})).unwrap(),
        "Tom & <Jerry>"
    );
}

#[test]
fn urlencode_for_personalised_links() {
    assert_eq!(
        render(
            "https://x.example/?n={{ name | urlencode }}",
            json!({"name": "Zoé D"})
        )
        .unwrap(),
        "https://x.example/?n=Zo%C3%A9%20D"
    );
}

#[test]
fn variables_are_listed_in_order() {
    let template =
        Template::compile("{{ b }} {{ a.x }} {% for i in items %}{{ i }}{% endfor %}").unwrap();
    assert_eq!(template.variables(), ["b", "a.x", "items"]);
}

#[test]
fn request_variables_override_contact_attributes() {
    let attributes = json!({"first_name": "Jean", "city": "Lyon"});
    let variables = json!({"first_name": "Jeannot"});
    let context = template_context(
        attributes.as_object().unwrap(),
        variables.as_object().unwrap(),
    );
    assert_eq!(
        render("{{ first_name }} de {{ city }}", context).unwrap(),
        "Jeannot de Lyon"
    );
}

#[test]
fn every_text_field_of_a_content_is_personalised() {
    let content: Content = serde_json::from_value(json!({
        "card": {"title": "{{ first_name }}, for you", "text": "{{ product }}",
            "buttons": [{"type": "url", "title": "See", "url": "https://shop.example/p/{{ sku | urlencode }}"}]},
        "quick_replies": ["Merci {{ first_name }}"]
    }))
    .unwrap();
    let rendered = render_content(
        &content,
        &json!({"first_name": "Ana", "product": "Boots", "sku": "B 1"}),
    )
    .unwrap();
    assert_eq!(
        serde_json::to_value(&rendered).unwrap(),
        json!({"card": {"title": "Ana, for you", "text": "Boots",
            "buttons": [{"type": "url", "title": "See", "url": "https://shop.example/p/B%201"}]},
            "quick_replies": ["Merci Ana"]})
    );
    let compiled = ContentTemplate::compile(&content).unwrap();
    assert_eq!(
        compiled.variables().into_iter().collect::<Vec<_>>(),
        ["first_name", "product", "sku"]
    );
}

#[test]
fn content_errors_name_the_field() {
    let content: Content = serde_json::from_value(
        json!({"text": "Hi", "buttons": [{"type": "reply", "title": "{{ label }}"}]}),
    )
    .unwrap();
    let err = render_content(&content, &json!({})).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`buttons[0].title`: undefined variable `label` at line 1"
    );
    let link: Content = serde_json::from_value(json!({"text": "Hi", "buttons": [{"type": "url", "title": "Go", "url": "https://x.example/{{ path }}"}]})).unwrap();
    assert!(render_content(&link, &json!({"path": "ok"})).is_ok());
    let err = render_content(&link, &json!({"path": "a b"})).unwrap_err();
    assert!(
        err.to_string()
            .contains("`buttons[0].url`: `https://x.example/a b` is not a usable link"),
        "{err}"
    );
    let text: Content = serde_json::from_value(json!({"text": "{{ blank }}"})).unwrap();
    let err = render_content(&text, &json!({"blank": "  "})).unwrap_err();
    assert!(matches!(err, ContentTemplateError::Invalid(_)), "{err:?}");
}

proptest! {
    #[test]
    fn text_without_template_syntax_is_unchanged(text in "[^{}]{1,200}") {
        prop_assert_eq!(render(&text, json!({})).unwrap(), text.clone());
    }

    #[test]
    fn substituted_values_appear_verbatim(value in "\\PC{0,100}") {
        prop_assert_eq!(render("<{{ v }}>", json!({"v": value.clone()})).unwrap(), format!("<{value}>"));
    }

    #[test]
    fn no_input_panics(source in "\\PC{0,80}") {
        if let Ok(template) = Template::compile(&source) {
            let _ = template.render(&json!({"a": 1, "b": "x", "items": [1, 2, 3]}));
        }
    }
}

// Hostile templates: each was measured on the previous implementation (see
// `examples/template_bench.rs`); each must now be refused with its own error.

/// A context with a text as long as one value may be, and a list to loop over.
fn hostile_context() -> Value {
    json!({
        "big": "x".repeat(40_000),
        "items": (0..500).collect::<Vec<_>>(),
    })
}

fn chain(operand: &str, operator: &str, count: usize) -> String {
    vec![operand; count].join(operator)
}

#[test]
fn nested_joins_stop_when_a_value_passes_the_limit() {
    // Each level multiplies by ten: 73,810 bytes at five levels, 4 GB at ten.
    let mut source = "'0123456789'".to_owned();
    for _ in 0..10 {
        source = format!("'0123456789'|join({source})");
    }
    let err = render(&format!("{{{{ ({source})|length }}}}"), json!({})).unwrap_err();
    assert_eq!(
        err,
        TemplateError::ValueTooLong {
            line: Line(Some(1)),
            max: MAX_VALUE_BYTES
        }
    );
    assert_eq!(
        err.to_string(),
        "the template builds a value longer than 65536 bytes at line 1"
    );
}

#[test]
fn a_concatenation_chain_stops_at_the_value_limit() {
    // 60 × 40 KB: 2.4 MB of text, and 72 MB copied while building it.
    let source = format!("{{{{ ({})|length }}}}", chain("big", " ~ ", 60));
    let err = render(&source, hostile_context()).unwrap_err();
    assert!(matches!(err, TemplateError::ValueTooLong { .. }), "{err:?}");
}

#[test]
fn concatenation_in_a_loop_stops_at_the_work_limit() {
    // Each turn builds 120 KB and drops it: 3 s of copying for 1,000 turns before.
    let source = "{% for i in items %}{{ (big ~ i)|length }}{% endfor %}";
    let err = render(source, hostile_context()).unwrap_err();
    assert_eq!(
        err,
        TemplateError::BuildsTooMuch {
            line: Line(Some(1)),
            max: MAX_WORK_BYTES
        }
    );
}

#[test]
fn a_list_of_big_values_is_bounded_by_the_work_limit() {
    // A list literal keeps every item alive: 1,000 × 120 KB = 120 MB before.
    let source = format!("{{{{ [{}]|length }}}}", chain("big ~ 'z'", ", ", 25));
    let err = render(&source, hostile_context()).unwrap_err();
    assert!(
        matches!(err, TemplateError::BuildsTooMuch { .. }),
        "{err:?}"
    );
    let source = format!("{{{{ [{}]|length }}}}", chain("big|upper", ", ", 25));
    let err = render(&source, hostile_context()).unwrap_err();
    assert!(
        matches!(err, TemplateError::BuildsTooMuch { .. }),
        "{err:?}"
    );
}

#[test]
fn printing_a_list_as_text_in_a_loop_is_bounded() {
    let source = "{% for i in items %}{{ (items|string)|length }}{% endfor %}";
    let err = render(source, hostile_context()).unwrap_err();
    assert!(
        matches!(err, TemplateError::BuildsTooMuch { .. }),
        "{err:?}"
    );
}

#[test]
fn replace_cannot_multiply_a_text() {
    let err = render("{{ big|replace('', big) }}", hostile_context()).unwrap_err();
    assert!(matches!(err, TemplateError::ValueTooLong { .. }), "{err:?}");
    let err = render("{{ big|replace('x', 'xx') }}", hostile_context()).unwrap_err();
    assert!(matches!(err, TemplateError::ValueTooLong { .. }), "{err:?}");
    assert_eq!(
        render("{{ 'a-b-c'|replace('-', ' ') }}", json!({})).unwrap(),
        "a b c"
    );
}

#[test]
fn plus_adds_numbers_and_refuses_texts_and_lists() {
    assert_eq!(
        render(
            "{{ n + 1 }} {{ price + 0.5 }}",
            json!({"n": 41, "price": 2})
        )
        .unwrap(),
        "42 2.5"
    );
    let err = render(
        &format!("{{{{ ({})|length }}}}", chain("big", " + ", 30)),
        hostile_context(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "template error at line 1: `+` adds numbers, not a string; write `~` to put texts together"
    );
    let err = render("{{ (items + items)|length }}", hostile_context()).unwrap_err();
    assert!(
        err.to_string().contains("`+` adds numbers, not a sequence"),
        "{err}"
    );
}

#[test]
fn repetition_slices_calls_and_unknown_filters_are_refused_when_compiled() {
    for (source, what) in [
        ("{{ 'x' * 100000000 }}", "`*`"),
        ("{{ items * 1000 }}", "`*`"),
        ("{{ big[1:] }}", "a slice"),
        (
            "{% for i in range(10) %}{% endfor %}",
            "the function `range()`",
        ),
        ("{{ lipsum(1000) }}", "the function `lipsum()`"),
        (
            "{% for i in items %}{{ loop.cycle('a', 'b') }}{% endfor %}",
            "the method `cycle()`",
        ),
        ("{{ big|center(1000000) }}", "the filter `center`"),
        ("{{ items|tojson }}", "the filter `tojson`"),
        ("{{ items|pprint }}", "the filter `pprint`"),
        ("{{ '%s'|format(big) }}", "the filter `format`"),
        ("{{ items|batch(3) }}", "the filter `batch`"),
        ("{{ big|indent(1000) }}", "the filter `indent`"),
        ("{{ x is divisibleby 3 }}", "the test `is divisibleby`"),
        (
            "{{ big|__relais_concat(big) }}",
            "the filter `__relais_concat`",
        ),
        ("{{ items|join(*items) }}", "argument unpacking"),
        (
            "{% for x in items recursive %}{{ loop(x) }}{% endfor %}",
            "a `recursive` loop",
        ),
        ("{% with a = 1 %}{% endwith %}", "`{% with %}`"),
        ("{% filter upper %}x{% endfilter %}", "`{% filter %}`"),
        (
            "{% autoescape true %}x{% endautoescape %}",
            "`{% autoescape %}`",
        ),
        ("{% call m() %}x{% endcall %}", "`{% call %}`"),
        ("{% do f() %}", "`{% do %}`"),
        ("{% extends 'a' %}", "`{% extends %}`"),
        ("{% import 'a' as b %}", "`{% import %}`"),
        ("{% from 'a' import b %}", "`{% from %}`"),
        ("{% block b %}{% endblock %}", "`{% block %}`"),
        ("{% set x %}{{ big }}{% endset %}", "`{% set %}`"),
    ] {
        let err = Template::compile(source).unwrap_err();
        assert!(
            matches!(&err, TemplateError::NotAllowed { what: found, .. } if found.starts_with(what)),
            "{source}: {err}"
        );
    }
    // A `*` inside a string is just a character.
    assert_eq!(
        render("{{ '*' }} 5* rating", json!({})).unwrap(),
        "* 5* rating"
    );
}

#[test]
fn long_sources_are_refused() {
    let err = Template::compile(&"x".repeat(MAX_SOURCE_BYTES + 1)).unwrap_err();
    assert_eq!(
        err,
        TemplateError::SourceTooLong {
            len: MAX_SOURCE_BYTES + 1,
            max: MAX_SOURCE_BYTES
        }
    );
}

/// Runs `f` on a thread with the 2 MiB stack tokio's workers and `spawn_blocking` threads
/// get, so a recursion the limits let through aborts the test binary here. Debug builds,
/// which tests use, take about four times the stack of release builds.
fn on_worker_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn long_chains_are_refused_before_minijinja_parses_them() {
    // Each of these overflowed a 2 MiB stack and aborted the process before.
    let sources = [
        format!("{{{{ {} }}}}", chain("a", "~", 10_000)),
        format!("{{{{ {} }}}}", chain("a", " or ", 6_000)),
        format!("{{{{ {}a }}}}", "not ".repeat(6_000)),
        format!("{{{{ {}1 }}}}", "-".repeat(8_000)),
        format!("{{{{ a{} }}}}", "()".repeat(8_000)),
        format!("{{{{ a{} }}}}", "|trim".repeat(5_000)),
    ];
    on_worker_stack(move || {
        for source in &sources {
            let err = Template::compile(source).unwrap_err();
            assert_eq!(
                err,
                TemplateError::ExpressionTooLong {
                    line: Line(Some(1)),
                    max: MAX_TAG_TOKENS
                },
                "{}",
                &source[..40]
            );
        }
    });
}

#[test]
fn deep_nesting_and_long_elif_chains_are_refused() {
    let elifs = format!("{{% if a %}}{}{{% endif %}}", "{% elif a %}x".repeat(2_000));
    let nested = format!("{}x{}", "{% if a %}".repeat(100), "{% endif %}".repeat(100));
    on_worker_stack(move || {
        for source in [elifs, nested] {
            let err = Template::compile(&source).unwrap_err();
            assert!(
                matches!(
                    err,
                    TemplateError::NestedTooDeep {
                        max: MAX_NESTING,
                        ..
                    }
                ),
                "{err:?}"
            );
        }
    });
}

#[test]
fn the_longest_allowed_tags_and_deepest_nesting_compile_and_render() {
    let operands = MAX_TAG_TOKENS / 2;
    let sources = [
        format!("{{{{ ({})|length }}}}", chain("a", " ~ ", operands - 4)),
        format!("{{{{ {} }}}}", chain("n", " + ", operands)),
        format!("{{{{ {} }}}}", chain("a", " or ", operands)),
        format!("{{{{ {}a }}}}", "not ".repeat(MAX_TAG_TOKENS - 1)),
        format!("{{{{ a{} }}}}", "|trim".repeat((MAX_TAG_TOKENS - 1) / 2)),
        format!(
            "{}{{% if a %}}{}{{% endif %}}{}",
            "{% if a %}".repeat(MAX_NESTING / 2),
            "{% elif a %}x".repeat(MAX_NESTING / 2 - 1),
            "{% endif %}".repeat(MAX_NESTING / 2)
        ),
        format!(
            "{}x{}",
            "{% for x in l %}".repeat(MAX_NESTING),
            "{% endfor %}".repeat(MAX_NESTING)
        ),
    ];
    on_worker_stack(move || {
        for source in &sources {
            let template = Template::compile(source).unwrap();
            template
                .render(&json!({"a": "a", "n": 1, "l": [1]}))
                .unwrap();
        }
    });
}

#[test]
fn only_the_variables_a_template_reads_count_towards_the_context_limit() {
    let profile = json!({"first_name": "Léa", "notes": "n".repeat(200_000)});
    assert_eq!(
        render("Bonjour {{ first_name }}", profile.clone()).unwrap(),
        "Bonjour Léa"
    );
    let err = render("{{ notes|length }}", profile).unwrap_err();
    assert_eq!(
        err,
        TemplateError::ContextTooLarge {
            max: MAX_CONTEXT_BYTES
        }
    );
    assert_eq!(
        err.to_string(),
        "the variables the template reads take more than 65536 bytes"
    );
}

#[test]
fn an_undefined_variable_in_a_concatenation_is_named() {
    let err = render("Code : {{ prefix ~ code }}", json!({"prefix": "A-"})).unwrap_err();
    assert_eq!(err.to_string(), "undefined variable `code` at line 1");
}

fn typical_context() -> Value {
    let attributes =
        json!({"first_name": "amélie", "last_name": "Durand", "city": "Lyon", "vip": true});
    let variables = json!({"code": "4821", "order": {"id": "A-12", "total": 42.5,
        "lines": [{"name": "Pain", "qty": 2}, {"name": "Lait", "qty": 1}, {"name": "Beurre", "qty": 3}]}});
    template_context(
        attributes.as_object().unwrap(),
        variables.as_object().unwrap(),
    )
}

#[test]
fn everyday_templates_render_as_before() {
    let context = typical_context();
    for (source, expected) in [
        (
            "Bonjour {{ first_name }}, votre code est {{ code }}",
            "Bonjour amélie, votre code est 4821",
        ),
        (
            "{{ first_name|capitalize }} {{ last_name|upper }}",
            "Amélie DURAND",
        ),
        ("{{ first_name ~ ' ' ~ last_name }}", "amélie Durand"),
        (
            "{{ (first_name ~ ' ' ~ last_name)|title }}",
            "Amélie Durand",
        ),
        ("{{ nickname|default(first_name) }}", "amélie"),
        ("{{ nickname|default('client') }}", "client"),
        (
            "{% if vip %}VIP {% elif city == 'Lyon' %}Lyonnais {% else %}Client {% endif %}",
            "VIP ",
        ),
        (
            "{% for l in order.lines %}{{ loop.index }}. {{ l.name|lower }} x{{ l.qty }}{% if not loop.last %}, {% endif %}{% endfor %}",
            "1. pain x2, 2. lait x1, 3. beurre x3",
        ),
        (
            "{% for l in order.lines if l.qty > 1 %}{{ l.name }} {% else %}none{% endfor %}",
            "Pain Beurre ",
        ),
        (
            "{{ order.lines|length }} articles, total {{ order.total }} €",
            "3 articles, total 42.5 €",
        ),
        ("{{ order.total + 7.5 }}", "50.0"),
        ("{{ ['a', 'b', city]|join(', ') }}", "a, b, Lyon"),
        ("{{ '  x  '|trim }}|{{ 'xxhixx'|trim('x') }}", "x|hi"),
        (
            "{{ 'Votre commande est prête à être retirée'|truncate(20) }}",
            "Votre commande...",
        ),
        (
            "{{ 'Votre commande est prête'|truncate(10, true, '…') }}",
            "Votre com…",
        ),
        ("{{ 'court'|truncate(10) }}", "court"),
        ("{{ code|int + 1 }}", "4822"),
        (
            "{{ 'a' in city }} {{ code is string }} {{ order.total is number }}",
            "False True True",
        ),
        (
            "https://x.example/{{ (city ~ ' ' ~ code)|urlencode }}",
            "https://x.example/Lyon%204821",
        ),
    ] {
        assert_eq!(
            render(source, context.clone()).unwrap(),
            expected,
            "{source}"
        );
    }
}

#[test]
fn a_message_s_fields_share_one_output_allowance() {
    let content: Content = serde_json::from_value(json!({
        "text": "{{ half }}",
        "quick_replies": [{"title": "{{ half }}"}]
    }))
    .unwrap();
    let context = json!({"half": "h".repeat(40_000)});
    let err = ContentTemplate::compile(&content)
        .unwrap()
        .render(&context)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "`quick_replies[0].title`: the personalised message is longer than 65536 bytes"
    );
}

#[test]
fn a_request_budget_is_shared_by_its_messages_and_then_refuses() {
    let content: Content = serde_json::from_value(
        json!({"text": "{% for l in order.lines %}{{ l.name }} {% endfor %}"}),
    )
    .unwrap();
    let template = ContentTemplate::compile(&content).unwrap();
    let context = typical_context();
    let mut one = RenderBudget::new(RenderLimits::REQUEST);
    template.render_within(&context, &mut one).unwrap();
    let per_message = one.spent();
    assert!(per_message.fuel > 0 && per_message.output_bytes == "Pain Lait Beurre ".len());

    let mut budget = RenderBudget::new(RenderLimits {
        fuel: per_message.fuel * 10,
        ..RenderLimits::REQUEST
    });
    for _ in 0..10 {
        template.render_within(&context, &mut budget).unwrap();
    }
    let err = template.render_within(&context, &mut budget).unwrap_err();
    assert_eq!(
        err,
        ContentTemplateError::BudgetExhausted {
            resource: Resource::Fuel,
            limit: per_message.fuel * 10
        }
    );
    assert!(
        err.to_string()
            .starts_with("the templates of this request together use more than"),
        "{err}"
    );
    assert_eq!(budget.left().fuel, 0);
}

#[test]
fn failed_renders_are_charged_to_the_request_too() {
    let content = |text: &str| -> ContentTemplate {
        ContentTemplate::compile(&serde_json::from_value(json!({"text": text})).unwrap()).unwrap()
    };
    let mut budget = RenderBudget::per_request();
    // A variable missing at once costs the probe that shows it failed early.
    content("{{ missing }}")
        .render_within(&json!({}), &mut budget)
        .unwrap_err();
    assert!(budget.spent().fuel <= 2_000, "{:?}", budget.spent());
    // A template that burns its fuel is charged all of it.
    let burner = content("{% for a in items %}{% for b in items %}{% endfor %}{% endfor %}");
    let before = budget.spent().fuel;
    let err = burner
        .render_within(&hostile_context(), &mut budget)
        .unwrap_err();
    assert!(
        matches!(
            &err,
            ContentTemplateError::Field {
                source: TemplateError::TooExpensive { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(budget.spent().fuel - before, MESSAGE_FUEL);
    // Work first, then a native error: charged as if it had burnt everything.
    let sneaky =
        content("{% for a in items %}{% for b in items %}{% endfor %}{% endfor %}{{ missing }}");
    let mut budget = RenderBudget::per_request();
    let context = json!({"items": (0..100).collect::<Vec<_>>()});
    sneaky.render_within(&context, &mut budget).unwrap_err();
    assert!(budget.spent().fuel > 10_000, "{:?}", budget.spent());
}

/// Expressions mixing `~`, `+`, `-`, brackets and filters, typed so that `+` only meets
/// numbers (where minijinja and the rewrite agree).
fn text_expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("s".to_owned()),
        Just("t".to_owned()),
        Just("o.p.q".to_owned()),
        Just("o['p'].q|trim|lower".to_owned()),
        "[a-z ]{0,3}".prop_map(|text| format!("'{text}'")),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} ~ {b}")),
            (inner.clone(), number_leaf()).prop_map(|(a, b)| format!("{a}~{b}")),
            inner.clone().prop_map(|a| format!("({a})")),
            inner.clone().prop_map(|a| format!("({a})|upper")),
            inner.clone().prop_map(|a| format!("{a}|trim")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("[{a}, {b}]|join('-')")),
        ]
    })
}

fn number_leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("n".to_owned()),
        Just("m".to_owned()),
        (0..100u32).prop_map(|n| n.to_string())
    ]
}

fn number_expr() -> impl Strategy<Value = String> {
    number_leaf().prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            (inner.clone(), text_expr(), text_expr())
                .prop_map(|(a, b, c)| format!("({a} if {b} == {c} else {a} - 1)")),
            (text_expr(), text_expr()).prop_map(|(a, b)| format!("(1 if {a} in {b} else 2)")),
            (text_expr(), text_expr())
                .prop_map(|(a, b)| format!("(1 if {a} not in [{b}, 's'] else 2)")),
            (inner.clone(), inner.clone())
                .prop_map(|(a, b)| format!("(3 if {a} < {b} <= 50 else 4)")),
            inner.clone().prop_map(|a| format!("[{a}, 1, 2][0]")),
            text_expr().prop_map(|a| format!("(({a}) ~ 'xyz')[1]|length")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} + {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} - {b}")),
            inner.clone().prop_map(|a| format!("({a})")),
            text_expr().prop_map(|a| format!("({a})|length")),
            (inner, text_expr()).prop_map(|(a, b)| format!("{a} + ({b})|length")),
        ]
    })
}

/// minijinja as it comes, with the filters the expressions use.
fn plain_render(source: &str, context: &Value) -> String {
    let mut env = minijinja::Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.render_str(source, context).unwrap()
}

proptest! {
    #[test]
    fn rewritten_concatenations_and_additions_mean_what_minijinja_means(
        text in text_expr(),
        number in number_expr(),
    ) {
        let context = json!({"s": "Ab", "t": " c ", "n": 7, "m": -3, "o": {"p": {"q": "Deep"}}});
        let source = format!("{{{{ {text} }}}}|{{{{ {number} }}}}|{{{{ {text} ~ ({number}) }}}}|{{{{ {number} + ({text})|length }}}}");
        let expected = plain_render(&source, &context);
        let ours = render(&source, context);
        prop_assume!(!matches!(ours, Err(TemplateError::ExpressionTooLong { .. })));
        prop_assert_eq!(ours.unwrap(), expected, "{}", source);
    }
}

/// Soup of expression tokens: most of it is not valid, which is the point.
fn expression_soup() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("a"),
        Just("n"),
        Just("'x'"),
        Just("1"),
        Just("~"),
        Just("+"),
        Just("-"),
        Just("("),
        Just(")"),
        Just("["),
        Just("]"),
        Just(","),
        Just("|upper"),
        Just("|length"),
        Just("|default(1)"),
        Just("=="),
        Just("<"),
        Just(" in "),
        Just(" not "),
        Just(" if "),
        Just(" else "),
        Just(" and "),
        Just(" is defined"),
        Just(".b"),
        Just(".0"),
        Just(" "),
    ];
    prop::collection::vec(token, 1..24).prop_map(|tokens| tokens.concat())
}

proptest! {
    #[test]
    fn whatever_minijinja_parses_and_the_policy_allows_still_parses_once_rewritten(
        expr in expression_soup(),
    ) {
        let source = format!("{{{{ {expr} }}}}");
        let mut plain = minijinja::Environment::new();
        plain.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        let context = json!({"a": {"b": "x"}, "n": 2});
        if let Ok(expected) = plain.template_from_str(&source) {
            match Template::compile(&source) {
                Ok(template) => {
                    // Where both render, they agree.
                    if let (Ok(ours), Ok(theirs)) = (template.render(&context), expected.render(&context)) {
                        prop_assert_eq!(ours, theirs, "{}", source);
                    }
                }
                Err(TemplateError::NotAllowed { .. }) => {}
                Err(err) => prop_assert!(false, "{source}: {err}"),
            }
        }
    }
}

#[test]
fn missing_values_behave_as_in_minijinja_once_rewritten() {
    let mut plain = minijinja::Environment::new();
    plain.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    plain.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    let context = json!({"m": {"k": "v"}, "l": ["a"], "s": "text"});
    for source in [
        "{{ x is defined }}",
        "{{ m.z is defined }}",
        "{{ m['z'] is defined }}",
        "{{ l[5] is defined }}",
        "{{ s[9] is defined }}",
        "{{ x[0] is defined }}",
        "{{ m.z is undefined }}",
        "{{ (m.z ~ 'a') is defined }}",
        "{{ m.z == 1 }}",
        "{{ 'k' in m }}",
        "{{ x in l }}",
        "{% if m.z %}y{% else %}n{% endif %}",
        "{% if l[3] %}y{% else %}n{% endif %}",
        "{{ m.z|default('d') }}",
        "{{ l[9]|default('d') }}",
        "{{ s[1] }}{{ l[0] }}{{ l[-1] }}{{ m['k'] }}",
        "{{ none ~ 'x' }}",
        "{{ m.z + 1 }}",
    ] {
        let theirs = plain.render_str(source, &context).map_err(|err| err.kind());
        let ours = render(source, context.clone());
        match (&theirs, &ours) {
            (Ok(theirs), Ok(ours)) => assert_eq!(ours, theirs, "{source}"),
            (Err(_), Err(_)) => {}
            _ => panic!("{source}: minijinja {theirs:?}, ours {ours:?}"),
        }
    }
}
