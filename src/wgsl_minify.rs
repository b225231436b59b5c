//! WGSL minification, run at build time (`build.rs`) on every `shaders/*.wgsl` so that the
//! shader sources compiled into the wasm module carry no comments or indentation.
//!
//! The rules only remove what WGSL's grammar ignores: comments (line comments and nested block
//! comments), leading and trailing blank space, empty lines, and the blank space between two
//! tokens when the two characters around it cannot form one token (an identifier or number on
//! both sides, or a multi-character operator such as `--`, `>=`, `->`, `>>`). Line breaks between
//! non-empty lines are kept (one per line), so a naga error still points to a short line.
//! `tests/shaders.rs` checks that every minified source equals this function applied to its file
//! and that both validate with naga.

/// Multi-character tokens that two characters separated by blank space must not form.
const JOINED: [&str; 21] = [
    "--", "++", "&&", "||", "<<", ">>", "==", "!=", "<=", ">=", "->", "+=", "-=", "*=", "/=", "%=",
    "&=", "|=", "^=", "//", "/*",
];

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether the blank space between `a` (last character before it) and `b` (first after it)
/// can be dropped without changing the tokens.
fn can_join(a: char, b: char) -> bool {
    if is_word(a) && is_word(b) {
        return false;
    }
    let mut pair = String::with_capacity(2);
    pair.push(a);
    pair.push(b);
    !JOINED.contains(&pair.as_str()) && pair != "*/"
}

/// Strip comments (nested `/* */` included) from `src`, keeping line breaks.
fn strip_comments(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut chars = src.chars().peekable();
    let mut depth = 0usize;
    while let Some(c) = chars.next() {
        if depth > 0 {
            if c == '*' && chars.peek() == Some(&'/') {
                chars.next();
                depth -= 1;
                if depth == 0 {
                    out.push(' ');
                }
            } else if c == '/' && chars.peek() == Some(&'*') {
                chars.next();
                depth += 1;
            } else if c == '\n' {
                out.push('\n');
            }
            continue;
        }
        if c == '/' && chars.peek() == Some(&'/') {
            // A line comment runs to the end of the line; the line break stays.
            for d in chars.by_ref() {
                if d == '\n' {
                    out.push('\n');
                    break;
                }
            }
        } else if c == '/' && chars.peek() == Some(&'*') {
            chars.next();
            depth = 1;
        } else {
            out.push(c);
        }
    }
    out
}

/// The minified form of a WGSL source (see the module documentation for the rules).
pub fn minify(src: &str) -> String {
    let stripped = strip_comments(src);
    let mut out = String::with_capacity(stripped.len());
    for line in stripped.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        // Collapse each run of blank space to nothing when the characters around it cannot
        // join into one token, else to one space.
        let mut pending_space = false;
        for c in line.chars() {
            if c.is_whitespace() {
                pending_space = true;
                continue;
            }
            if pending_space {
                let prev = out.chars().next_back().unwrap_or('\n');
                if !can_join(prev, c) {
                    out.push(' ');
                }
                pending_space = false;
            }
            out.push(c);
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::minify;

    #[test]
    fn strips_comments_and_blank_space() {
        let src = "// head\nconst A: u32 = 1u; // one\n\n/* block /* nested */ still */fn f() -> f32 {\n    return -(-1.0);\n}\n";
        assert_eq!(
            minify(src),
            "const A:u32=1u;\nfn f()->f32{\nreturn-(-1.0);\n}\n"
        );
    }

    #[test]
    fn keeps_tokens_apart() {
        assert_eq!(minify("x = a - -b;"), "x=a- -b;\n");
        assert_eq!(minify("let y = a > = b;"), "let y=a> =b;\n");
        assert_eq!(minify("var<private> x: u32;"), "var<private>x:u32;\n");
        assert_eq!(minify("a / *p"), "a/ *p\n");
    }
}
