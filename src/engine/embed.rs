//! The built-in `'hashed-ngrams'` embedder: no model, deterministic, **lexical quality**.
//!
//! A text becomes a bag of features — lowercased words (Unicode alphanumeric runs), word
//! bigrams, and character n-grams of each word with boundary marks (`<word>`, n = 3..=5, as in
//! fastText) — each hashed (FNV-1a 64 with a per-kind seed, then the SplitMix64 finaliser) to a
//! bucket in `0..dims` and a sign (signed feature hashing, so collisions cancel on average instead
//! of adding up), then the vector is L2-normalised. Text without any word gives the zero vector.
//!
//! It finds memories that share words or word pieces with the query (typos, inflections), not
//! paraphrases: on LoCoMo it is close to BM25, well below a sentence-embedding model (numbers in
//! the README). The hash, the features and their weights are part of the format
//! ([`HashedNgrams::VERSION`]): stored vectors stay valid only while these do not change.

use super::error::EngineError;
use crate::num_fmt::Num;

/// Feature weights and n-gram range of [`HashedNgrams`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NgramConfig {
    /// Weight of a word unigram.
    pub word: f32,
    /// Weight of a word bigram.
    pub bigram: f32,
    /// Total weight of one word's character n-grams (shared equally among them).
    pub chars: f32,
    /// Smallest character n-gram.
    pub char_min: usize,
    /// Largest character n-gram.
    pub char_max: usize,
    /// Skip common English function words ([`STOP_WORDS`]) entirely.
    pub skip_stop_words: bool,
    /// Use `1 + ln(count)` instead of the raw count for repeated features.
    pub sublinear: bool,
}

/// Common English function words, skipped when [`NgramConfig::skip_stop_words`] is set (a
/// model-free stand-in for idf: without corpus statistics these would dominate every vector).
pub const STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "after",
    "again",
    "all",
    "also",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "been",
    "before",
    "being",
    "but",
    "by",
    "can",
    "could",
    "d",
    "did",
    "do",
    "does",
    "doing",
    "for",
    "from",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "just",
    "ll",
    "m",
    "me",
    "my",
    "myself",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "re",
    "s",
    "same",
    "she",
    "should",
    "so",
    "some",
    "such",
    "t",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "too",
    "up",
    "us",
    "ve",
    "very",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "would",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

impl Default for NgramConfig {
    fn default() -> Self {
        NgramConfig {
            word: 1.0,
            bigram: 0.0,
            chars: 1.0,
            char_min: 3,
            char_max: 5,
            skip_stop_words: true,
            sublinear: false,
        }
    }
}

/// The built-in embedder. See the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct HashedNgrams {
    dims: usize,
    config: NgramConfig,
}

const SEED_WORD: u64 = 0x5157_4f52_4400_0001;
const SEED_BIGRAM: u64 = 0x5157_4f52_4400_0002;
const SEED_CHAR: u64 = 0x5157_4f52_4400_0003;

