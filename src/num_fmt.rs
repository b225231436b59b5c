//! [`Num`]: a small `Display` for floats in error messages.
//!
//! Any `{}` or `{:?}` of an `f32` / `f64` pulls in `core`'s float formatting (shortest round-trip
//! Grisu with a Dragon fallback, exact formatting, their tables: about 17 KB of wasm) — in the
//! size-tuned engine module (`make pkg`) that was only ever reached from validation messages.
//! Those need a readable value, not a round-trip one: `Num` prints integers exactly (below
//! 10^15) and anything else with up to 6 significant digits (`0.1`, `-2.5`, `1.23457e-7`,
//! `NaN`, `inf`).

use std::fmt;

/// A float for a message (see the module doc). `Num(x.into())` for an `f32`.
#[derive(Clone, Copy)]
pub struct Num(pub f64);

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let x = self.0;
        if x.is_nan() {
            return f.write_str("NaN");
        }
        if x.is_sign_negative() && x != 0.0 {
            f.write_str("-")?;
        }
        let a = x.abs();
        if a.is_infinite() {
            return f.write_str("inf");
        }
        if a.fract() == 0.0 && a < 1e15 {
            return write!(f, "{}", a as u64);
        }
        // a = d · 10^e with d of 6 digits (a is not 0: 0 is an integer above).
        let (mut m, mut e) = (a, 0i32);
        while m >= 1e6 {
            m /= 10.0;
            e += 1;
        }
        while m < 1e5 {
            m *= 10.0;
            e -= 1;
        }
        let mut d = m.round() as u64;
        if d == 1_000_000 {
            d = 100_000;
            e += 1;
        }
        let mut digits = 6i32;
        while d.is_multiple_of(10) {
            d /= 10;
            e += 1;
            digits -= 1;
        }
        // Digits before the decimal point.
        let point = digits + e;
        if !(-4..=15).contains(&point) {
            let s = d.to_string();
            let (head, tail) = s.split_at(1);
            let dot = if tail.is_empty() { "" } else { "." };
            write!(f, "{head}{dot}{tail}e{}", point - 1)
        } else if point <= 0 {
            f.write_str("0.")?;
            for _ in 0..-point {
                f.write_str("0")?;
            }
            write!(f, "{d}")
        } else if point >= digits {
            write!(f, "{d}")?;
            for _ in 0..point - digits {
                f.write_str("0")?;
            }
            Ok(())
        } else {
            let s = d.to_string();
            let (head, tail) = s.split_at(point as usize);
            write!(f, "{head}.{tail}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Num;

    #[test]
    fn formats() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (-3.0, "-3"),
            (0.5, "0.5"),
            (0.1, "0.1"),
            (-2.25, "-2.25"),
            (1.5e-7, "1.5e-7"),
            (0.000123, "0.000123"),
            (123.456789, "123.457"),
            (1.0 / 3.0, "0.333333"),
            (0.9999999, "1"),
            (2e20, "2e20"),
            (1.25e20, "1.25e20"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (1e15 + 0.5, "1e15"),
            (f32::MAX as f64, "3.40282e38"),
        ];
        for &(x, want) in cases {
            assert_eq!(Num(x).to_string(), want, "{x}");
        }
        assert_eq!(Num(1.1f32.into()).to_string(), "1.1");
    }
}
