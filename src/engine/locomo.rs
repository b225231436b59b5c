//! The LoCoMo retrieval evaluation set (`$MNEMO_EVAL_DIR/locomo`, see its README): parsing of
//! the turn / question JSONL and packed f32 embeddings from bytes (so the same code runs in wasm
//! on fetched files), turn times, namespaces, and the published baseline numbers.
//!
//! Conventions shared by the native runner (`examples/eval.rs`) and the browser one:
//! - one namespace per conversation, named by its `sample_id` (e.g. `conv-26`);
//! - a turn's document id is its row in `turns.jsonl` (conversation order, so ties broken by
//!   lower id are broken by conversation order, as in the baseline);
//! - a turn's event time is its session's `session_date_time` (parsed as UTC) plus its position
//!   within the session in seconds ([`TURN_STEP_MS`]);
//! - a question is asked right after its conversation's last turn ([`Locomo::end_time_ms`]).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::error::EngineError;
use super::eval::{outcome, Metrics, Outcome};
use super::fading::{FadingMode, FadingState};
use super::fusion::FusionConfig;
use super::lexical::LexicalIndex;
use super::recall::MemCorpus;
use super::recall::{recall, Corpus, RecallRequest};
use super::DocId;

/// Time between consecutive turns of a session.
pub const TURN_STEP_MS: i64 = 1_000;

/// Names of the question categories (the source stores only the integers).
pub const CATEGORY_NAMES: [(u8, &str); 5] = [
    (1, "multi-hop"),
    (2, "temporal"),
    (3, "open-domain"),
    (4, "single-hop"),
    (5, "adversarial"),
];

/// One dialogue turn (a memory item).
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    /// Conversation index in the source.
    pub conv: u32,
    /// Conversation name, used as the namespace.
    pub sample_id: String,
    /// Dialogue id, e.g. `D1:3`.
    pub dia_id: String,
    /// Session number.
    pub session: u32,
    /// The session's date as in the source, e.g. `1:56 pm on 8 May, 2023`.
    pub session_date_time: String,
    /// Speaker.
    pub speaker: String,
    /// The exact string embedded and indexed.
    pub embed_text: String,
    /// Event time, ms since the Unix epoch.
    pub time_ms: i64,
}

/// One question.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    /// Conversation index.
    pub conv: u32,
    /// Index in the source's `qa` list.
    pub qa_index: u32,
    /// The question text (embedded as is).
    pub question: String,
    /// Category 1..=5.
    pub category: u8,
    /// Evidence turns, as document ids (rows of `turns.jsonl`).
    pub evidence: Vec<DocId>,
}

/// The parsed data set.
#[derive(Debug, Clone)]
pub struct Locomo {
    /// Turns in file (conversation) order; turn `i` has document id `i`.
    pub turns: Vec<Turn>,
    /// Questions in file order.
    pub questions: Vec<Question>,
    /// Embedding dimension.
    pub dims: usize,
    /// Row-major `[turns, dims]`.
    pub turn_vectors: Vec<f32>,
    /// Row-major `[questions, dims]`.
    pub question_vectors: Vec<f32>,
}

#[derive(Deserialize)]
struct RawTurn {
    conv: u32,
    sample_id: String,
    dia_id: String,
    session: u32,
    session_date_time: String,
    speaker: String,
    embed_text: String,
}

#[derive(Deserialize)]
struct RawQuestion {
    conv: u32,
    qa_index: u32,
    question: String,
    category: u8,
    evidence: Vec<String>,
}

fn data_err(file: &str, line: usize, reason: impl Into<String>) -> EngineError {
    EngineError::EvalData {
        file: file.to_string(),
        line,
        reason: reason.into(),
    }
}

fn parse_lines<T: for<'de> Deserialize<'de>>(
    file: &str,
    text: &str,
) -> Result<Vec<T>, EngineError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| data_err(file, i + 1, e.to_string())))
        .collect()
}

