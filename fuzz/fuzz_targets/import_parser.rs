//! Fuzz the export/import parser: any bytes must give `Ok` or a typed import error, never a
//! panic, a hang or an allocation driven by a declared length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mnemo::store::export::{decode_all, validate};
use mnemo::store::StoreError;

fuzz_target!(|data: &[u8]| {
    // Without the checksum, so the fuzzer reaches the record parser.
    for verify in [false, true] {
        match validate(data, verify) {
            Ok(_) | Err(StoreError::CorruptImport { .. }) | Err(StoreError::SchemaTooNew { .. }) => {}
            Err(e) => panic!("unexpected error kind: {e:?}"),
        }
    }
    match decode_all(data) {
        Ok((summary, eps)) => assert_eq!(summary.count, eps.len()),
        Err(StoreError::CorruptImport { .. }) | Err(StoreError::SchemaTooNew { .. }) => {}
        Err(e) => panic!("unexpected error kind: {e:?}"),
    }
});
