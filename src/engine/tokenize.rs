//! The lexical tokenizer: lowercase `[a-z0-9]+` runs, exactly as the LoCoMo baseline
//! (`re.findall(r"[a-z0-9]+", text.lower())` in Python).
//!
//! Any Unicode text is accepted without panicking. Like Python's `str.lower()`, characters are
//! lowercased with Unicode's full mapping *before* matching, so the two non-ASCII characters
//! whose lowercase contains ASCII letters behave as in the baseline: `İ` (U+0130) lowercases to
//! `i` + U+0307 (giving the token `i`, ended by the combining dot) and the Kelvin sign `K`
//! (U+212A) lowercases to `k`. Every other non-ASCII character separates tokens, so text in
//! other scripts produces no lexical tokens (the vector side still covers it).

/// Call `f` with every token of `text`, in order (repeats included).
pub fn for_each_token(text: &str, mut f: impl FnMut(&str)) {
    let mut buf = String::new();
    let push = |c: char, buf: &mut String| {
        if c.is_ascii_alphanumeric() {
            buf.push(c.to_ascii_lowercase());
            true
        } else {
            false
        }
    };
    for c in text.chars() {
        if c.is_ascii() {
            if !push(c, &mut buf) && !buf.is_empty() {
                f(&buf);
                buf.clear();
            }
        } else {
            // `non_ascii_lower` is what `c.to_lowercase()` gives here (see the test that checks
            // every code point), without carrying Unicode's lowercase table.
            let (head, ends) = non_ascii_lower(c);
            if let Some(a) = head {
                push(a, &mut buf);
            }
            if ends && !buf.is_empty() {
                f(&buf);
                buf.clear();
            }
        }
    }
    if !buf.is_empty() {
        f(&buf);
    }
}

/// The part of `c.to_lowercase()` (`c` not ASCII) the tokenizer sees: its leading ASCII
/// alphanumeric, if any, and whether a non-token character follows (which ends the token). Only
/// `İ` (U+0130, lowercase `i` + U+0307) and the Kelvin sign (U+212A, lowercase `k`) lowercase to
/// ASCII letters; any other non-ASCII character lowercases to non-ASCII characters only.
fn non_ascii_lower(c: char) -> (Option<char>, bool) {
    match c {
        '\u{130}' => (Some('i'), true),
        '\u{212A}' => (Some('k'), false),
        _ => (None, true),
    }
}

/// The tokens of `text` as owned strings, in order (repeats included).
pub fn tokenize(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for_each_token(text, |t| out.push(t.to_string()));
    out
}

/// Whether `s` is a token this tokenizer can produce (non-empty, `[a-z0-9]+`).
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_runs_lowercased() {
        assert_eq!(
            tokenize("Caroline: I went to a LGBTQ support-group yesterday!! 2023"),
            vec![
                "caroline",
                "i",
                "went",
                "to",
                "a",
                "lgbtq",
                "support",
                "group",
                "yesterday",
                "2023"
            ]
        );
        assert_eq!(tokenize("I'm"), vec!["i", "m"]);
        assert!(tokenize("").is_empty());
        assert!(tokenize("  ,.;  ").is_empty());
    }

    /// The tokenizer as first written, over `char::to_lowercase`.
    fn tokenize_with_to_lowercase(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = String::new();
        for lc in text.chars().flat_map(char::to_lowercase) {
            if lc.is_ascii_alphanumeric() {
                buf.push(lc.to_ascii_lowercase());
            } else if !buf.is_empty() {
                out.push(std::mem::take(&mut buf));
            }
        }
        if !buf.is_empty() {
            out.push(buf);
        }
        out
    }

    #[test]
    fn non_ascii_lower_is_to_lowercase() {
        for c in (0x80u32..=0x10FFFF).filter_map(char::from_u32) {
            let text = format!("a{c}b{c} {c}");
            assert_eq!(tokenize(&text), tokenize_with_to_lowercase(&text), "{c:?}");
        }
    }

    #[test]
    fn unicode_like_python_lower() {
        // Python: re.findall(r"[a-z0-9]+", "café İstanbul KELVIN naïve 東京 x".lower())
        assert_eq!(
            tokenize("café İstanbul \u{212A}elvin naïve 東京 x"),
            vec!["caf", "i", "stanbul", "kelvin", "na", "ve", "x"]
        );
        // Arbitrary code points never panic.
        let weird: String = (0u32..0x3000)
            .step_by(7)
            .filter_map(char::from_u32)
            .collect();
        let toks = tokenize(&weird);
        assert!(toks.iter().all(|t| is_token(t)));
    }
}
