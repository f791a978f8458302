//! What rendering may cost: [`RenderLimits`] for one message or one request, and the
//! [`RenderBudget`] a caller carries through every message of a request so that 10,000
//! messages cannot each spend a message's worth.

use super::{MAX_OUTPUT_BYTES, MAX_WORK_BYTES, MESSAGE_FUEL};
use std::fmt;

/// Amounts of the three things a render spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderLimits {
    /// minijinja instructions (its "fuel").
    pub fuel: u64,
    /// Bytes of personalised text written out.
    pub output_bytes: usize,
    /// Bytes of values built along the way: the copy of the variables a template reads,
    /// and every text made by `~`, `join`, `upper`…
    pub work_bytes: usize,
}

impl RenderLimits {
    /// One message, all its personalised fields together.
    pub const MESSAGE: RenderLimits = RenderLimits {
        fuel: MESSAGE_FUEL,
        output_bytes: MAX_OUTPUT_BYTES,
        work_bytes: MAX_WORK_BYTES,
    };

    /// One API request, all its messages together, sized for a batch of
    /// 10,000 messages (the batch endpoint's maximum): 200 instructions each (a greeting
    /// takes a dozen, a loop over ten order lines ~150), 3.2 KB of text each (a 20-segment
    /// SMS), 1.6 KB of variables and built values each. The slowest cases measured
    /// (`examples/template_bench.rs`) spend it in about 0.3 s of one core.
    pub const REQUEST: RenderLimits = RenderLimits {
        fuel: 2_000_000,
        output_bytes: 32 * 1024 * 1024,
        work_bytes: 16 * 1024 * 1024,
    };

    /// The smaller of each amount.
    pub fn min(self, other: RenderLimits) -> RenderLimits {
        RenderLimits {
            fuel: self.fuel.min(other.fuel),
            output_bytes: self.output_bytes.min(other.output_bytes),
            work_bytes: self.work_bytes.min(other.work_bytes),
        }
    }

    pub(super) fn saturating_sub(self, spent: RenderLimits) -> RenderLimits {
        RenderLimits {
            fuel: self.fuel.saturating_sub(spent.fuel),
            output_bytes: self.output_bytes.saturating_sub(spent.output_bytes),
            work_bytes: self.work_bytes.saturating_sub(spent.work_bytes),
        }
    }

    pub(super) fn saturating_add(self, spent: RenderLimits) -> RenderLimits {
        RenderLimits {
            fuel: self.fuel.saturating_add(spent.fuel),
            output_bytes: self.output_bytes.saturating_add(spent.output_bytes),
            work_bytes: self.work_bytes.saturating_add(spent.work_bytes),
        }
    }

    pub(super) fn get(&self, resource: Resource) -> u64 {
        match resource {
            Resource::Fuel => self.fuel,
            Resource::Output => u64::try_from(self.output_bytes).unwrap_or(u64::MAX),
            Resource::Work => u64::try_from(self.work_bytes).unwrap_or(u64::MAX),
        }
    }

    pub(super) const ZERO: RenderLimits = RenderLimits {
        fuel: 0,
        output_bytes: 0,
        work_bytes: 0,
    };
}

/// One of the amounts in [`RenderLimits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Fuel,
    Output,
    Work,
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Resource::Fuel => "instructions",
            Resource::Output => "bytes of personalised text",
            Resource::Work => "bytes of values built along the way",
        })
    }
}

/// What a request may still spend on templates. The caller makes one per request
/// ([`RenderBudget::per_request`]) and passes it to every
/// [`ContentTemplate::render_within`](super::ContentTemplate::render_within); once it is
/// spent, the remaining messages are refused with
/// [`ContentTemplateError::BudgetExhausted`](super::ContentTemplateError::BudgetExhausted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderBudget {
    limits: RenderLimits,
    spent: RenderLimits,
}

impl RenderBudget {
    pub fn new(limits: RenderLimits) -> RenderBudget {
        RenderBudget {
            limits,
            spent: RenderLimits::ZERO,
        }
    }

    /// A budget of [`RenderLimits::REQUEST`].
    pub fn per_request() -> RenderBudget {
        RenderBudget::new(RenderLimits::REQUEST)
    }

    pub fn limits(&self) -> RenderLimits {
        self.limits
    }

    pub fn spent(&self) -> RenderLimits {
        self.spent
    }

    pub fn left(&self) -> RenderLimits {
        self.limits.saturating_sub(self.spent)
    }

    pub(super) fn charge(&mut self, spent: RenderLimits) {
        self.spent = self.spent.saturating_add(spent);
    }
}
