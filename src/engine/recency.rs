//! Recency: exponential time decay from an episode's **event time** with a configurable
//! half-life. `part = 0.5^(age / half_life)` with `age = max(0, now − time)`, so the part is 1
//! for an episode happening now (or in the future) and halves every `half_life`.

use super::error::EngineError;

/// One day in milliseconds.
pub const DAY_MS: f64 = 86_400_000.0;

/// Default half-life: 30 days.
pub const DEFAULT_HALF_LIFE_MS: f64 = 30.0 * DAY_MS;

/// Time-decay settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recency {
    /// Half-life in milliseconds (> 0; `f64::INFINITY` = no decay).
    pub half_life_ms: f64,
}

impl Default for Recency {
    fn default() -> Self {
        Recency {
            half_life_ms: DEFAULT_HALF_LIFE_MS,
        }
    }
}

impl Recency {
    /// `Ok` if the half-life is positive (infinity allowed, NaN not).
    pub fn validate(&self) -> Result<(), EngineError> {
        if self.half_life_ms > 0.0 {
            Ok(())
        } else {
            Err(EngineError::invalid(
                "halfLife",
                format!(
                    "must be > 0 ms, got {}",
                    crate::num_fmt::Num(self.half_life_ms)
                ),
            ))
        }
    }

    /// The recency part of an episode at `time_ms` seen at `now_ms`, in `(0, 1]`
    /// (0 only after a long underflow).
    pub fn part(&self, time_ms: f64, now_ms: f64) -> f64 {
        let age = now_ms - time_ms;
        if age.is_nan() || age <= 0.0 {
            return 1.0;
        }
        (-(age / self.half_life_ms) * std::f64::consts::LN_2).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_every_half_life() {
        let r = Recency {
            half_life_ms: DAY_MS,
        };
        assert_eq!(r.part(10.0, 10.0), 1.0);
        assert_eq!(r.part(20.0, 10.0), 1.0);
        assert!((r.part(0.0, DAY_MS) - 0.5).abs() < 1e-12);
        assert!((r.part(0.0, 3.0 * DAY_MS) - 0.125).abs() < 1e-12);
        let never = Recency {
            half_life_ms: f64::INFINITY,
        };
        assert_eq!(never.part(0.0, 1e15), 1.0);
        assert!(Recency { half_life_ms: 0.0 }.validate().is_err());
        assert!(Recency {
            half_life_ms: f64::NAN
        }
        .validate()
        .is_err());
    }
}
