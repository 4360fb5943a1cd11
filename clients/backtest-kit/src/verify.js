/**
 * verifyTenant: checks a tenant's store through the gateway, typically a database
 * written by @backtest-kit/mongo that a BacktestPersistence has adopted.
 *
 * Every kind is enumerated with the gateway's scan operation (verb "list" on
 * backtestpersistences/data, see docs/api.md) and every key it returns is read
 * back in batches the way a worker reads it. The report counts documents per kind
 * and lists each one that cannot be read, with its collection and key: a document
 * whose key fields no request can carry (the scan names it by _id), a read that
 * fails, a list item or candle the reads do not return.
 */
import { KINDS } from "./adapters.js";

const LIST_KINDS = new Set(["storage", "notification", "log"]);
const PAGE = 1000;
const READS_PER_BATCH = 500;
const CANDLE_RUN = 1000;
const STEP_MS = { m: 60000, h: 3600000, d: 86400000 };

/** Every page of a kind's scan. */
async function scanKind(client, kind) {
  const keys = [];
  const unreadable = [];
  let collection = "";
  let after;
  for (;;) {
    const req = { kind, op: "scan", limit: PAGE };
    if (after) req.after = after;
    const res = await client.op(req);
    const v = res?.value ?? {};
    collection = v.collection ?? collection;
    keys.push(...(v.keys ?? []));
    unreadable.push(...(v.unreadable ?? []));
    if (!v.next) return { collection, keys, unreadable };
    after = v.next;
  }
}

/** Runs read operations in batches; resolves with one result or {error} per operation. */
async function readAll(client, ops, concurrency) {
  const out = new Array(ops.length);
  const groups = [];
  for (let i = 0; i < ops.length; i += READS_PER_BATCH) groups.push(i);
  let next = 0;
  const worker = async () => {
    while (next < groups.length) {
      const start = groups[next++];
      const part = ops.slice(start, start + READS_PER_BATCH);
      let results;
      try {
        results = await client.batch(part);
      } catch (e) {
        results = part.map(() => ({ error: { code: e?.code ?? "Error", message: String(e?.message ?? e) } }));
      }
      results.forEach((r, i) => (out[start + i] = r));
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, groups.length)) }, worker));
  return out;
}

const errText = (r) => `${r.error.code}: ${r.error.message}`;

/**
 * @param {{client: import("./client.js").GatewayClient, concurrency?: number, kinds?: string[]}} opts
 * @returns {Promise<import("./index.js").VerifyReport>}
 */
export async function verifyTenant({ client, concurrency = 4, kinds = KINDS.map(([k]) => k) }) {
  const started = performance.now();
  const report = { kinds: {}, unreadable: [], documents: 0, ms: 0, ok: true };
  for (const kind of kinds) {
    const s = await scanKind(client, kind);
    const k = { collection: s.collection, documents: s.keys.length + s.unreadable.length, readable: 0, removed: 0, unreadable: s.unreadable.length };
    report.kinds[kind] = k;
    for (const u of s.unreadable) report.unreadable.push({ kind, collection: s.collection, id: u.id, key: u.key, error: u.error });
    const bad = (key, error) => {
      k.unreadable++;
      report.unreadable.push({ kind, collection: s.collection, key, error });
    };

    if (LIST_KINDS.has(kind)) {
      // One read per list; every scanned item must come back in it.
      const lists = new Map();
      for (const { key } of s.keys) {
        const { id, ...listKey } = key;
        const lk = JSON.stringify(listKey);
        if (!lists.has(lk)) lists.set(lk, { listKey, ids: [] });
        lists.get(lk).ids.push(String(id));
      }
      const all = [...lists.values()];
      const results = await readAll(client, all.map((l) => ({ kind, op: "read", key: l.listKey })), concurrency);
      all.forEach((l, i) => {
        const r = results[i];
        if (r?.error) {
          for (const id of l.ids) bad({ ...l.listKey, id }, errText(r));
          return;
        }
        const got = new Set((Array.isArray(r?.value) ? r.value : []).map((it) => String(it?.id)));
        for (const id of l.ids) {
          if (got.has(id)) k.readable++;
          else bad({ ...l.listKey, id }, "the list read does not return this item");
        }
      });
    } else if (kind === "candle") {
      // One window read per run of consecutive candles.
      const series = new Map();
      for (const { key } of s.keys) {
        const { timestamp, ...sk } = key;
        const id = JSON.stringify(sk);
        if (!series.has(id)) series.set(id, { key: sk, ts: [] });
        series.get(id).ts.push(timestamp);
      }
      const runs = [];
      for (const { key, ts } of series.values()) {
        const step = Number(key.interval.slice(0, -1)) * (STEP_MS[key.interval.slice(-1)] ?? NaN);
        ts.sort((a, b) => a - b);
        let run = [];
        for (const t of ts) {
          if (run.length > 0 && (t !== run[run.length - 1] + step || run.length >= CANDLE_RUN)) {
            runs.push({ key, run });
            run = [];
          }
          run.push(t);
        }
        if (run.length > 0) runs.push({ key, run });
      }
      const results = await readAll(client, runs.map(({ key, run }) => ({ kind, op: "read", key, limit: run.length, since: run[0] })), concurrency);
      runs.forEach(({ key, run }, i) => {
        const r = results[i];
        if (!r?.error && Array.isArray(r?.value) && r.value.length === run.length) k.readable += run.length;
        else for (const timestamp of run) bad({ ...key, timestamp }, r?.error ? errText(r) : "the window read does not return this candle");
      });
    } else {
      const results = await readAll(client, s.keys.map(({ key }) => ({ kind, op: "read", key })), concurrency);
      s.keys.forEach(({ key, removed }, i) => {
        const r = results[i];
        if (r?.error) bad(key, errText(r));
        else if (removed) k.removed++;
        else k.readable++;
      });
    }
    report.documents += k.documents;
  }
  report.ms = performance.now() - started;
  report.ok = report.unreadable.length === 0;
  return report;
}

/** The report as text: documents per kind, then every one that cannot be read. */
export function formatVerifyReport(r) {
  const lines = [`${r.documents} documents, ${r.unreadable.length} unreadable`];
  lines.push(`${"kind".padEnd(13)} ${"collection".padEnd(19)} ${"documents".padStart(9)} ${"readable".padStart(8)} ${"removed".padStart(7)} ${"unreadable".padStart(10)}`);
  for (const [kind, c] of Object.entries(r.kinds)) {
    lines.push(`${kind.padEnd(13)} ${c.collection.padEnd(19)} ${String(c.documents).padStart(9)} ${String(c.readable).padStart(8)} ${String(c.removed).padStart(7)} ${String(c.unreadable).padStart(10)}`);
  }
  for (const u of r.unreadable) lines.push(`unreadable ${u.collection}${u.id ? ` _id ${u.id}` : ""} key ${JSON.stringify(u.key)}: ${u.error}`);
  return lines.join("\n");
}
