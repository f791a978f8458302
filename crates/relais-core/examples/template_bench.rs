//! How long a template render takes, for an everyday message and for hostile ones.
//!
//! ```sh
//! cargo run --release -p relais-core --example template_bench
//! ```
//!
//! The first part (everyday templates) uses only `compile` and `render`, which older
//! versions of `relais-core` have too, for a before/after comparison.

use relais_core::content::Content;
use relais_core::template::{ContentTemplate, RenderBudget, Template, template_context};
use serde_json::{Value, json};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Runs `f` for about `budget` and returns the time per call.
fn per_call(budget: Duration, mut f: impl FnMut()) -> Duration {
    // Warm up, then find how many calls fit.
    f();
    let mut calls = 0u32;
    let start = Instant::now();
    while start.elapsed() < budget {
        f();
        calls += 1;
    }
    start.elapsed() / calls.max(1)
}

fn main() {
    let attributes = json!({"first_name": "Amélie", "last_name": "Durand", "city": "Lyon",
        "loyalty": {"tier": "gold", "points": 1234}, "notes": "n".repeat(2_000)});
    let variables = json!({"code": "4821"});
    let context = template_context(
        attributes.as_object().expect("an object"),
        variables.as_object().expect("an object"),
    );

    println!("everyday templates (time per render, best of 5 runs of 1 s):");
    let greeting = "Bonjour {{ first_name }}, votre code est {{ code }}";
    let order = "Bonjour {{ first_name|capitalize }}, commande :\n{% for l in lines %}- {{ l.name }} x{{ l.qty }}\n{% endfor %}Total : {{ total }} €";
    let order_context = json!({"first_name": "amélie", "total": 42.5, "lines":
        (0..10).map(|i| json!({"name": format!("article {i}"), "qty": i % 3 + 1})).collect::<Vec<_>>()});
    for (name, source, context) in [
        ("greeting", greeting, &context),
        ("order of 10 lines", order, &order_context),
    ] {
        let template = Template::compile(source).expect("compiles");
        let best = (0..5)
            .map(|_| {
                per_call(Duration::from_secs(1), || {
                    black_box(template.render(black_box(context)).expect("renders"));
                })
            })
            .min()
            .unwrap_or_default();
        println!("  {name:<22} {:>8.2} µs", best.as_secs_f64() * 1e6);
    }
    let content: Content =
        serde_json::from_value(json!({"text": greeting})).expect("a valid content");
    let compiled = ContentTemplate::compile(&content).expect("compiles");
    let best = (0..5)
        .map(|_| {
            per_call(Duration::from_secs(1), || {
                black_box(compiled.render(black_box(&context)).expect("renders"));
            })
        })
        .min()
        .unwrap_or_default();
    println!(
        "  {:<22} {:>8.2} µs",
        "greeting as content",
        best.as_secs_f64() * 1e6
    );
    let best = (0..5)
        .map(|_| {
            per_call(Duration::from_secs(1), || {
                black_box(Template::compile(black_box(greeting)).expect("compiles"));
            })
        })
        .min()
        .unwrap_or_default();
    println!(
        "  {:<22} {:>8.2} µs",
        "compile the greeting",
        best.as_secs_f64() * 1e6
    );

    // Variables just under the 64 KiB a template may read.
    println!("\nhostile templates (one render each, with 30 KB texts and lists of 1,800 items):");
    let hostile: Value = json!({"big": "x".repeat(30_000), "other": "y".repeat(30_000),
        "items": (0..100).collect::<Vec<_>>()});
    let lists: Value = json!({"items": (0..100).collect::<Vec<_>>(),
        "l1": vec![json!([]); 1_800], "l2": vec![json!([]); 1_800]});
    let nums: Value = json!({"items": (0..100).collect::<Vec<_>>(),
        "l1": vec![json!(1); 1_800], "l2": vec![json!(1); 1_800]});
    let mut nested_join = "'0123456789'".to_owned();
    let too_big: Value = json!({"big": "x".repeat(40_000), "other": "y".repeat(40_000)});
    for _ in 0..5 {
        nested_join = format!("'0123456789'|join({nested_join})");
    }
    let bombs = [
        ("nested join, 6 levels", format!("{{{{ ({nested_join})|length }}}}")),
        ("`~` chain of 60", format!("{{{{ ({})|length }}}}", vec!["big"; 60].join(" ~ "))),
        ("`~` in a loop", "{% for i in items %}{{ (big ~ i)|length }}{% endfor %}".to_owned()),
        ("list of 25 `~`", format!("{{{{ [{}]|length }}}}", vec!["big ~ big"; 25].join(", "))),
        ("`in` in a loop", "{% for a in items %}{% for b in items %}{% if 'zz' in big %}{% endif %}{% endfor %}{% endfor %}".to_owned()),
        ("`==` in a loop", "{% for a in items %}{% for b in items %}{% if big == other %}{% endif %}{% endfor %}{% endfor %}".to_owned()),
        ("`length` in a loop", "{% for a in items %}{% for b in items %}{% if big|length > 1 %}{% endif %}{% endfor %}{% endfor %}".to_owned()),
        ("loop over a text", "{% for a in items %}{% for c in big %}{% endfor %}{% endfor %}".to_owned()),
        ("list as text in a loop", "{% for i in items %}{{ (items|string)|length }}{% endfor %}".to_owned()),
    ];
    let list_bombs = [
        ("variables too big", "{{ big }}{{ other }}".to_owned(), &too_big),
        ("`==` on lists of lists", "{% for a in items %}{% for b in items %}{% if l1 == l2 %}{% endif %}{% endfor %}{% endfor %}".to_owned(), &lists),
        ("`<` on lists of lists", "{% for a in items %}{% for b in items %}{% if l1 < l2 %}{% endif %}{% endfor %}{% endfor %}".to_owned(), &lists),
        ("`in` a list of lists", "{% for a in items %}{% for b in items %}{% if 1 in l1 %}{% endif %}{% endfor %}{% endfor %}".to_owned(), &lists),
        ("`==` on lists of numbers", "{% for a in items %}{% for b in items %}{% if l1 == l2 %}{% endif %}{% endfor %}{% endfor %}".to_owned(), &nums),
        ("`in` a list of numbers", "{% for a in items %}{% for b in items %}{% if 2 in l1 %}{% endif %}{% endfor %}{% endfor %}".to_owned(), &nums),
        ("small `==` in a loop", "{% for a in items %}{% for b in items %}{% if a == b %}{% endif %}{% endfor %}{% endfor %}".to_owned(), &nums),
        ("filters in a loop", "{% for a in items %}{% for b in items %}{{ ''|trim|length }}{% endfor %}{% endfor %}".to_owned(), &nums),
    ];
    let bombs: Vec<(&str, String, &Value)> = bombs
        .iter()
        .map(|(name, source)| (*name, source.clone(), &hostile))
        .chain(list_bombs)
        .collect();
    for (name, source, hostile) in &bombs {
        let started = Instant::now();
        let outcome = Template::compile(source).and_then(|template| template.render(hostile));
        let took = started.elapsed();
        let outcome = match outcome {
            Ok(text) => format!("rendered {} bytes", text.len()),
            Err(err) => err.to_string(),
        };
        println!(
            "  {name:<24} {:>10.2} ms  {outcome}",
            took.as_secs_f64() * 1e3
        );
    }

    println!("\nwhole requests: 10,000 messages with one request budget:");
    let greeting_content: Content =
        serde_json::from_value(json!({"text": greeting})).expect("a valid content");
    let requests = std::iter::once(("greeting", greeting_content, &context)).chain(
        bombs.iter().map(|(name, source, hostile)| {
            let content = serde_json::from_value(json!({"text": source})).expect("a valid content");
            (*name, content, *hostile)
        }),
    );
    for (name, content, context) in requests {
        let template = match ContentTemplate::compile(&content) {
            Ok(template) => template,
            Err(err) => {
                println!("  {name:<24} refused when compiled: {err}");
                continue;
            }
        };
        let mut budget = RenderBudget::per_request();
        let started = Instant::now();
        let rendered = (0..10_000)
            .filter(|_| template.render_within(context, &mut budget).is_ok())
            .count();
        let spent = budget.spent();
        println!(
            "  {name:<24} {:>8.1} ms  {rendered:>5} rendered; spent {} fuel, {} output bytes, {} work bytes",
            started.elapsed().as_secs_f64() * 1e3,
            spent.fuel,
            spent.output_bytes,
            spent.work_bytes
        );
    }
}
