//! The BERT uncased WordPiece tokenizer of all-MiniLM-L6-v2, as the model's own `tokenizer.json`
//! defines it (`BertNormalizer` + `BertPreTokenizer` + `WordPiece`):
//!
//! 1. clean-up: NUL, U+FFFD and every "other" character (Unicode categories Cc, Cf, Cn, Co, Cs;
//!    tab/newline/CR excepted) are dropped, every whitespace character becomes a space;
//! 2. each CJK ideograph is surrounded by spaces (its own word);
//! 3. accents are stripped (Unicode NFD, then non-spacing marks Mn dropped), then lower-casing;
//! 4. words are split on whitespace, and every punctuation character (ASCII punctuation or a
//!    Unicode P* category) is a word of its own;
//! 5. each word becomes word pieces by greedy longest match against the vocabulary, continuation
//!    pieces prefixed with `##`; a word with no full cover, or longer than 100 characters, is one
//!    `[UNK]`;
//! 6. `[CLS]` … `[SEP]` around the pieces, truncated to [`MAX_TOKENS`](super::MAX_TOKENS) ids in
//!    total (so at most 254 word pieces).

use std::collections::HashMap;

use unicode_general_category::{get_general_category, GeneralCategory as Gc};
use unicode_normalization::UnicodeNormalization;

use super::{EncoderError, MAX_TOKENS};

/// Words longer than this many characters become one `[UNK]`.
pub const MAX_CHARS_PER_WORD: usize = 100;

/// A WordPiece vocabulary with the BERT uncased basic tokenizer in front of it.
#[derive(Debug, Clone)]
pub struct WordPiece {
    ids: HashMap<String, u32>,
    vocab_len: usize,
    unk: u32,
    cls: u32,
    sep: u32,
    pad: u32,
}

impl WordPiece {
    /// Builds the tokenizer from the text of `vocab.txt` (one token a line, id = line number).
    /// It must hold `[UNK]`, `[CLS]`, `[SEP]` and `[PAD]`.
    pub fn from_vocab(text: &str) -> Result<Self, EncoderError> {
        let mut ids = HashMap::new();
        let mut vocab_len = 0usize;
        for (i, line) in text.lines().enumerate() {
            let token = line.strip_suffix('\r').unwrap_or(line);
            let id = u32::try_from(i).map_err(|_| EncoderError::Vocab {
                reason: "more than 2^32 tokens".into(),
            })?;
            // The first occurrence of a duplicated token wins (as in the reference tokenizer).
            ids.entry(token.to_string()).or_insert(id);
            vocab_len = i + 1;
        }
        if vocab_len == 0 {
            return Err(EncoderError::Vocab {
                reason: "empty".into(),
            });
        }
        let special = |name: &str| {
            ids.get(name).copied().ok_or_else(|| EncoderError::Vocab {
                reason: format!("no {name} token"),
            })
        };
        Ok(WordPiece {
            unk: special("[UNK]")?,
            cls: special("[CLS]")?,
            sep: special("[SEP]")?,
            pad: special("[PAD]")?,
            ids,
            vocab_len,
        })
    }

    /// Number of ids in the vocabulary (valid ids are `0..len`).
    pub fn len(&self) -> usize {
        self.vocab_len
    }

    /// Always false: a built vocabulary holds at least the special tokens.
    pub fn is_empty(&self) -> bool {
        self.vocab_len == 0
    }

    /// The id of `[PAD]`.
    pub fn pad_id(&self) -> u32 {
        self.pad
    }

    /// The id of `token`, if it is in the vocabulary.
    pub fn id(&self, token: &str) -> Option<u32> {
        self.ids.get(token).copied()
    }

    /// The model input for `text`: `[CLS]`, its word pieces, `[SEP]`, at most
    /// [`MAX_TOKENS`] ids in total.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = vec![self.cls];
        let budget = MAX_TOKENS - 1;
        'words: for word in basic_tokenize(text) {
            for id in self.word_pieces(&word) {
                if out.len() == budget {
                    break 'words;
                }
                out.push(id);
            }
        }
        out.push(self.sep);
        out
    }

    /// Greedy longest-match WordPiece of one word (already normalised).
    fn word_pieces(&self, word: &str) -> Vec<u32> {
        let chars: Vec<(usize, char)> = word.char_indices().collect();
        if chars.len() > MAX_CHARS_PER_WORD {
            return vec![self.unk];
        }
        let mut pieces = Vec::new();
        let mut start = 0usize; // index into `chars`
        let mut candidate = String::new();
        while start < chars.len() {
            let from = chars[start].0;
            let mut found = None;
            let mut end = chars.len();
            while end > start {
                let to = chars.get(end).map_or(word.len(), |c| c.0);
                candidate.clear();
                if start > 0 {
                    candidate.push_str("##");
                }
                candidate.push_str(&word[from..to]);
                if let Some(&id) = self.ids.get(candidate.as_str()) {
                    found = Some(id);
                    break;
                }
                end -= 1;
            }
            match found {
                Some(id) => {
                    pieces.push(id);
                    start = end;
                }
                None => return vec![self.unk],
            }
        }
        pieces
    }
}

