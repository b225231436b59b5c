//! Hierarchical memory bank (k-means tree, beam search) and product-key lookup.
