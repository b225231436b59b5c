//! The episode model, its limits and its validation.
//!
//! Everything a caller hands the store is validated here, before any transaction opens: a bad
//! field gives a [`StoreError`] naming it (`episodes[3].text`) and nothing of the call is written.

use serde::de::IgnoredAny;

use super::error::{Result, StoreError};

/// Largest accepted `text`, in bytes of UTF-8 (64 KiB). Text must also contain a non-whitespace
/// character.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// Largest accepted namespace, in bytes of UTF-8 (non-empty).
pub const MAX_NAMESPACE_BYTES: usize = 256;
/// Largest accepted role / speaker, in bytes of UTF-8 (may be empty).
pub const MAX_ROLE_BYTES: usize = 64;
/// Largest accepted metadata object, serialized as JSON, in bytes.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;
/// Most tags on one episode.
pub const MAX_TAGS: usize = 64;
/// Largest accepted tag, in bytes of UTF-8 (non-empty).
pub const MAX_TAG_BYTES: usize = 128;
/// Largest embedding dimension a store accepts.
pub const MAX_DIMS: usize = 8192;
/// Largest episode id (ids are JS numbers in the JS API: exact up to 2^53 - 1).
pub const MAX_ID: u64 = (1 << 53) - 1;
/// Importance given when the caller does not say.
pub const DEFAULT_IMPORTANCE: f32 = 0.5;

/// A metadata object: the JSON text of an object, validated (syntax, object at the top,
/// [`MAX_METADATA_BYTES`]). Kept as text so that it is stored and exported byte for byte and
/// never needs a parsed tree on the hot paths.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Metadata(String);

impl Default for Metadata {
    fn default() -> Self {
        Metadata("{}".to_string())
    }
}

impl Metadata {
    /// Wrap text known to be a valid object (checked when it was first accepted).
    pub(crate) fn wrap(s: String) -> Self {
        Metadata(s)
    }

    /// The empty object `{}`.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Validate `json` as the text of one JSON object. `field` names it in the error.
    pub fn parse_field(json: &str, field: &str) -> Result<Self> {
        check_metadata_json(json, field)?;
        Ok(Metadata(json.to_string()))
    }

    /// Validate `json` as the text of one JSON object.
    pub fn parse(json: &str) -> Result<Self> {
        Self::parse_field(json, "metadata")
    }

    /// From a `serde_json` object.
    pub fn from_map(map: &serde_json::Map<String, serde_json::Value>) -> Result<Self> {
        let text = serde_json::to_string(map)
            .map_err(|e| StoreError::invalid("metadata", e.to_string()))?;
        Self::parse(&text)
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parsed into a `serde_json` object.
    pub fn to_map(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(&self.0).unwrap_or_default()
    }
}

/// Check that `json` is one JSON object within the size limit, without building a tree (so the
/// check allocates at most a scratch buffer for one escaped string).
pub(crate) fn check_metadata_json(json: &str, field: &str) -> Result<()> {
    if json.len() > MAX_METADATA_BYTES {
        return Err(StoreError::invalid(
            field,
            format!(
                "metadata is {} bytes of JSON, the limit is {MAX_METADATA_BYTES}",
                json.len()
            ),
        ));
    }
    if !json.trim_start().starts_with('{') {
        return Err(StoreError::invalid(field, "metadata must be a JSON object"));
    }
    serde_json::from_str::<IgnoredAny>(json)
        .map_err(|e| StoreError::invalid(field, format!("metadata is not valid JSON: {e}")))?;
    Ok(())
}

/// An episode as stored and returned.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    /// Stable id: assigned by the store, strictly increasing, never reused (not even after a
    /// delete or `clear`).
    pub id: u64,
    /// The conversation / user / agent this episode belongs to.
    pub namespace: String,
    /// Role or speaker (`user`, `assistant`, a name...). May be empty.
    pub role: String,
    /// The episode's text (1..=[`MAX_TEXT_BYTES`] bytes).
    pub text: String,
    /// When it happened: milliseconds since the Unix epoch (any finite number).
    pub event_time: f64,
    /// When it was stored: milliseconds since the Unix epoch, from the store's clock.
    pub insert_time: f64,
    /// The embedding; its length is the store's `dims`.
    pub embedding: Vec<f32>,
    /// A JSON object.
    pub metadata: Metadata,
    /// In `[0, 1]`.
    pub importance: f32,
    /// Free-form labels.
    pub tags: Vec<String>,
}