/// The BERT basic tokenizer: normalisation (clean-up, CJK spacing, accent stripping,
/// lower-casing) and the split into words and punctuation.
pub fn basic_tokenize(text: &str) -> Vec<String> {
    // Clean-up and CJK spacing.
    let mut cleaned = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\0' || c == '\u{fffd}' || is_control(c) {
            continue;
        }
        if is_whitespace(c) {
            cleaned.push(' ');
        } else if is_cjk(c) {
            cleaned.push(' ');
            cleaned.push(c);
            cleaned.push(' ');
        } else {
            cleaned.push(c);
        }
    }
    // Accent stripping, then lower-casing.
    let mut normal = String::with_capacity(cleaned.len());
    for c in cleaned.nfd() {
        if get_general_category(c) != Gc::NonspacingMark {
            normal.extend(c.to_lowercase());
        }
    }
    // Whitespace split, punctuation isolated.
    let mut words = Vec::new();
    let mut cur = String::new();
    for c in normal.chars() {
        if c.is_whitespace() {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
        } else if is_punctuation(c) {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            words.push(c.to_string());
        } else {
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

fn is_whitespace(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || c.is_whitespace()
}

fn is_control(c: char) -> bool {
    if matches!(c, '\t' | '\n' | '\r') {
        return false;
    }
    matches!(
        get_general_category(c),
        Gc::Control | Gc::Format | Gc::Unassigned | Gc::PrivateUse | Gc::Surrogate
    )
}

fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(
            get_general_category(c),
            Gc::ConnectorPunctuation
                | Gc::DashPunctuation
                | Gc::ClosePunctuation
                | Gc::FinalPunctuation
                | Gc::InitialPunctuation
                | Gc::OtherPunctuation
                | Gc::OpenPunctuation
        )
}

/// The CJK Unified Ideographs blocks (not Hangul, Hiragana or Katakana), as in BERT.
fn is_cjk(c: char) -> bool {
    matches!(
        c as u32,
        0x4E00..=0x9FFF
            | 0x3400..=0x4DBF
            | 0x20000..=0x2A6DF
            | 0x2A700..=0x2B73F
            | 0x2B740..=0x2B81F
            | 0x2B920..=0x2CEAF
            | 0xF900..=0xFAFF
            | 0x2F800..=0x2FA1F
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> WordPiece {
        let vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n,\nworld\n!\nun\n##aff\n##able\na\ncafe\n";
        WordPiece::from_vocab(vocab).unwrap()
    }

    #[test]
    fn basic_tokenizer_splits_and_normalises() {
        assert_eq!(
            basic_tokenize("Héllo,\tWORLD!\u{200b}x 中文"),
            vec!["hello", ",", "world", "!", "x", "中", "文"]
        );
        assert!(basic_tokenize(" \u{7}\n").is_empty());
    }

    #[test]
    fn wordpiece_longest_match_unk_and_truncation() {
        let t = tiny();
        assert_eq!(t.encode("Hello, world!"), vec![2, 4, 5, 6, 7, 3]);
        assert_eq!(t.encode("unaffable"), vec![2, 8, 9, 10, 3]);
        assert_eq!(t.encode("unaffablex café"), vec![2, 1, 12, 3]);
        assert_eq!(t.encode(&"a".repeat(101)), vec![2, 1, 3]);
        let long = t.encode(&"a ".repeat(1000));
        assert_eq!(long.len(), MAX_TOKENS);
        assert_eq!((long[0], long[254], long[255]), (2, 11, 3));
        assert_eq!(t.encode(""), vec![2, 3]);
    }

    #[test]
    fn vocab_without_specials_is_rejected() {
        let e = WordPiece::from_vocab("a\nb\n").unwrap_err();
        assert_eq!(e.code(), "ENCODER_BAD_VOCAB");
        assert!(WordPiece::from_vocab("").is_err());
    }
}
