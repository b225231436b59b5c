// @electric-sql/pglite 0.5.14 + @electric-sql/pglite-pgvector 0.0.15: Postgres (WASM) with the
// pgvector extension, persisted to IndexedDB (`idb://`). Used as the READMEs say:
// `PGlite.create('idb://<name>', { extensions: { vector }, relaxedDurability: true })`,
// `CREATE EXTENSION vector`, a table with a `vector(384)` column and an HNSW index
// (`vector_cosine_ops`, pgvector's defaults m = 16, ef_construction = 64), queries
// `ORDER BY embedding <=> $1 LIMIT k` with `hnsw.ef_search` set per variant.
// Durability: relaxed (writes reach IndexedDB asynchronously; `syncToFs()` flushes before close,
// else data is lost). With strict durability every query also flushes the file system to
// IndexedDB (the issue measured ~1 s per query at 100k), so relaxed is the fair setting for reads.
// Bulk load as pgvector recommends: rows first, then CREATE INDEX; maintenance_work_mem is raised
// so the graph is built in memory.
import { PGlite } from '@electric-sql/pglite';
import { vector } from '@electric-sql/pglite-pgvector';

const EF_SEARCH = [40, 80, 160, 320, 640];
const BATCH = 1000;
const MAINTENANCE_WORK_MEM = '512MB';

const literal = (v) => `[${Array.prototype.join.call(v, ',')}]`;

export function create() {
  let db = null;
  let dims = 0;
  let indexed = false;
  return {
    name: 'PGlite + pgvector HNSW (relaxed durability)',
    version: '0.5.14 / pgvector 0.0.15',
    caps: { persist: true, delete: true },
    notes: [`PGlite: idb:// with relaxedDurability, syncToFs() before close (plus an awaited db.fs.syncToFs(): with relaxed durability PGlite's syncToFs() returns before the flush is done, and the data was lost); HNSW (m=16, ef_construction=64, vector_cosine_ops) built after the bulk insert (maintenance_work_mem=${MAINTENANCE_WORK_MEM}); rows inserted ${BATCH} per statement (unnest of arrays) in one transaction; hnsw.ef_search 40 then doubled until recall@10 >= 0.99; reopen uses 40.`],
    variants: EF_SEARCH.map((ef) => ({ label: `ef_search=${ef}`, efSearch: ef })),
    sweepToRecall: 0.99,
    async configure(v) { await db.exec(`SET hnsw.ef_search = ${v.efSearch | 0}`); },
    async init(o) {
      dims = o.dims;
      db = await PGlite.create(`idb://${o.name}`, { extensions: { vector }, relaxedDurability: true });
      await db.exec(`CREATE EXTENSION IF NOT EXISTS vector;
        CREATE TABLE IF NOT EXISTS items (id integer PRIMARY KEY, text text, embedding vector(${dims | 0}));
        SET maintenance_work_mem = '${MAINTENANCE_WORK_MEM}';`);
    },
    async insert(ids, vectors, texts) {
      await db.transaction(async (tx) => {
        for (let from = 0; from < ids.length; from += BATCH) {
          const to = Math.min(ids.length, from + BATCH);
          const is = [], ts = [], es = [];
          for (let i = from; i < to; i++) {
            is.push(ids[i]);
            ts.push(texts[i]);
            es.push(literal(vectors.subarray(i * dims, (i + 1) * dims)));
          }
          await tx.query('INSERT INTO items (id, text, embedding) SELECT i, t, e::vector FROM unnest($1::int[], $2::text[], $3::text[]) AS u(i, t, e)', [is, ts, es]);
        }
      });
      if (!indexed) {
        await db.exec('CREATE INDEX IF NOT EXISTS items_embedding_hnsw ON items USING hnsw (embedding vector_cosine_ops)');
        indexed = true;
      }
      await db.exec(`SET hnsw.ef_search = ${EF_SEARCH[0]}`);
    },
    async query(q, k) {
      const r = await db.query('SELECT id FROM items ORDER BY embedding <=> $1::vector LIMIT $2', [literal(q), k]);
      return r.rows.map((x) => x.id);
    },
    async delete(del) {
      await db.query('DELETE FROM items WHERE id = ANY($1::int[])', [Array.from(del)]);
    },
    async persist() {
      await db.syncToFs();
      // With relaxedDurability, PGlite 0.5.14's syncToFs() starts the flush and returns before it
      // is done (and close() does not wait for it): the data would be lost when the page goes.
      // Await the file system's own flush (Emscripten IDBFS syncfs) before closing.
      await db.fs.syncToFs(true);
      await db.close();
    },
    async reopen(o) {
      dims = o.dims;
      db = await PGlite.create(`idb://${o.name}`, { extensions: { vector }, relaxedDurability: true });
      await db.exec(`SET hnsw.ef_search = ${EF_SEARCH[0]}`);
    },
    async stats() {
      const r = await db.query('SELECT count(*)::int AS n FROM items');
      return { count: r.rows[0].n };
    },
    async close() { if (db && !db.closed) await db.close(); },
  };
}