fn parse_f32(file: &str, bytes: &[u8], rows: usize) -> Result<(Vec<f32>, usize), EngineError> {
    if rows == 0 || !bytes.len().is_multiple_of(4) || !(bytes.len() / 4).is_multiple_of(rows) {
        return Err(data_err(
            file,
            0,
            format!("{} bytes is not rows = {rows} of f32 vectors", bytes.len()),
        ));
    }
    let v: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(data_err(file, 0, format!("non-finite value at index {i}")));
    }
    let dims = v.len() / rows;
    Ok((v, dims))
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parse a LoCoMo session date such as `1:56 pm on 8 May, 2023` into ms since the Unix epoch
/// (read as UTC). `None` if it does not have that shape or names an impossible date.
pub fn parse_session_date_time(s: &str) -> Option<i64> {
    let cleaned = s.replace(',', " ");
    let parts: Vec<&str> = cleaned.split_whitespace().collect();
    let [time, ampm, on, day, month, year] = parts.as_slice() else {
        return None;
    };
    if !on.eq_ignore_ascii_case("on") {
        return None;
    }
    let (h, m) = time.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    if !(1..=12).contains(&h) || m > 59 {
        return None;
    }
    let hour = match ampm.to_ascii_lowercase().as_str() {
        "am" => h % 12,
        "pm" => h % 12 + 12,
        _ => return None,
    };
    const MONTHS: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    let ml = month.to_ascii_lowercase();
    let mi = MONTHS
        .iter()
        .position(|name| *name == ml || (ml.len() >= 3 && name.starts_with(&ml)))?
        as u32
        + 1;
    let day: u32 = day.parse().ok()?;
    let year: i64 = year.parse().ok()?;
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let dim = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if day == 0 || day > dim[mi as usize - 1] || !(1..=9999).contains(&year) {
        return None;
    }
    let days = days_from_civil(year, mi, day);
    Some(((days * 24 + hour as i64) * 60 + m as i64) * 60_000)
}