fn hash(seed: u64, parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0xFF;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        for &b in *p {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    // SplitMix64 finaliser: spreads FNV's weak low bits.
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^ (h >> 31)
}

impl HashedNgrams {
    /// The embedder's name in the JS API.
    pub const NAME: &'static str = "hashed-ngrams";
    /// Version of the features and hash; vectors from another version are not comparable.
    pub const VERSION: u32 = 1;

    /// An embedder into `dims` buckets with the default features.
    pub fn new(dims: usize) -> Result<Self, EngineError> {
        Self::with_config(dims, NgramConfig::default())
    }

    /// An embedder with explicit features (`dims ≥ 1`, `1 ≤ char_min ≤ char_max ≤ 16`, finite
    /// non-negative weights).
    pub fn with_config(dims: usize, config: NgramConfig) -> Result<Self, EngineError> {
        if dims == 0 || dims > 1 << 20 {
            return Err(EngineError::invalid(
                "dims",
                format!("must be in 1..=1048576, got {dims}"),
            ));
        }
        let w_ok = [config.word, config.bigram, config.chars]
            .iter()
            .all(|w| w.is_finite() && *w >= 0.0);
        if !w_ok
            || config.char_min == 0
            || config.char_min > config.char_max
            || config.char_max > 16
        {
            return Err(EngineError::invalid(
                "config",
                format!(
                    "invalid n-gram config: word {}, bigram {}, chars {}, char n-grams {}..={}",
                    Num(config.word.into()),
                    Num(config.bigram.into()),
                    Num(config.chars.into()),
                    config.char_min,
                    config.char_max
                ),
            ));
        }
        Ok(HashedNgrams { dims, config })
    }

    /// Output dimension.
    pub fn dims(&self) -> usize {
        self.dims
    }

    #[inline]
    fn add(&self, out: &mut [f32], h: u64, w: f32) {
        let bucket = (((h >> 32) * self.dims as u64) >> 32) as usize;
        out[bucket] += if h & 1 == 0 { w } else { -w };
    }

    /// Embed `text` into a new L2-normalised vector of `dims` values.
    pub fn embed(&self, text: &str) -> Vec<f32> {
        let mut out = vec![0.0f32; self.dims];
        self.fill(text, &mut out);
        out
    }

    /// Embed every text, row-major `[texts.len(), dims]`.
    pub fn embed_batch<S: AsRef<str>>(&self, texts: &[S]) -> Vec<f32> {
        let mut out = vec![0.0f32; texts.len() * self.dims];
        for (t, row) in texts.iter().zip(out.chunks_exact_mut(self.dims)) {
            self.fill(t.as_ref(), row);
        }
        out
    }

    fn fill(&self, text: &str, out: &mut [f32]) {
        // `out` has `dims` values by construction.
        let _ = self.embed_into(text, out);
    }

    /// Embed `text` into `out` (overwritten); `out.len()` must equal `dims`.
    pub fn embed_into(&self, text: &str, out: &mut [f32]) -> Result<(), EngineError> {
        if out.len() != self.dims {
            return Err(EngineError::DimensionMismatch {
                name: "out",
                expected: self.dims,
                got: out.len(),
            });
        }
        out.fill(0.0);
        let c = &self.config;
        let mut words = words(text);
        if c.skip_stop_words {
            words.retain(|w| STOP_WORDS.binary_search(&w.as_str()).is_err());
        }
        // (feature hash, weight); repeated features are merged below.
        let mut feats: Vec<(u64, f32)> = Vec::new();
        let mut marked: Vec<char> = Vec::new();
        let mut buf = String::new();
        for (i, w) in words.iter().enumerate() {
            feats.push((hash(SEED_WORD, &[w.as_bytes()]), c.word));
            if i > 0 && c.bigram > 0.0 {
                let h = hash(SEED_BIGRAM, &[words[i - 1].as_bytes(), w.as_bytes()]);
                feats.push((h, c.bigram));
            }
            if c.chars > 0.0 {
                marked.clear();
                marked.push('<');
                marked.extend(w.chars());
                marked.push('>');
                let l = marked.len();
                let count: usize = (c.char_min..=c.char_max)
                    .map(|n| (l + 1).saturating_sub(n))
                    .sum();
                if count == 0 {
                    continue;
                }
                let each = c.chars / count as f32;
                for n in c.char_min..=c.char_max {
                    for s in 0..(l + 1).saturating_sub(n) {
                        buf.clear();
                        buf.extend(&marked[s..s + n]);
                        feats.push((hash(SEED_CHAR, &[buf.as_bytes()]), each));
                    }
                }
            }
        }
        crate::sort::sort_by(&mut feats, |a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let mut i = 0;
        while i < feats.len() {
            let h = feats[i].0;
            let mut j = i;
            let mut sum = 0.0f32;
            while j < feats.len() && feats[j].0 == h {
                sum += feats[j].1;
                j += 1;
            }
            let n = (j - i) as f32;
            let w = if c.sublinear && n > 1.0 {
                sum / n * (1.0 + n.ln())
            } else {
                sum
            };
            self.add(out, h, w);
            i = j;
        }
        let norm = out.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            for v in out.iter_mut() {
                *v /= norm;
            }
        }
        Ok(())
    }
}

/// Lowercased runs of Unicode alphanumeric characters.
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for ch in text.chars() {
        if ch.is_alphanumeric() {
            super::lower::push_lowercase(&mut cur, ch);
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_normalised_and_lexical() {
        let e = HashedNgrams::new(384).unwrap();
        let a = e.embed("Caroline went to the LGBTQ support group");
        assert_eq!(a, e.embed("Caroline went to the LGBTQ support group"));
        let n: f32 = a.iter().map(|v| v * v).sum();
        assert!((n - 1.0).abs() < 1e-5);
        let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(a, b)| a * b).sum::<f32>();
        let near = e.embed("the support groups Caroline went to");
        let far = e.embed("Melanie painted a sunrise over the lake");
        assert!(dot(&a, &near) > dot(&a, &far) + 0.2);
        assert!(e.embed("").iter().all(|&v| v == 0.0));
        assert!(e.embed("  ,;  ").iter().all(|&v| v == 0.0));
    }

    #[test]
    fn stop_words_sorted() {
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn rejects_bad_config() {
        assert!(HashedNgrams::new(0).is_err());
        let bad = NgramConfig {
            char_min: 4,
            char_max: 3,
            ..NgramConfig::default()
        };
        assert!(HashedNgrams::with_config(8, bad).is_err());
    }
}
