//! Byte codec shared by the persisted retrieval structures: a versioned header
//! (`magic · version · payload length · CRC-32 of the payload`), LEB128 varints, and a reader
//! that turns every truncation or inconsistency into [`EngineError::Corrupt`] (never a panic,
//! never an allocation larger than the input).

use super::error::EngineError;

/// Header size in bytes: magic (8) + version (4) + payload length (8) + CRC-32 (4).
pub const HEADER_LEN: usize = 24;

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320) of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    let mut c = !0u32;
    for &b in bytes {
        c = TABLE[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

/// An append-only byte writer.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Writer::default()
    }

    /// Append an unsigned LEB128 varint.
    pub fn varint(&mut self, mut v: u64) {
        loop {
            let byte = (v & 0x7F) as u8;
            v >>= 7;
            if v == 0 {
                self.buf.push(byte);
                return;
            }
            self.buf.push(byte | 0x80);
        }
    }

    /// Append raw bytes.
    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// Append a length-prefixed UTF-8 string.
    pub fn str(&mut self, s: &str) {
        self.varint(s.len() as u64);
        self.bytes(s.as_bytes());
    }

    /// Append an `f64` (little-endian bits).
    pub fn f64(&mut self, v: f64) {
        self.bytes(&v.to_le_bytes());
    }

    /// Append an `f32` (little-endian bits).
    pub fn f32(&mut self, v: f32) {
        self.bytes(&v.to_le_bytes());
    }

    /// The payload written so far.
    pub fn into_inner(self) -> Vec<u8> {
        self.buf
    }

    /// Wrap the payload in the versioned header.
    pub fn finish(self, magic: &[u8; 8], version: u32) -> Vec<u8> {
        let payload = self.buf;
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
        out.extend_from_slice(magic);
        out.extend_from_slice(&version.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32(&payload).to_le_bytes());
        out.extend_from_slice(&payload);
        out
    }
}

/// Check the header written by [`Writer::finish`] and return a reader over the payload.
pub fn open<'a>(
    what: &'static str,
    bytes: &'a [u8],
    magic: &[u8; 8],
    version: u32,
) -> Result<Reader<'a>, EngineError> {
    let corrupt = |offset, reason: &str| EngineError::Corrupt {
        what,
        offset,
        reason: reason.into(),
    };
    if bytes.len() < HEADER_LEN {
        return Err(corrupt(
            bytes.len(),
            &format!(
                "{} bytes is shorter than the {HEADER_LEN}-byte header",
                bytes.len()
            ),
        ));
    }
    if &bytes[..8] != magic {
        return Err(corrupt(0, "bad magic (not this kind of data)"));
    }
    let found = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if found != version {
        return Err(EngineError::UnsupportedVersion {
            what,
            found,
            supported: version,
        });
    }
    let len = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
    let crc = u32::from_le_bytes(bytes[20..24].try_into().expect("4 bytes"));
    let payload = &bytes[HEADER_LEN..];
    if len != payload.len() as u64 {
        return Err(corrupt(
            12,
            &format!(
                "declared payload length {len} but {} bytes follow the header",
                payload.len()
            ),
        ));
    }
    if crc32(payload) != crc {
        return Err(corrupt(20, "checksum mismatch"));
    }
    Ok(Reader {
        what,
        bytes: payload,
        pos: 0,
        base: HEADER_LEN,
    })
}