impl Locomo {
    /// Parse the four files' contents (`turns.jsonl`, `turns.f32`, `questions.jsonl`,
    /// `questions.f32`). Every evidence id must name a turn of the question's conversation.
    pub fn parse(
        turns_jsonl: &str,
        turns_f32: &[u8],
        questions_jsonl: &str,
        questions_f32: &[u8],
    ) -> Result<Self, EngineError> {
        let raw: Vec<RawTurn> = parse_lines("turns.jsonl", turns_jsonl)?;
        let mut turns = Vec::with_capacity(raw.len());
        let mut ids: BTreeMap<(u32, String), DocId> = BTreeMap::new();
        let mut pos_in_session = 0i64;
        for (i, t) in raw.into_iter().enumerate() {
            let base = parse_session_date_time(&t.session_date_time).ok_or_else(|| {
                data_err(
                    "turns.jsonl",
                    i + 1,
                    format!("unparsable session_date_time {:?}", t.session_date_time),
                )
            })?;
            match turns.last() {
                Some(p) if p_same_session(p, &t) => pos_in_session += 1,
                _ => pos_in_session = 0,
            }
            if ids.insert((t.conv, t.dia_id.clone()), i as DocId).is_some() {
                return Err(data_err(
                    "turns.jsonl",
                    i + 1,
                    format!("duplicate {}", t.dia_id),
                ));
            }
            turns.push(Turn {
                conv: t.conv,
                sample_id: t.sample_id,
                dia_id: t.dia_id,
                session: t.session,
                session_date_time: t.session_date_time,
                speaker: t.speaker,
                embed_text: t.embed_text,
                time_ms: base + pos_in_session * TURN_STEP_MS,
            });
        }
        let rawq: Vec<RawQuestion> = parse_lines("questions.jsonl", questions_jsonl)?;
        let mut questions = Vec::with_capacity(rawq.len());
        for (i, q) in rawq.into_iter().enumerate() {
            let evidence = q
                .evidence
                .iter()
                .map(|e| {
                    ids.get(&(q.conv, e.clone())).copied().ok_or_else(|| {
                        data_err("questions.jsonl", i + 1, format!("unknown evidence {e}"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            if evidence.is_empty() {
                return Err(data_err("questions.jsonl", i + 1, "no evidence"));
            }
            questions.push(Question {
                conv: q.conv,
                qa_index: q.qa_index,
                question: q.question,
                category: q.category,
                evidence,
            });
        }
        let (turn_vectors, dims) = parse_f32("turns.f32", turns_f32, turns.len())?;
        let (question_vectors, qdims) = parse_f32("questions.f32", questions_f32, questions.len())?;
        if qdims != dims {
            return Err(data_err(
                "questions.f32",
                0,
                format!("dimension {qdims} differs from the turns' {dims}"),
            ));
        }
        Ok(Locomo {
            turns,
            questions,
            dims,
            turn_vectors,
            question_vectors,
        })
    }

    /// Read `dir/{turns,questions}.{jsonl,f32}` (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load_dir(dir: &std::path::Path) -> Result<Self, EngineError> {
        let read = |name: &str| {
            std::fs::read(dir.join(name))
                .map_err(|e| data_err(&dir.join(name).display().to_string(), 0, e.to_string()))
        };
        let text =
            |name: &str| String::from_utf8(read(name)?).map_err(|_| data_err(name, 0, "not UTF-8"));
        Locomo::parse(
            &text("turns.jsonl")?,
            &read("turns.f32")?,
            &text("questions.jsonl")?,
            &read("questions.f32")?,
        )
    }

    /// The conversations, ascending.
    pub fn conversations(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.turns.iter().map(|t| t.conv).collect();
        v.dedup();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Document ids (rows) of conversation `conv`, ascending.
    pub fn turn_ids(&self, conv: u32) -> Vec<DocId> {
        (0..self.turns.len())
            .filter(|&i| self.turns[i].conv == conv)
            .map(|i| i as DocId)
            .collect()
    }

    /// The namespace of conversation `conv` (its `sample_id`).
    pub fn namespace(&self, conv: u32) -> &str {
        self.turns
            .iter()
            .find(|t| t.conv == conv)
            .map_or("", |t| t.sample_id.as_str())
    }

    /// The time questions about `conv` are asked: its last turn's time.
    pub fn end_time_ms(&self, conv: u32) -> i64 {
        self.turns
            .iter()
            .filter(|t| t.conv == conv)
            .map(|t| t.time_ms)
            .max()
            .unwrap_or(0)
    }

    /// Embedding of turn `id`.
    pub fn turn_vector(&self, id: DocId) -> &[f32] {
        let i = id as usize;
        &self.turn_vectors[i * self.dims..(i + 1) * self.dims]
    }

    /// Embedding of question `q`.
    pub fn question_vector(&self, q: usize) -> &[f32] {
        &self.question_vectors[q * self.dims..(q + 1) * self.dims]
    }
}

fn p_same_session(prev: &Turn, t: &RawTurn) -> bool {
    prev.conv == t.conv && prev.session == t.session
}

/// The baselines of `baseline_results.json`: `(subset, method) → metrics` for split `all`.
pub fn parse_baselines(json: &str) -> Result<BTreeMap<(String, String), Metrics>, EngineError> {
    let v: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| data_err("baseline_results.json", 0, e.to_string()))?;
    let mut out = BTreeMap::new();
    let Some(groups) = v.pointer("/splits/all").and_then(|g| g.as_object()) else {
        return Err(data_err("baseline_results.json", 0, "no splits.all"));
    };
    for (subset, methods) in groups {
        let Some(methods) = methods.as_object() else {
            continue;
        };
        for (method, m) in methods {
            let f = |k: &str| m.get(k).and_then(|x| x.as_f64()).unwrap_or(f64::NAN);
            let metrics = Metrics {
                n: m.get("n").and_then(|x| x.as_u64()).unwrap_or(0) as usize,
                any: [f("any@1"), f("any@5"), f("any@10"), f("any@20")],
                all: [f("all@1"), f("all@5"), f("all@10"), f("all@20")],
                mrr: f("mrr"),
            };
            out.insert((subset.clone(), method.clone()), metrics);
        }
    }
    Ok(out)
}

/// The data set loaded into the retrieval core: one [`MemCorpus`] and one lexical namespace
/// per conversation (all in one [`LexicalIndex`], statistics per namespace).
#[derive(Debug, Clone)]
pub struct Indexed {
    /// Conversation → its episodes.
    pub corpora: BTreeMap<u32, MemCorpus>,
    /// BM25 over every turn, namespace = `sample_id`.
    pub lexical: LexicalIndex,
}

impl Locomo {
    /// Load every turn as an episode (id = row, time = [`Turn::time_ms`], importance 0.5)
    /// with `vectors` as embeddings (`self.turn_vectors`, or another embedder's, row-major
    /// `[turns, dims]`).
    pub fn index(&self, vectors: &[f32], dims: usize) -> Result<Indexed, EngineError> {
        if vectors.len() != self.turns.len() * dims {
            return Err(EngineError::DimensionMismatch {
                name: "vectors",
                expected: self.turns.len() * dims,
                got: vectors.len(),
            });
        }
        let mut corpora: BTreeMap<u32, MemCorpus> = BTreeMap::new();
        let mut lexical = LexicalIndex::new();
        for (i, t) in self.turns.iter().enumerate() {
            corpora
                .entry(t.conv)
                .or_insert_with(|| MemCorpus::new(dims))
                .push(
                    i as DocId,
                    &vectors[i * dims..(i + 1) * dims],
                    t.time_ms as f64,
                    0.5,
                )?;
            lexical.add(i as DocId, &t.sample_id, &t.embed_text)?;
        }
        Ok(Indexed { corpora, lexical })
    }
}

impl Locomo {
    /// Rank every turn of question `q`'s conversation through [`recall`] (k = all turns), asked
    /// at [`Locomo::end_time_ms`], with `query_vector` (the question's embedding under the
    /// embedder of `idx`), the question text, and `fusion`'s weights and normalisations.
    /// Turns recall does not return (e.g. lexical-only: turns without a query token) follow in
    /// id order, as the baseline's stable sort places zero scores.
    pub fn rank(
        &self,
        idx: &Indexed,
        q: usize,
        query_vector: &[f32],
        fusion: FusionConfig,
        context: Option<(&FadingState, f32)>,
    ) -> Result<Vec<DocId>, EngineError> {
        let question = &self.questions[q];
        let corpus = idx.corpora.get(&question.conv).ok_or_else(|| {
            EngineError::invalid(
                "question",
                format!("conversation {} not indexed", question.conv),
            )
        })?;
        let now = self.end_time_ms(question.conv) as f64;
        let mut req = RecallRequest::new(corpus.len(), now);
        req.fusion = FusionConfig {
            now_ms: now,
            ..fusion
        };
        req.embedding = Some(query_vector);
        req.text = Some(&question.question);
        req.context = context;
        let hits = recall(corpus, &idx.lexical, self.namespace(question.conv), &req)?;
        let mut ranking: Vec<DocId> = hits.iter().map(|h| h.id).collect();
        let seen: std::collections::HashSet<DocId> = ranking.iter().copied().collect();
        let mut rest: Vec<DocId> = (0..corpus.len())
            .map(|r| corpus.id(r))
            .filter(|id| !seen.contains(id))
            .collect();
        rest.sort_unstable();
        ranking.extend(rest);
        Ok(ranking)
    }

    /// [`Locomo::rank`] for every question, as evaluation outcomes (question order).
    pub fn outcomes(
        &self,
        idx: &Indexed,
        query_vectors: &[f32],
        fusion: FusionConfig,
        contexts: Option<(&BTreeMap<u32, FadingState>, f32)>,
    ) -> Result<Vec<Outcome>, EngineError> {
        let d = query_vectors.len() / self.questions.len().max(1);
        self.questions
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let ctx = contexts.and_then(|(m, mix)| m.get(&q.conv).map(|s| (s, mix)));
                let r = self.rank(idx, i, &query_vectors[i * d..(i + 1) * d], fusion, ctx)?;
                Ok(outcome(&r, &q.evidence))
            })
            .collect()
    }

    /// The fading-context state of every conversation after all its turns (what an app has
    /// when the questions are asked, after the conversation), fed with `idx`'s embeddings.
    pub fn final_states(
        &self,
        idx: &Indexed,
        mode: FadingMode,
        decay: f32,
    ) -> Result<BTreeMap<u32, FadingState>, EngineError> {
        idx.corpora
            .iter()
            .map(|(&c, corpus)| {
                let mut st = FadingState::new(corpus.dims(), mode, decay)?;
                for r in 0..corpus.len() {
                    st.update(corpus.embedding(r))?;
                }
                Ok((c, st))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_dates() {
        // 2023-05-08 13:56 UTC = 1683554160 s
        assert_eq!(
            parse_session_date_time("1:56 pm on 8 May, 2023"),
            Some(1_683_554_160_000)
        );
        assert_eq!(
            parse_session_date_time("12:06 am on 11 November, 2022"),
            Some(days_from_civil(2022, 11, 11) * 86_400_000 + 6 * 60_000)
        );
        assert_eq!(
            parse_session_date_time("12:30 pm on 1 January, 2024"),
            Some(days_from_civil(2024, 1, 1) * 86_400_000 + 12 * 3_600_000 + 30 * 60_000)
        );
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for bad in [
            "",
            "1:56 pm 8 May 2023",
            "13:00 pm on 8 May, 2023",
            "1:56 pm on 30 February, 2023",
            "1:56 xm on 8 May, 2023",
            "1:56 pm on 8 Mai, 2023",
        ] {
            assert_eq!(parse_session_date_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn parse_small_files() {
        let turns = r#"{"conv": 0, "sample_id": "c0", "dia_id": "D1:1", "session": 1, "session_date_time": "1:56 pm on 8 May, 2023", "speaker": "A", "text": "hi", "embed_text": "A: hi"}
{"conv": 0, "sample_id": "c0", "dia_id": "D1:2", "session": 1, "session_date_time": "1:56 pm on 8 May, 2023", "speaker": "B", "text": "yo", "embed_text": "B: yo"}
{"conv": 0, "sample_id": "c0", "dia_id": "D2:1", "session": 2, "session_date_time": "2:00 pm on 9 May, 2023", "speaker": "A", "text": "x", "embed_text": "A: x"}
"#;
        let qs = r#"{"conv": 0, "sample_id": "c0", "qa_index": 0, "question": "q?", "answer": "a", "evidence": ["D1:2", "D2:1"], "category": 2}
"#;
        let tv: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let qv: Vec<u8> = [1.0f32, 0.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let d = Locomo::parse(turns, &tv, qs, &qv).unwrap();
        assert_eq!(d.dims, 2);
        assert_eq!(d.questions[0].evidence, vec![1, 2]);
        assert_eq!(d.turns[1].time_ms - d.turns[0].time_ms, TURN_STEP_MS);
        assert_eq!(
            d.turns[2].time_ms,
            parse_session_date_time("2:00 pm on 9 May, 2023").unwrap()
        );
        assert_eq!(d.namespace(0), "c0");
        assert_eq!(d.end_time_ms(0), d.turns[2].time_ms);
        assert_eq!(d.turn_vector(2), &[4.0, 5.0]);
        let bad_q = qs.replace("D2:1", "D9:9");
        assert!(matches!(
            Locomo::parse(turns, &tv, &bad_q, &qv),
            Err(EngineError::EvalData { line: 1, .. })
        ));
        assert!(Locomo::parse(turns, &tv[..20], qs, &qv).is_err());
    }
}
