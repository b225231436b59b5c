//! A parser of the safetensors format (the weights file of the model): an 8-byte little-endian
//! header length, a JSON header `{name: {dtype, shape, data_offsets: [begin, end]}, ...,
//! "__metadata__": {...}}`, then the tensor data, offsets relative to the data section.
//!
//! The bytes are untrusted (an app passes them in): every malformation — truncation, a header
//! that is not a JSON object, an unknown dtype, a shape whose size does not match its byte range,
//! a range outside the data or overlapping another — is a typed
//! [`EncoderError::Safetensors`](super::EncoderError), never a panic.

use std::collections::BTreeMap;

use super::EncoderError;

/// The header may not be larger than this (the reference implementation's limit).
pub const MAX_HEADER_BYTES: u64 = 100 * 1024 * 1024;

/// A tensor's element type, as named in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    /// 32-bit float, little-endian.
    F32,
    /// 16-bit IEEE float, little-endian.
    F16,
    /// bfloat16, little-endian.
    BF16,
    /// 64-bit signed integer.
    I64,
    /// 32-bit signed integer.
    I32,
    /// Any other dtype the format knows (bool, 8-bit types, f64, ...), with its byte size.
    Other(&'static str, usize),
}

impl Dtype {
    fn parse(s: &str) -> Option<Dtype> {
        Some(match s {
            "F32" => Dtype::F32,
            "F16" => Dtype::F16,
            "BF16" => Dtype::BF16,
            "I64" => Dtype::I64,
            "I32" => Dtype::I32,
            "F64" => Dtype::Other("F64", 8),
            "U64" => Dtype::Other("U64", 8),
            "U32" => Dtype::Other("U32", 4),
            "I16" => Dtype::Other("I16", 2),
            "U16" => Dtype::Other("U16", 2),
            "I8" => Dtype::Other("I8", 1),
            "U8" => Dtype::Other("U8", 1),
            "BOOL" => Dtype::Other("BOOL", 1),
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::F32 | Dtype::I32 => 4,
            Dtype::F16 | Dtype::BF16 => 2,
            Dtype::I64 => 8,
            Dtype::Other(_, n) => n,
        }
    }

    /// The header's name of this dtype.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "F32",
            Dtype::F16 => "F16",
            Dtype::BF16 => "BF16",
            Dtype::I64 => "I64",
            Dtype::I32 => "I32",
            Dtype::Other(n, _) => n,
        }
    }
}

/// One tensor of the file: dtype, shape and its bytes.
#[derive(Debug, Clone, Copy)]
pub struct TensorView<'a> {
    /// Element type.
    pub dtype: Dtype,
    /// Shape (row-major); `[]` is a scalar.
    pub shape: &'a [usize],
    /// The raw little-endian bytes, `shape.product() * dtype.size()` of them.
    pub data: &'a [u8],
}

impl TensorView<'_> {
    /// The values as `f32` (F32 copied, F16/BF16 widened); `None` for other dtypes.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        match self.dtype {
            Dtype::F32 => Some(
                self.data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            Dtype::F16 => Some(
                self.data
                    .chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
            ),
            Dtype::BF16 => Some(
                self.data
                    .chunks_exact(2)
                    .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
            ),
            _ => None,
        }
    }
}

/// A parsed safetensors file borrowing its bytes.
#[derive(Debug)]
pub struct SafeTensors<'a> {
    tensors: BTreeMap<String, (Dtype, Vec<usize>, std::ops::Range<usize>)>,
    data: &'a [u8],
}

fn bad(reason: impl Into<String>) -> EncoderError {
    EncoderError::Safetensors {
        reason: reason.into(),
    }
}

