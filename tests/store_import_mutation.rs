//! The import parser against hostile bytes: seeded truncations, bit flips, huge declared lengths,
//! garbage and splices of real exports. Every input must give `Ok` or a typed import error —
//! never a panic or a hang — and the parser's peak allocation is measured against the input's
//! size with a counting allocator. (The same parser is the `cargo fuzz` target in `fuzz/`.)
#![cfg(not(target_arch = "wasm32"))]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Instant;

use mnemo::rng::Rng;
use mnemo::store::export::{crc32, decode_all, validate};
use mnemo::store::testing::episode;
use mnemo::store::{MemoryBackend, Metadata, OpenOptions, Store, StoreError};

// --- A per-thread counting allocator: current and peak bytes requested.
struct Counting;
thread_local! {
    static CUR: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}
fn add(n: usize) {
    let _ = CUR.try_with(|c| {
        let v = c.get() + n;
        c.set(v);
        let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
    });
}
fn sub(n: usize) {
    let _ = CUR.try_with(|c| c.set(c.get().saturating_sub(n)));
}
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        add(l.size());
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        sub(l.size());
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        sub(l.size());
        add(new);
        unsafe { System.realloc(p, l, new) }
    }
}
#[global_allocator]
static A: Counting = Counting;

/// Peak bytes allocated (above what was live before) while running `f`.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = CUR.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f();
    (out, PEAK.with(Cell::get) - base)
}

fn fix_checksum(b: &mut [u8]) {
    if b.len() >= 4 {
        let n = b.len() - 4;
        let c = crc32(&b[..n]);
        b[n..].copy_from_slice(&c.to_le_bytes());
    }
}

struct Stats {
    inputs: usize,
    ok: usize,
    worst_parse_excess: usize,
    worst_decode_ratio: f64,
    slowest_ms: f64,
}

/// Parse `b` both ways; any panic fails the test; errors must be import errors.
fn check(b: &[u8], what: &str, st: &mut Stats) {
    let t0 = Instant::now();
    for verify in [true, false] {
        let (r, peak) = peak_of(|| validate(b, verify));
        match &r {
            Ok(_) => {}
            Err(StoreError::CorruptImport { .. }) | Err(StoreError::SchemaTooNew { .. }) => {}
            Err(e) => panic!("{what}: unexpected error kind {e:?}"),
        }
        // Validation keeps nothing: bounded by one JSON string's scratch, not by declared sizes.
        let allowed = b.len() + 64 * 1024;
        assert!(
            peak <= allowed,
            "{what}: validate allocated {peak} bytes for {} input bytes",
            b.len()
        );
        st.worst_parse_excess = st.worst_parse_excess.max(peak.saturating_sub(b.len()));
    }
    let (r, peak) = peak_of(|| decode_all(b));
    match &r {
        Ok(_) => st.ok += 1,
        Err(StoreError::CorruptImport { .. }) | Err(StoreError::SchemaTooNew { .. }) => {}
        Err(e) => panic!("{what}: unexpected error kind {e:?}"),
    }
    // Decoding builds the episodes an import writes: a constant factor of the input at most.
    let allowed = 8 * b.len() + 64 * 1024;
    assert!(
        peak <= allowed,
        "{what}: decode allocated {peak} bytes for {} input bytes",
        b.len()
    );
    if b.len() >= 1024 {
        st.worst_decode_ratio = st.worst_decode_ratio.max(peak as f64 / b.len() as f64);
    }
    drop(r);
    st.inputs += 1;
    st.slowest_ms = st.slowest_ms.max(t0.elapsed().as_secs_f64() * 1e3);
}

fn sample_exports() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (seed, n, dims) in [(1u64, 0usize, 3usize), (2, 1, 1), (3, 5, 8), (4, 30, 16)] {
        let s = pollster::block_on(Store::open(
            MemoryBackend::new(),
            OpenOptions {
                dims: Some(dims),
                ..Default::default()
            },
        ))
        .unwrap();
        let mut rng = Rng::new(seed);
        let eps = (0..n)
            .map(|i| {
                let mut e = episode(&mut rng, ["a", "bb"][i % 2], &format!("text {i} ✓"), dims);
                if i % 3 == 0 {
                    e.metadata =
                        Metadata::parse(r#"{"nested":{"a":[1,2,{"b":"\u00e9\n"}]},"n":null}"#)
                            .unwrap();
                }
                e
            })
            .collect();
        pollster::block_on(s.put_many(eps)).unwrap();
        out.push(pollster::block_on(s.export()).unwrap());
    }
    out
}