/// A bounds-checked reader; every failure is [`EngineError::Corrupt`] with the byte offset.
#[derive(Debug)]
pub struct Reader<'a> {
    what: &'static str,
    bytes: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    /// A reader over raw bytes (no header).
    pub fn new(what: &'static str, bytes: &'a [u8]) -> Self {
        Reader {
            what,
            bytes,
            pos: 0,
            base: 0,
        }
    }

    /// A `Corrupt` error at the current position.
    pub fn error(&self, reason: impl Into<String>) -> EngineError {
        EngineError::Corrupt {
            what: self.what,
            offset: self.base + self.pos,
            reason: reason.into(),
        }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// `Ok` when every byte was consumed.
    pub fn finish(&self) -> Result<(), EngineError> {
        if self.remaining() != 0 {
            return Err(self.error(format!("{} trailing bytes", self.remaining())));
        }
        Ok(())
    }

    /// Read `n` raw bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], EngineError> {
        if n > self.remaining() {
            return Err(self.error(format!("needs {n} bytes, only {} remain", self.remaining())));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Read an unsigned LEB128 varint (at most 10 bytes, no overflow).
    pub fn varint(&mut self) -> Result<u64, EngineError> {
        let mut v = 0u64;
        for i in 0..10 {
            let Some(&b) = self.bytes.get(self.pos) else {
                return Err(self.error("truncated varint"));
            };
            self.pos += 1;
            let part = (b & 0x7F) as u64;
            if i == 9 && part > 1 {
                return Err(self.error("varint overflows 64 bits"));
            }
            v |= part << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.error("varint longer than 10 bytes"))
    }

    /// Read a varint that must fit `u32` and be at most `max`.
    pub fn u32_max(&mut self, max: u64, name: &str) -> Result<u32, EngineError> {
        let v = self.varint()?;
        if v > max.min(u32::MAX as u64) {
            return Err(self.error(format!("{name} = {v} exceeds {max}")));
        }
        Ok(v as u32)
    }

    /// Read a count of items each taking at least `min_item_bytes`: rejects counts the rest of
    /// the input cannot hold, so no allocation can exceed the input's size.
    pub fn count(&mut self, min_item_bytes: usize, name: &str) -> Result<usize, EngineError> {
        let v = self.varint()?;
        let cap = (self.remaining() / min_item_bytes.max(1)) as u64;
        if v > cap {
            return Err(self.error(format!(
                "{name} = {v} cannot fit in the {} remaining bytes",
                self.remaining()
            )));
        }
        Ok(v as usize)
    }

    /// Read a length-prefixed UTF-8 string.
    pub fn str(&mut self) -> Result<&'a str, EngineError> {
        let n = self.count(1, "string length")?;
        let b = self.take(n)?;
        std::str::from_utf8(b).map_err(|_| self.error("invalid UTF-8"))
    }

    /// Read a little-endian `f64`.
    pub fn f64(&mut self) -> Result<f64, EngineError> {
        Ok(f64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    /// Read a little-endian `f32`.
    pub fn f32(&mut self) -> Result<f32, EngineError> {
        Ok(f32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_known_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn varint_round_trip_and_overflow() {
        let vals = [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX];
        let mut w = Writer::new();
        for &v in &vals {
            w.varint(v);
        }
        let bytes = w.into_inner();
        let mut r = Reader::new("t", &bytes);
        for &v in &vals {
            assert_eq!(r.varint().unwrap(), v);
        }
        r.finish().unwrap();
        let bad = [0xFFu8; 11];
        assert!(Reader::new("t", &bad).varint().is_err());
        let over = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02];
        assert!(Reader::new("t", &over).varint().is_err());
    }

    #[test]
    fn header_checks() {
        let mut w = Writer::new();
        w.str("hello");
        let bytes = w.finish(b"TESTMAGC", 3);
        let mut r = open("t", &bytes, b"TESTMAGC", 3).unwrap();
        assert_eq!(r.str().unwrap(), "hello");
        assert!(matches!(
            open("t", &bytes, b"TESTMAGC", 2),
            Err(EngineError::UnsupportedVersion { found: 3, .. })
        ));
        assert!(open("t", &bytes, b"OTHERMAG", 3).is_err());
        assert!(open("t", &bytes[..bytes.len() - 1], b"TESTMAGC", 3).is_err());
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(matches!(
            open("t", &flipped, b"TESTMAGC", 3),
            Err(EngineError::Corrupt { .. })
        ));
    }
}
