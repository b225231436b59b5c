//! Memory fetch: fused similarity + top-k over f32/f16/int8 banks, allow-masks, chunked banks, gather.