#[test]
fn import_parser_survives_seeded_mutations() {
    let samples = sample_exports();
    let mut st = Stats {
        inputs: 0,
        ok: 0,
        worst_parse_excess: 0,
        worst_decode_ratio: 0.0,
        slowest_ms: 0.0,
    };
    let mut rng = Rng::new(0x001A_B012);
    for (si, s) in samples.iter().enumerate() {
        check(s, &format!("sample {si}"), &mut st);
        assert!(decode_all(s).is_ok(), "sample {si} must import");
        // Every truncation (small samples), else a seeded subset.
        let cuts: Vec<usize> = if s.len() <= 4096 {
            (0..s.len()).collect()
        } else {
            (0..600).map(|_| rng.below(s.len())).collect()
        };
        for &c in &cuts {
            check(&s[..c], &format!("sample {si} cut {c}"), &mut st);
            let mut fixed = s[..c].to_vec();
            fix_checksum(&mut fixed);
            check(&fixed, &format!("sample {si} cut {c} + checksum"), &mut st);
        }
        // Bit flips, with the stale checksum and with a recomputed one.
        for k in 0..800 {
            let mut b = s.clone();
            for _ in 0..1 + rng.below(3) {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            check(&b, &format!("sample {si} flip {k}"), &mut st);
            fix_checksum(&mut b);
            check(&b, &format!("sample {si} flip {k} + checksum"), &mut st);
        }
        // Huge or hostile declared lengths and counts at every u32 / u64 position.
        let hostile32 = [
            u32::MAX,
            0x7FFF_FFFF,
            0x8000_0000,
            0x0100_0000,
            s.len() as u32,
            0,
        ];
        for off in (0..s.len().saturating_sub(4)).step_by(if s.len() > 4096 { 7 } else { 1 }) {
            let v = hostile32[rng.below(hostile32.len())];
            let mut b = s.clone();
            b[off..off + 4].copy_from_slice(&v.to_le_bytes());
            fix_checksum(&mut b);
            check(&b, &format!("sample {si} u32 {v:#x} at {off}"), &mut st);
        }
        for v in [u64::MAX, 1 << 40, 1 << 32, (s.len() as u64) * 2, 1] {
            let mut b = s.clone();
            b[16..24].copy_from_slice(&v.to_le_bytes());
            fix_checksum(&mut b);
            check(&b, &format!("sample {si} count {v}"), &mut st);
        }
        // Garbage after a valid header; splices of two exports.
        for k in 0..100 {
            let mut b = s[..32.min(s.len())].to_vec();
            b.extend((0..rng.below(2000)).map(|_| rng.next_u64() as u8));
            fix_checksum(&mut b);
            check(&b, &format!("sample {si} garbage {k}"), &mut st);
            let other = &samples[rng.below(samples.len())];
            let (a, z) = (rng.below(s.len()), rng.below(other.len()));
            let mut b = s[..a].to_vec();
            b.extend_from_slice(&other[z..]);
            check(&b, &format!("sample {si} splice {k}"), &mut st);
            fix_checksum(&mut b);
            check(&b, &format!("sample {si} splice {k} + checksum"), &mut st);
        }
    }
    // Pure noise of every small length.
    for len in 0..300 {
        let b: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        check(&b, &format!("noise {len}"), &mut st);
    }
    eprintln!(
        "import mutation test: {} inputs, {} decoded Ok; peak allocation: validate <= input + {} bytes, decode <= {:.2}x input (inputs >= 1 KiB); slowest input {:.2} ms",
        st.inputs, st.ok, st.worst_parse_excess, st.worst_decode_ratio, st.slowest_ms
    );
    assert!(st.inputs > 10_000);
}
