//! `char::to_lowercase` for the `hashed-ngrams` embedder, from a small table.
//!
//! `core`'s lowercase table is a sorted list of about 1,400 (character, lowercase) pairs, 11.5 KB
//! of wasm; the engine module (`make pkg`) only needed it for [`super::embed`]'s word
//! lowercasing. `build.rs` writes the same mapping as runs (`start + i * stride` maps to itself
//! plus `delta`; about a tenth of the size) from the toolchain's own `std`, so the result is
//! `char::to_lowercase`'s, character for character (the test below checks every code point).

include!(concat!(env!("OUT_DIR"), "/lower_runs.rs"));

/// Append the lowercase of `c` to `out`, exactly as `out.extend(c.to_lowercase())`.
pub fn push_lowercase(out: &mut String, c: char) {
    if c.is_ascii() {
        out.push(c.to_ascii_lowercase());
        return;
    }
    if c == '\u{130}' {
        // The one multi-character lowercase: `i` + COMBINING DOT ABOVE.
        out.push_str("i\u{307}");
        return;
    }
    let u = c as u32;
    let i = LOWER_RUNS.partition_point(|r| r.0 & 0x1F_FFFF <= u);
    if i > 0 {
        let (a, delta) = LOWER_RUNS[i - 1];
        let start = a & 0x1F_FFFF;
        let stride = ((a >> 21) & 1) + 1;
        let len = (a >> 22) + 1;
        let k = u - start;
        if k.is_multiple_of(stride) && k / stride < len {
            if let Some(l) = char::from_u32(u.wrapping_add_signed(delta)) {
                out.push(l);
                return;
            }
        }
    }
    out.push(c);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_as_to_lowercase_everywhere() {
        let (mut got, mut want) = (String::new(), String::new());
        for c in (0u32..=0x10FFFF).filter_map(char::from_u32) {
            got.clear();
            want.clear();
            push_lowercase(&mut got, c);
            want.extend(c.to_lowercase());
            assert_eq!(got, want, "{c:?}");
        }
    }

    #[test]
    fn table_is_small() {
        assert!(LOWER_RUNS.len() < 400, "{} runs", LOWER_RUNS.len());
    }
}
