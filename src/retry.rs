//! The retry delay policy, in one place: exponential backoff with jitter
//! (`backon`'s), each caller with its own first and longest delay. The
//! loops that retry stay with their callers, because what a retry must do
//! first differs (a commit reloads and rebases, a shard reader asks for a new
//! iterator); how long they wait does not.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// How long to wait before each retry: `first`, doubling to `longest`,
/// with jitter between half and all of the delay, so that writers that
/// failed together do not retry together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay before the first retry (at most).
    pub first: Duration,
    /// The longest delay (at most).
    pub longest: Duration,
}

/// Commits and catalog writes: a lost compare-and-swap is retried at once
/// against the new table, so the wait is short.
pub const COMMIT: Backoff = Backoff {
    first: Duration::from_millis(10),
    longest: Duration::from_secs(2),
};

/// Kinesis calls that failed or were throttled.
pub const KINESIS: Backoff = Backoff {
    first: Duration::from_millis(400),
    longest: Duration::from_secs(10),
};

impl Backoff {
    /// The delay before retry number `attempt` (0 for the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        // Past 16 doublings every delay is `longest`: no need to walk further.
        let steps = attempt.min(16) as usize;
        ExponentialBuilder::default()
            .with_min_delay(self.first / 2)
            .with_max_delay(self.longest / 2)
            .with_jitter()
            .without_max_times()
            .build()
            .nth(steps)
            .unwrap_or(self.longest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_first_to_longest_with_jitter_inside_each_step() {
        for policy in [COMMIT, KINESIS] {
            for attempt in 0..40u32 {
                let step = policy
                    .first
                    .saturating_mul(1 << attempt.min(20))
                    .min(policy.longest);
                // backon doubles in f32 seconds: allow its rounding.
                let slack = Duration::from_micros(1);
                for _ in 0..20 {
                    let d = policy.delay(attempt);
                    assert!(
                        d + slack >= step / 2 && d <= step + slack,
                        "{policy:?} attempt {attempt}: {d:?} outside [{:?}, {step:?}]",
                        step / 2
                    );
                }
            }
        }
    }
}
