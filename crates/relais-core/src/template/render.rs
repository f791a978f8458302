//! One render of one compiled template within an allowance, reporting what it spent even
//! when it fails, so a request's budget is charged for failed messages too.

use super::env::{METER_KEY, Meter, Tripped};
use super::{Line, MAX_CONTEXT_BYTES, MAX_VALUE_BYTES, RenderLimits, Resource, TemplateError};
use minijinja::value::{DynObject, Value as JinjaValue};
use minijinja::{Environment, ErrorKind};
use serde_json::Value;
use std::io;
use std::sync::Arc;

/// minijinja reports the fuel a render used only when it succeeds. A failed render is
/// run again with this much fuel: if it fails the same way, the first run used less than
/// this; if not, it is charged its whole allowance. A missing variable in row 9,000 of a
/// batch then costs 2,000 instructions of the request's budget, not 50,000.
const PROBE_FUEL: u64 = 1_000;

pub(super) enum Failure {
    Template(TemplateError),
    /// The allowance for `resource` ran out (the caller knows whose limit that was).
    Exhausted {
        resource: Resource,
        line: Line,
    },
    /// Anything else minijinja refused (an undefined variable, a type error), for the
    /// caller to word with the template's source and variables.
    Jinja(minijinja::Error),
}

pub(super) struct Run {
    pub result: Result<String, Failure>,
    pub spent: RenderLimits,
}

/// Renders `name` from `env` with the variables `roots` taken from `context`.
pub(super) fn run(
    env: &Environment<'static>,
    name: &str,
    roots: &[String],
    context: &Value,
    allowance: RenderLimits,
) -> Run {
    let refuse = |resource| Run {
        result: Err(Failure::Exhausted {
            resource,
            line: Line(None),
        }),
        spent: RenderLimits::ZERO,
    };
    if allowance.fuel == 0 {
        return refuse(Resource::Fuel);
    }
    if allowance.work_bytes == 0 {
        return refuse(Resource::Work);
    }
    let (root, context_bytes) = match select(roots, context) {
        Ok(selected) => selected,
        // Measuring the variables was work too.
        Err(err) => {
            return Run {
                result: Err(Failure::Template(err)),
                spent: RenderLimits {
                    work_bytes: MAX_CONTEXT_BYTES.min(allowance.work_bytes),
                    ..RenderLimits::ZERO
                },
            };
        }
    };
    if context_bytes > allowance.work_bytes {
        return Run {
            spent: RenderLimits {
                work_bytes: allowance.work_bytes,
                ..RenderLimits::ZERO
            },
            ..refuse(Resource::Work)
        };
    }
    let mut run = attempt(env, name, &root, context_bytes, allowance);
    let out_of_fuel = matches!(
        run.result,
        Err(Failure::Exhausted {
            resource: Resource::Fuel,
            ..
        })
    );
    if run.result.is_err() && !out_of_fuel {
        run.spent.fuel = allowance.fuel;
        if allowance.fuel > PROBE_FUEL {
            let probe = RenderLimits {
                fuel: PROBE_FUEL,
                ..allowance
            };
            let again = attempt(env, name, &root, context_bytes, probe);
            let failed_early = !matches!(
                again.result,
                Ok(_)
                    | Err(Failure::Exhausted {
                        resource: Resource::Fuel,
                        ..
                    })
            );
            run.spent.fuel = if failed_early {
                2 * PROBE_FUEL
            } else {
                allowance.fuel + PROBE_FUEL
            };
        }
    }
    run
}

