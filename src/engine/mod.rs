//! The memory engine: remember / recall with hybrid ranking (vector + BM25 + recency + importance).