impl<'a> SafeTensors<'a> {
    /// Parses and validates `bytes` (header and every tensor's byte range).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, EncoderError> {
        let len_bytes: [u8; 8] =
            bytes
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| {
                    bad(format!(
                        "{} bytes: shorter than the 8-byte header length",
                        bytes.len()
                    ))
                })?;
        let header_len = u64::from_le_bytes(len_bytes);
        if header_len > MAX_HEADER_BYTES {
            return Err(bad(format!(
                "header length {header_len} exceeds {MAX_HEADER_BYTES}"
            )));
        }
        let header_end = 8 + header_len as usize;
        let header = bytes.get(8..header_end).ok_or_else(|| {
            bad(format!(
                "header length {header_len} runs past the end of the file ({} bytes)",
                bytes.len()
            ))
        })?;
        let header: serde_json::Value =
            serde_json::from_slice(header).map_err(|e| bad(format!("header is not JSON: {e}")))?;
        let obj = header
            .as_object()
            .ok_or_else(|| bad("header is not a JSON object"))?;
        let data = &bytes[header_end..];
        let mut tensors = BTreeMap::new();
        for (name, entry) in obj {
            if name == "__metadata__" {
                continue;
            }
            let field = |f: &str| {
                entry
                    .get(f)
                    .ok_or_else(|| bad(format!("tensor `{name}`: no `{f}`")))
            };
            let dtype_name = field("dtype")?
                .as_str()
                .ok_or_else(|| bad(format!("tensor `{name}`: dtype is not a string")))?;
            let dtype = Dtype::parse(dtype_name)
                .ok_or_else(|| bad(format!("tensor `{name}`: unknown dtype {dtype_name}")))?;
            let shape: Vec<usize> = field("shape")?
                .as_array()
                .ok_or_else(|| bad(format!("tensor `{name}`: shape is not an array")))?
                .iter()
                .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
                .collect::<Option<_>>()
                .ok_or_else(|| {
                    bad(format!(
                        "tensor `{name}`: shape has a non-integer dimension"
                    ))
                })?;
            let offsets: Vec<usize> = field("data_offsets")?
                .as_array()
                .filter(|a| a.len() == 2)
                .and_then(|a| {
                    a.iter()
                        .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
                        .collect::<Option<_>>()
                })
                .ok_or_else(|| bad(format!("tensor `{name}`: data_offsets is not [begin, end]")))?;
            let (begin, end) = (offsets[0], offsets[1]);
            if begin > end || end > data.len() {
                return Err(bad(format!(
                    "tensor `{name}`: data_offsets [{begin}, {end}] outside the {} data bytes",
                    data.len()
                )));
            }
            let want = shape
                .iter()
                .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| bad(format!("tensor `{name}`: shape {shape:?} overflows")))?;
            if want != end - begin {
                return Err(bad(format!(
                    "tensor `{name}`: {} {shape:?} needs {want} bytes, data_offsets give {}",
                    dtype.name(),
                    end - begin
                )));
            }
            tensors.insert(name.clone(), (dtype, shape, begin..end));
        }
        // No two tensors may share bytes.
        let mut ranges: Vec<(&std::ops::Range<usize>, &String)> =
            tensors.iter().map(|(n, t)| (&t.2, n)).collect();
        ranges.sort_by_key(|(r, _)| (r.start, r.end));
        for w in ranges.windows(2) {
            if w[1].0.start < w[0].0.end {
                return Err(bad(format!(
                    "tensors `{}` and `{}` overlap",
                    w[0].1, w[1].1
                )));
            }
        }
        Ok(SafeTensors { tensors, data })
    }

    /// The tensor called `name`, if present.
    pub fn get(&self, name: &str) -> Option<TensorView<'_>> {
        self.tensors
            .get(name)
            .map(|(dtype, shape, range)| TensorView {
                dtype: *dtype,
                shape,
                data: &self.data[range.clone()],
            })
    }

    /// The tensors' names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// True when the file holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }
}

/// Serialises F32 tensors into a safetensors file (tests and tools: builds small weight files).
pub fn write_f32(tensors: &[(&str, Vec<usize>, &[f32])]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, shape, values) in tensors {
        let end = offset + values.len() * 4;
        header.insert(
            (*name).to_string(),
            serde_json::json!({ "dtype": "F32", "shape": shape, "data_offsets": [offset, end] }),
        );
        offset = end;
    }
    let mut head = serde_json::Value::Object(header).to_string().into_bytes();
    while !head.len().is_multiple_of(8) {
        head.push(b' ');
    }
    let mut out = (head.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&head);
    for (_, _, values) in tensors {
        for v in values.iter() {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_lookup() {
        let a = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let bytes = write_f32(&[("a", vec![2, 3], &a), ("b", vec![1], &[7.0])]);
        let st = SafeTensors::parse(&bytes).unwrap();
        assert_eq!(st.len(), 2);
        let t = st.get("a").unwrap();
        assert_eq!((t.dtype, t.shape), (Dtype::F32, &[2usize, 3][..]));
        assert_eq!(t.to_f32().unwrap(), a);
        assert_eq!(st.get("b").unwrap().to_f32().unwrap(), vec![7.0]);
        assert!(st.get("c").is_none());
    }

    fn with_header(h: &str, data: usize) -> Vec<u8> {
        let mut out = (h.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(h.as_bytes());
        out.extend(std::iter::repeat_n(0u8, data));
        out
    }

    #[test]
    fn malformed_files_are_typed_errors() {
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![1, 2, 3],
            u64::MAX.to_le_bytes().to_vec(),
            with_header("", 0)[..8]
                .iter()
                .chain(&[0u8; 0])
                .copied()
                .collect(),
            {
                let mut v = 100u64.to_le_bytes().to_vec();
                v.extend_from_slice(b"{}");
                v
            },
            with_header("not json", 0),
            with_header("[1,2]", 0),
            with_header(
                r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
                4,
            ),
            with_header(
                r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
                8,
            ),
            with_header(
                r#"{"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}}"#,
                8,
            ),
            with_header(
                r#"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#,
                8,
            ),
            with_header(
                r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#,
                8,
            ),
            with_header(r#"{"a":{"dtype":"F32","shape":[2]}}"#, 8),
            with_header(
                r#"{"a":{"dtype":"F32","shape":[9223372036854775807,4],"data_offsets":[0,8]}}"#,
                8,
            ),
            with_header(
                r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                12,
            ),
        ];
        for (i, bytes) in cases.iter().enumerate() {
            let e = SafeTensors::parse(bytes).expect_err(&format!("case {i} parsed"));
            assert_eq!(e.code(), "ENCODER_BAD_WEIGHTS", "case {i}: {e}");
        }
    }

    #[test]
    fn truncations_and_bit_flips_never_panic() {
        let a: Vec<f32> = (0..24).map(|i| i as f32).collect();
        let bytes = write_f32(&[("x", vec![4, 6], &a), ("y", vec![3], &a[..3])]);
        for cut in 0..bytes.len() {
            let _ = SafeTensors::parse(&bytes[..cut]);
        }
        let mut rng = crate::rng::Rng::new(7);
        for _ in 0..2000 {
            let mut b = bytes.clone();
            let i = rng.below(b.len());
            b[i] ^= 1 << rng.below(8);
            if let Ok(st) = SafeTensors::parse(&b) {
                for n in st.names() {
                    let _ = st.get(n).unwrap().to_f32();
                }
            }
        }
    }
}
