//! Attention kernels: tiled online-softmax prefill, flash-decoding over a KV cache, top-k block-sparse attention.