/// An episode to store; the store assigns `id` and `insert_time`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEpisode {
    /// See [`Episode::namespace`].
    pub namespace: String,
    /// See [`Episode::role`].
    pub role: String,
    /// See [`Episode::text`].
    pub text: String,
    /// See [`Episode::event_time`]; `None` = the insert time.
    pub event_time: Option<f64>,
    /// See [`Episode::embedding`].
    pub embedding: Vec<f32>,
    /// See [`Episode::metadata`].
    pub metadata: Metadata,
    /// See [`Episode::importance`]; `None` = [`DEFAULT_IMPORTANCE`].
    pub importance: Option<f32>,
    /// See [`Episode::tags`].
    pub tags: Vec<String>,
}

impl NewEpisode {
    /// An episode with the required fields; the rest take their defaults.
    pub fn new(namespace: impl Into<String>, text: impl Into<String>, embedding: Vec<f32>) -> Self {
        NewEpisode {
            namespace: namespace.into(),
            role: String::new(),
            text: text.into(),
            event_time: None,
            embedding,
            metadata: Metadata::empty(),
            importance: None,
            tags: Vec::new(),
        }
    }
}

/// A change to an existing episode: `None` fields stay as they are. Namespace and event time
/// are part of the episode's identity in the indexes and cannot change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Patch {
    /// New role.
    pub role: Option<String>,
    /// New text.
    pub text: Option<String>,
    /// New metadata (replaces the whole object).
    pub metadata: Option<Metadata>,
    /// New importance.
    pub importance: Option<f32>,
    /// New embedding.
    pub embedding: Option<Vec<f32>>,
    /// New tags (replace the whole list).
    pub tags: Option<Vec<String>>,
}

impl Patch {
    /// True if the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.role.is_none()
            && self.text.is_none()
            && self.metadata.is_none()
            && self.importance.is_none()
            && self.embedding.is_none()
            && self.tags.is_none()
    }
}