fn attempt(
    env: &Environment<'static>,
    name: &str,
    root: &[(String, JinjaValue)],
    context_bytes: usize,
    allowance: RenderLimits,
) -> Run {
    // The compiled template is shared; only a render with less than the environment's
    // fuel pays for a copy of it (a few hash-map entries and reference counts).
    let limited;
    let env = if env.fuel() == Some(allowance.fuel + 1) {
        env
    } else {
        let mut copy = env.clone();
        copy.set_fuel(Some(allowance.fuel + 1));
        limited = copy;
        &limited
    };
    let meter = Arc::new(Meter::new(
        allowance.work_bytes - context_bytes,
        MAX_VALUE_BYTES,
    ));
    let context: JinjaValue = root
        .iter()
        .map(|(key, value)| (key.as_str(), value.clone()))
        .chain(std::iter::once((
            METER_KEY,
            JinjaValue::from_dyn_object(DynObject::new(meter.clone())),
        )))
        .collect();
    let mut out = CappedWriter {
        buffer: Vec::new(),
        room: allowance.output_bytes,
        overflowed: false,
    };
    let rendered = env.get_template(name).and_then(|template| {
        template
            .render_captured_to(context, &mut out)
            .map(|captured| captured.state().fuel_levels().map_or(0, |(used, _)| used))
    });
    let mut spent = RenderLimits {
        fuel: allowance.fuel,
        output_bytes: out.buffer.len(),
        work_bytes: allowance.work_bytes - meter.work_left(),
    };
    let result = match rendered {
        Ok(fuel) => {
            spent.fuel = fuel;
            String::from_utf8(out.buffer).map_err(|_| {
                Failure::Template(TemplateError::Render {
                    line: Line(None),
                    message: "the output is not valid UTF-8".into(),
                })
            })
        }
        Err(err) => {
            let line = Line(err.line());
            let exhausted = |resource| Failure::Exhausted { resource, line };
            Err(if out.overflowed {
                exhausted(Resource::Output)
            } else if err.kind() == ErrorKind::OutOfFuel {
                exhausted(Resource::Fuel)
            } else {
                match meter.tripped() {
                    Some(Tripped::Work) => exhausted(Resource::Work),
                    Some(Tripped::Value) => Failure::Template(TemplateError::ValueTooLong {
                        line,
                        max: MAX_VALUE_BYTES,
                    }),
                    None => Failure::Jinja(err),
                }
            })
        }
    };
    Run { result, spent }
}

/// The variables the template reads, converted for minijinja, and their size.
fn select(
    roots: &[String],
    context: &Value,
) -> Result<(Vec<(String, JinjaValue)>, usize), TemplateError> {
    let mut size = 0;
    let mut selected = Vec::with_capacity(roots.len());
    for root in roots {
        if let Some(value) = context.get(root) {
            size += root.len() + json_size(value, MAX_CONTEXT_BYTES - size.min(MAX_CONTEXT_BYTES));
            if size > MAX_CONTEXT_BYTES {
                return Err(TemplateError::ContextTooLarge {
                    max: MAX_CONTEXT_BYTES,
                });
            }
            selected.push((root.clone(), JinjaValue::from_serialize(value)));
        }
    }
    Ok((selected, size))
}

/// What converting one value of the variables for minijinja costs, in bytes: ~90 ns a
/// value, where copying a byte takes well under 1 ns.
const VALUE_BYTES: usize = 16;

/// The size of `value` as a template's variable: its texts' bytes and [`VALUE_BYTES`] for
/// every value, counted no further than just past `limit`.
fn json_size(value: &Value, limit: usize) -> usize {
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => VALUE_BYTES,
        Value::String(text) => VALUE_BYTES + text.len(),
        Value::Array(items) => {
            let mut size = VALUE_BYTES;
            for item in items {
                size += json_size(item, limit.saturating_sub(size));
                if size > limit {
                    break;
                }
            }
            size
        }
        Value::Object(entries) => {
            let mut size = VALUE_BYTES;
            for (key, item) in entries {
                size += key.len() + json_size(item, limit.saturating_sub(size));
                if size > limit {
                    break;
                }
            }
            size
        }
    }
}

/// Collects output up to `room` bytes, then refuses more, which stops the render.
struct CappedWriter {
    buffer: Vec<u8>,
    room: usize,
    overflowed: bool,
}

impl io::Write for CappedWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.buffer.len() + bytes.len() > self.room {
            self.overflowed = true;
            return Err(io::Error::other("message template output limit reached"));
        }
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
