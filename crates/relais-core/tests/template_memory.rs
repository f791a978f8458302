//! Hostile templates stay within a few megabytes of heap, measured by counting every
//! allocation. One test in its own binary, so no other test allocates meanwhile.

use relais_core::template::{MAX_WORK_BYTES, Template, TemplateError};
use serde_json::{Value, json};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            let now = CURRENT.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size
                - layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        } else {
            CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The most one render may hold: its work allowance, the output, the value being built and
/// minijinja's own structures, with room to spare.
const BOUND: usize = 2 * MAX_WORK_BYTES + 512 * 1024;

fn chain(operand: &str, operator: &str, count: usize) -> String {
    vec![operand; count].join(operator)
}

#[test]
fn every_hostile_template_is_refused_within_a_few_megabytes() {
    let context: Value = json!({
        "big": "x".repeat(40_000),
        "items": (0..500).collect::<Vec<_>>(),
    });
    let lists: Value = json!({
        "items": (0..100).collect::<Vec<_>>(),
        "l1": vec![json!([]); 1_800],
        "l2": vec![json!([]); 1_800],
    });
    let mut nested_join = "'0123456789'".to_owned();
    for _ in 0..10 {
        nested_join = format!("'0123456789'|join({nested_join})");
    }
    let bombs = [
        format!("{{{{ ({nested_join})|length }}}}"),
        format!("{{{{ ({})|length }}}}", chain("big", " ~ ", 60)),
        "{% for i in items %}{{ (big ~ i)|length }}{% endfor %}".to_owned(),
        format!("{{{{ [{}]|length }}}}", chain("big ~ 'z'", ", ", 25)),
        format!("{{{{ [{}]|length }}}}", chain("big|upper", ", ", 25)),
        "{% for i in items %}{{ (items|string)|length }}{% endfor %}".to_owned(),
        "{{ big|replace('', big) }}".to_owned(),
        format!("{{{{ ({})|length }}}}", chain("big", " + ", 60)),
        "{% for i in items %}{% for c in big %}{% endfor %}{% endfor %}".to_owned(),
        "{% for i in items %}{{ big }}{% endfor %}".to_owned(),
        "{% for a in items %}{% for b in items %}{{ big|length }}{% endfor %}{% endfor %}"
            .to_owned(),
    ];
    let list_bombs = [
        "{% for a in items %}{% for b in items %}{% if l1 == l2 %}{% endif %}{% endfor %}{% endfor %}",
        "{% for a in items %}{% for b in items %}{% if 1 in l1 %}{% endif %}{% endfor %}{% endfor %}",
        "{% for a in items %}{{ l1|join }}{% endfor %}",
    ];
    let bombs = bombs
        .iter()
        .map(|source| (source.as_str(), &context))
        .chain(list_bombs.iter().map(|source| (*source, &lists)));
    for (source, context) in bombs {
        let template = Template::compile(source).unwrap();
        let before = CURRENT.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let err = template.render(context).unwrap_err();
        let peak = PEAK.load(Ordering::Relaxed) - before;
        assert!(
            matches!(
                err,
                TemplateError::ValueTooLong { .. }
                    | TemplateError::BuildsTooMuch { .. }
                    | TemplateError::OutputTooLong { .. }
                    | TemplateError::TooExpensive { .. }
                    | TemplateError::Render { .. }
            ),
            "{source}: {err:?}"
        );
        assert!(
            peak < BOUND,
            "{}…: {peak} bytes at the peak ({err})",
            &source[..source.len().min(60)]
        );
        println!("{:>9} bytes  {err}", peak);
    }
}