fn field(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Validate a namespace.
pub fn check_namespace(ns: &str, field: &str) -> Result<()> {
    if ns.is_empty() {
        return Err(StoreError::invalid(field, "namespace must not be empty"));
    }
    if ns.len() > MAX_NAMESPACE_BYTES {
        return Err(StoreError::invalid(
            field,
            format!(
                "namespace is {} bytes, the limit is {MAX_NAMESPACE_BYTES}",
                ns.len()
            ),
        ));
    }
    Ok(())
}

/// Validate a text.
pub fn check_text(text: &str, field: &str) -> Result<()> {
    if text.trim().is_empty() {
        return Err(StoreError::invalid(
            field,
            "text must contain a non-whitespace character",
        ));
    }
    if text.len() > MAX_TEXT_BYTES {
        return Err(StoreError::invalid(
            field,
            format!(
                "text is {} bytes of UTF-8, the limit is {MAX_TEXT_BYTES}",
                text.len()
            ),
        ));
    }
    Ok(())
}

/// Validate a role.
pub fn check_role(role: &str, field: &str) -> Result<()> {
    if role.len() > MAX_ROLE_BYTES {
        return Err(StoreError::invalid(
            field,
            format!(
                "role is {} bytes, the limit is {MAX_ROLE_BYTES}",
                role.len()
            ),
        ));
    }
    Ok(())
}

/// Validate an importance.
pub fn check_importance(v: f32, field: &str) -> Result<()> {
    if !v.is_finite() {
        return Err(StoreError::NonFinite {
            field: field.to_string(),
            index: 0,
        });
    }
    if !(0.0..=1.0).contains(&v) {
        return Err(StoreError::invalid(
            field,
            format!(
                "importance must be in [0, 1], got {}",
                crate::num_fmt::Num(v.into())
            ),
        ));
    }
    Ok(())
}

/// Validate a time (ms since the epoch).
pub fn check_time(v: f64, field: &str) -> Result<()> {
    if !v.is_finite() {
        return Err(StoreError::NonFinite {
            field: field.to_string(),
            index: 0,
        });
    }
    Ok(())
}

/// Validate an embedding against `dims`.
pub fn check_embedding(v: &[f32], dims: usize, field: &str) -> Result<()> {
    if v.len() != dims {
        return Err(StoreError::DimensionMismatch {
            field: field.to_string(),
            expected: dims,
            got: v.len(),
        });
    }
    if let Some(index) = v.iter().position(|x| !x.is_finite()) {
        return Err(StoreError::NonFinite {
            field: field.to_string(),
            index,
        });
    }
    Ok(())
}

/// Validate a tag list.
pub fn check_tags<S: AsRef<str>>(tags: &[S], field: &str) -> Result<()> {
    if tags.len() > MAX_TAGS {
        return Err(StoreError::invalid(
            field,
            format!("{} tags, the limit is {MAX_TAGS}", tags.len()),
        ));
    }
    for (i, t) in tags.iter().enumerate() {
        let t = t.as_ref();
        if t.is_empty() || t.len() > MAX_TAG_BYTES {
            return Err(StoreError::invalid(
                format!("{field}[{i}]"),
                format!("a tag must have 1..={MAX_TAG_BYTES} bytes, got {}", t.len()),
            ));
        }
    }
    Ok(())
}

/// Validate a new episode against the store's `dims`; `prefix` names it in errors (e.g.
/// `episodes[3]`, or empty for a single put).
pub fn validate_new(ep: &NewEpisode, dims: usize, prefix: &str) -> Result<()> {
    validate_new_in(ep, dims, || prefix.to_string())
}

/// [`validate_new`] with the field prefix made by `prefix` only when the episode fails (a batch
/// of valid episodes then formats no field names).
pub fn validate_new_in(ep: &NewEpisode, dims: usize, prefix: impl Fn() -> String) -> Result<()> {
    if check_new(ep, dims, &|_| String::new()).is_ok() {
        return Ok(());
    }
    let prefix = prefix();
    check_new(ep, dims, &|name| field(&prefix, name))
}

fn check_new(ep: &NewEpisode, dims: usize, name: &dyn Fn(&str) -> String) -> Result<()> {
    check_namespace(&ep.namespace, &name("namespace"))?;
    check_role(&ep.role, &name("role"))?;
    check_text(&ep.text, &name("text"))?;
    if let Some(t) = ep.event_time {
        check_time(t, &name("eventTime"))?;
    }
    check_embedding(&ep.embedding, dims, &name("embedding"))?;
    check_metadata_json(ep.metadata.as_str(), &name("metadata"))?;
    if let Some(v) = ep.importance {
        check_importance(v, &name("importance"))?;
    }
    check_tags(&ep.tags, &name("tags"))?;
    Ok(())
}

/// Validate a patch against the store's `dims`.
pub fn validate_patch(p: &Patch, dims: usize) -> Result<()> {
    if let Some(r) = &p.role {
        check_role(r, "role")?;
    }
    if let Some(t) = &p.text {
        check_text(t, "text")?;
    }
    if let Some(m) = &p.metadata {
        check_metadata_json(m.as_str(), "metadata")?;
    }
    if let Some(v) = p.importance {
        check_importance(v, "importance")?;
    }
    if let Some(e) = &p.embedding {
        check_embedding(e, dims, "embedding")?;
    }
    if let Some(t) = &p.tags {
        check_tags(t, "tags")?;
    }
    Ok(())
}

/// Validate a stored / imported episode completely (used by import, where ids and insert times
/// come from the file).
pub fn validate_full(ep: &Episode, dims: usize, prefix: &str) -> Result<()> {
    if ep.id == 0 || ep.id > MAX_ID {
        return Err(StoreError::invalid(
            field(prefix, "id"),
            format!("id must be in 1..={MAX_ID}, got {}", ep.id),
        ));
    }
    check_namespace(&ep.namespace, &field(prefix, "namespace"))?;
    check_role(&ep.role, &field(prefix, "role"))?;
    check_text(&ep.text, &field(prefix, "text"))?;
    check_time(ep.event_time, &field(prefix, "eventTime"))?;
    check_time(ep.insert_time, &field(prefix, "insertTime"))?;
    check_embedding(&ep.embedding, dims, &field(prefix, "embedding"))?;
    check_metadata_json(ep.metadata.as_str(), &field(prefix, "metadata"))?;
    check_importance(ep.importance, &field(prefix, "importance"))?;
    check_tags(&ep.tags, &field(prefix, "tags"))?;
    Ok(())
}

/// Normalise `-0.0` to `0.0` (IndexedDB keys do not distinguish them; the memory backend must
/// order them the same way).
pub(crate) fn norm_time(t: f64) -> f64 {
    if t == 0.0 {
        0.0
    } else {
        t
    }
}

/// Milliseconds since the Unix epoch from the platform clock.
pub fn now_ms() -> f64 {
    #[cfg(target_arch = "wasm32")]
    {
        js_sys::Date::now()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    }
}
