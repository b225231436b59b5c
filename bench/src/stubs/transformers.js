// Stand-in for @xenova/transformers in the client-vector-search bundle. The library imports it
// (dynamically) only to compute embeddings from text with a model downloaded from a hub at run
// time; the benchmark passes precomputed embeddings and never calls getEmbedding, and nothing may
// be fetched from the network. Calling it fails loudly.
export async function pipeline() {
  throw new Error('transformers.js is stubbed out in the benchmark (no model downloads)');
}
export const env = {};
