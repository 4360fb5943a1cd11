/**
 * importDump: moves a backtest-kit file dump into a tenant through the gateway.
 *
 * Read, compare, write: every record of the dump (readDump) is first read back
 * from the tenant in batches; only records that differ are written, so a second
 * run writes nothing and reports 0 changes. Writes go in batches too (at most
 * 500 operations and a few MiB a request). A batch the gateway refuses as a
 * whole (one operation it finds malformed) is retried one operation at a time,
 * so one bad record is reported and the rest still land. --verify re-reads the
 * dump and the tenant afterwards: a record that changed in the dump while the
 * import ran (a bot still writing), or that the tenant does not return as the
 * dump has it, is reported and the run fails.
 */
import { readDump } from "./dump.js";
import { KINDS } from "./adapters.js";

const LIST_KINDS = new Set(["storage", "notification", "log"]);
const SOFT_KINDS = new Set(["measure", "interval", "memory"]);
const MAX_OPS = 500; // the gateway's --gateway-max-batch-ops default
const MAX_BATCH_BYTES = 4 << 20; // well under the 8 MiB body limit
const LIST_CHUNK = 10; // items per list write: on FerretDB each upsert scans the collection (0.18 s at 200,000 items), and one write gets 5 s
const CANDLE_CHUNK = 1000; // candles per window read and per write
const CANDLE_JSON_BYTES = 160; // about what one candle takes in an answer

// What a list read returns: the window backtest-kit keeps (the store's kinds table, Head):
// the n items of highest sort field. A tenant may raise n, never lower it.
const LIST_WINDOWS = {
  storage: { n: 50, sort: (it) => Number(it.priority) },
  notification: { n: 500, sort: (it) => ("createdAt" in it ? Number(typeof it.createdAt === "string" ? Date.parse(it.createdAt) : it.createdAt) : 0) },
  log: { n: 1000, sort: (it) => Number(it.priority) },
};

const isObj = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

/** JSON with object keys sorted: equal for values the gateway returns in any key order. */
export function canonical(v) {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (isObj(v)) {
    return `{${Object.keys(v)
      .sort()
      .filter((k) => v[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`)
      .join(",")}}`;
  }
  const s = JSON.stringify(v);
  return s === undefined ? "null" : s;
}
const same = (a, b) => canonical(a) === canonical(b);
const keyText = (kind, key) => `${kind} ${JSON.stringify(key)}`;

/**
 * Units: what is read to decide, and how a read answer turns into writes.
 * One unit per record; per list key (its items compared by id); per run of
 * consecutive candles (one window read).
 */
function plan(dump) {
  const units = [];
  const lists = new Map();
  const series = new Map();
  for (const r of dump.records) {
    if (LIST_KINDS.has(r.kind)) {
      const lk = keyText(r.kind, r.key);
      if (!lists.has(lk)) lists.set(lk, { kind: r.kind, key: r.key, items: [] });
      lists.get(lk).items.push(r);
    } else if (r.kind === "candle") {
      const sk = keyText("candle", r.key);
      if (!series.has(sk)) series.set(sk, { key: r.key, candles: [] });
      series.get(sk).candles.push(r);
    } else {
      units.push(recordUnit(r));
    }
  }
  for (const l of lists.values()) units.push(listUnit(l));
  for (const s of series.values()) units.push(...candleUnits(s));
  return units;
}

function recordUnit(r) {
  const tomb = SOFT_KINDS.has(r.kind) && isObj(r.value) && r.value.removed === true;
  const reads = [{ kind: r.kind, op: "read", key: r.key }];
  if (tomb && r.kind === "memory") reads.push({ kind: r.kind, op: "has", key: r.key });
  const write = { kind: r.kind, op: "write", key: r.key, value: r.value === undefined ? null : r.value };
  if (r.when !== undefined) write.when = r.when;
  return {
    kind: r.kind,
    records: [r],
    reads,
    decide([read, has]) {
      const v = read.value ?? null;
      // A tombstone reads as nothing: it matches an absent record (Memory: one that `has` sees).
      const ok = tomb ? v === null && (r.kind !== "memory" || has.has === true) : same(v, r.value ?? null);
      return ok ? { unchanged: [r] } : { writes: [{ op: write, records: [r] }] };
    },
  };
}

function listUnit({ kind, key, items }) {
  return {
    kind,
    records: items,
    reads: [{ kind, op: "read", key }],
    decide([read]) {
      const have = new Map();
      for (const it of Array.isArray(read.value) ? read.value : []) if (isObj(it)) have.set(String(it.id), it);
      const unchanged = [];
      const conflicts = [];
      const todo = [];
      // A full window hides older items: those are sent again (the store skips unchanged
      // items) but cannot be compared, so they are neither changes nor mismatches.
      const beyond = [];
      const w = LIST_WINDOWS[kind];
      let floor = -Infinity;
      if (w && have.size >= w.n) floor = Math.min(...[...have.values()].map(w.sort).filter((x) => !Number.isNaN(x)));
      for (const r of items) {
        const h = have.get(r.id);
        if (h === undefined && isObj(r.value) && w && w.sort(r.value) < floor) beyond.push(r);
        else if (h !== undefined && same(h, r.value)) unchanged.push(r);
        else if (h !== undefined && kind === "log") conflicts.push({ record: r, error: "the tenant holds another entry with this id (logs are insert-only)" });
        else todo.push(r);
      }
      const writes = [];
      for (const [list, unseen] of [[todo, false], [beyond, true]]) {
        for (let i = 0; i < list.length; i += LIST_CHUNK) {
          const part = list.slice(i, i + LIST_CHUNK);
          writes.push({ op: { kind, op: "write", key, value: part.map((r) => r.value) }, records: part, unseen });
        }
      }
      return { unchanged, conflicts, writes };
    },
  };
}

function candleUnits({ key, candles }) {
  const step = Number(key.interval.replace(/\D+$/, "")) * { m: 60000, h: 3600000, d: 86400000 }[key.interval.slice(-1)];
  candles.sort((a, b) => a.timestamp - b.timestamp);
  const runs = [];
  let run = [];
  for (const c of candles) {
    const prev = run[run.length - 1];
    if (run.length > 0 && (c.timestamp !== prev.timestamp + step || run.length >= CANDLE_CHUNK)) {
      runs.push(run);
      run = [];
    }
    run.push(c);
  }
  if (run.length > 0) runs.push(run);
  return runs.map((run) => ({
    kind: "candle",
    records: run,
    reads: [{ kind: "candle", op: "read", key, limit: run.length, since: run[0].timestamp }],
    decide([read]) {
      const got = read.value;
      if (Array.isArray(got) && got.length === run.length) {
        const conflicts = [];
        const unchanged = [];
        run.forEach((r, i) => (same(got[i], r.value) ? unchanged.push(r) : conflicts.push({ record: r, error: "the tenant holds another candle for this open time (candles are insert-only)" })));
        return { unchanged, conflicts };
      }
      // Some are missing: the write is insert-only, the ones already stored stay as they are.
      return { writes: [{ op: { kind: "candle", op: "write", key, value: run.map((r) => r.value) }, records: run }] };
    },
  }));
}

/** Groups operations into batches of at most MAX_OPS operations and MAX_BATCH_BYTES (requests and candle answers). */
function batches(ops) {
  const out = [];
  let cur = [];
  let bytes = 0;
  for (const o of ops) {
    // A candle window read answers with its candles: counted in, so no answer grows past a few MiB.
    const answer = o.op.kind === "candle" && o.op.op === "read" ? o.op.limit * CANDLE_JSON_BYTES : 0;
    const n = Buffer.byteLength(JSON.stringify(o.op)) + answer;
    if (cur.length > 0 && (cur.length >= MAX_OPS || bytes + n > MAX_BATCH_BYTES)) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(o);
    bytes += n;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

/**
 * Runs operations in batches, `concurrency` batches at a time. Each item is {op, ...};
 * resolves with one {result} or {error} per item, in order.
 */
async function runOps(client, items, concurrency, onDone) {
  const out = new Array(items.length);
  const groups = [];
  let at = 0;
  for (const b of batches(items)) {
    groups.push({ start: at, items: b });
    at += b.length;
  }
  let next = 0;
  const worker = async () => {
    while (next < groups.length) {
      const g = groups[next++];
      const ops = g.items.map((x) => x.op);
      let results;
      try {
        results = await client.batch(ops);
      } catch (e) {
        if (e?.status !== 400 && e?.status !== 413) {
          results = ops.map(() => ({ error: { code: e?.code ?? "Error", message: String(e?.message ?? e) } }));
        } else {
          // One operation the gateway refuses rejects its whole batch: find it, send the others.
          results = [];
          for (const op of ops) {
            try {
              results.push(await client.op(op));
            } catch (e1) {
              results.push({ error: { code: e1?.code ?? "Error", message: String(e1?.message ?? e1) } });
            }
          }
        }
      }
      results.forEach((r, i) => (out[g.start + i] = r));
      onDone?.(g.items.length);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, groups.length)) }, worker));
  return out;
}

/** A progress line on a terminal; nothing otherwise. */
function progress(out, enabled) {
  let last = 0;
  return (phase, done, total) => {
    if (!enabled || total === 0) return;
    const now = Date.now();
    if (done < total && now - last < 100) return;
    last = now;
    const w = 30;
    const fill = Math.round((done / total) * w);
    out.write(`\r${phase.padEnd(7)} [${"#".repeat(fill)}${"-".repeat(w - fill)}] ${done}/${total} operations${done >= total ? "\n" : ""}`);
  };
}

function emptyCounts() {
  const c = {};
  for (const [k] of KINDS) c[k] = { records: 0, unchanged: 0, written: 0, failed: 0, beyondWindow: 0 };
  return c;
}

/** Reads every unit's operations and decides; returns per-unit decisions. */
async function compare(client, units, concurrency, tick) {
  const items = [];
  for (const u of units) for (const op of u.reads) items.push({ op, unit: u });
  let done = 0;
  const results = await runOps(client, items, concurrency, (n) => tick("read", (done += n), items.length));
  const decisions = [];
  let i = 0;
  for (const u of units) {
    const rs = results.slice(i, i + u.reads.length);
    i += u.reads.length;
    const bad = rs.find((r) => r && r.error);
    if (bad) decisions.push({ unit: u, failed: u.records.map((record) => ({ record, error: `${bad.error.code}: ${bad.error.message}` })) });
    else decisions.push({ unit: u, ...u.decide(rs) });
  }
  return decisions;
}

/**
 * Imports a dump into the tenant the client talks to.
 * @param {import("./index.js").ImportOptions} opts
 * @returns {Promise<import("./index.js").ImportReport>}
 */
export async function importDump(opts) {
  const { client, dump: dir, dryRun = false, verify = false, candles = true, concurrency = 4 } = opts;
  const out = opts.progress ?? process.stdout;
  const tick = progress(out, opts.progressBar ?? Boolean(out.isTTY));
  const started = performance.now();
  const dump = await readDump(dir, { candles });
  const counts = emptyCounts();
  for (const r of dump.records) counts[r.kind].records++;
  const failures = [];
  const conflicts = [];

  const units = plan(dump);
  const decisions = await compare(client, units, concurrency, tick);
  const writes = [];
  for (const d of decisions) {
    for (const r of d.unchanged ?? []) counts[r.kind].unchanged++;
    for (const f of d.failed ?? []) {
      counts[f.record.kind].failed++;
      failures.push({ kind: f.record.kind, path: f.record.path, key: f.record.key, error: f.error });
    }
    for (const c of d.conflicts ?? []) {
      counts[c.record.kind].failed++;
      conflicts.push({ kind: c.record.kind, path: c.record.path, key: c.record.key, error: c.error });
    }
    writes.push(...(d.writes ?? []));
  }
  if (dryRun) {
    for (const w of writes) for (const r of w.records) counts[r.kind][w.unseen ? "beyondWindow" : "written"]++;
  } else if (writes.length > 0) {
    let done = 0;
    const results = await runOps(client, writes, concurrency, (n) => tick("write", (done += n), writes.length));
    writes.forEach((w, i) => {
      const res = results[i];
      for (const r of w.records) {
        if (res && res.error) {
          counts[r.kind].failed++;
          failures.push({ kind: r.kind, path: r.path, key: r.key, error: `${res.error.code}: ${res.error.message}` });
        } else counts[r.kind][w.unseen ? "beyondWindow" : "written"]++;
      }
    });
  }
  const importMs = performance.now() - started;

  if (opts.afterImport) await opts.afterImport();
  let verified;
  if (verify) verified = await verifyDump(client, dump, { dir, candles, concurrency, tick });

  const changes = Object.values(counts).reduce((a, c) => a + c.written, 0);
  const records = dump.records.length;
  const report = {
    dump: dump.dir,
    dryRun,
    records,
    changes,
    kinds: counts,
    problems: dump.problems,
    unknown: dump.unknown,
    skipped: dump.skipped,
    failures,
    conflicts,
    importMs,
    recordsPerSecond: importMs > 0 ? (records * 1000) / importMs : 0,
  };
  if (verified) report.verify = verified;
  report.ok =
    dump.problems.length === 0 && dump.unknown.length === 0 && failures.length === 0 && conflicts.length === 0 && (!verified || verified.ok);
  return report;
}

/**
 * Reads the dump again and everything back from the tenant: records that changed
 * in the dump since the first read, and records the tenant does not return as the
 * dump now has them.
 */
async function verifyDump(client, first, { dir, candles, concurrency, tick }) {
  const again = await readDump(dir, { candles });
  const id = (r) => `${keyText(r.kind, r.key)}${r.id !== undefined ? ` ${r.id}` : ""}${r.timestamp !== undefined ? ` ${r.timestamp}` : ""}`;
  const before = new Map(first.records.map((r) => [id(r), r]));
  const changedInDump = [];
  for (const r of again.records) {
    const b = before.get(id(r));
    if (!b) changedInDump.push({ kind: r.kind, path: r.path, change: "appeared" });
    else if (!same(b.value, r.value)) changedInDump.push({ kind: r.kind, path: r.path, change: "changed" });
    before.delete(id(r));
  }
  for (const r of before.values()) changedInDump.push({ kind: r.kind, path: r.path, change: "disappeared" });
  for (const p of again.problems) {
    if (!first.problems.some((q) => q.path === p.path)) changedInDump.push({ kind: p.kind, path: p.path, change: "became unreadable" });
  }
  const decisions = await compare(client, plan(again), concurrency, (phase, d, t) => tick("verify", d, t));
  const mismatches = [];
  let matched = 0;
  let beyondWindow = 0;
  for (const d of decisions) {
    matched += (d.unchanged ?? []).length;
    for (const w of d.writes ?? []) if (w.unseen) beyondWindow += w.records.length;
    for (const w of d.writes ?? []) for (const r of w.unseen ? [] : w.records) mismatches.push({ kind: r.kind, path: r.path, key: r.key, error: "the tenant does not hold this record as the dump has it" });
    for (const c of [...(d.failed ?? []), ...(d.conflicts ?? [])]) mismatches.push({ kind: c.record.kind, path: c.record.path, key: c.record.key, error: c.error });
  }
  return { records: again.records.length, matched, beyondWindow, mismatches, changedInDump, ok: mismatches.length === 0 && changedInDump.length === 0 };
}

/** The report as text: counts per kind, then every problem. */
export function formatImportReport(r) {
  const lines = [];
  const head = r.dryRun ? "would write" : "written";
  lines.push(`${r.dryRun ? "dry run: " : ""}${r.records} records in ${r.dump}, ${r.changes} ${r.dryRun ? "to write" : "changes"}`);
  lines.push(`${"kind".padEnd(13)} ${"records".padStart(8)} ${"unchanged".padStart(9)} ${head.padStart(11)} ${"failed".padStart(6)} ${"beyond window".padStart(13)}`);
  for (const [k, c] of Object.entries(r.kinds)) {
    if (c.records === 0 && c.failed === 0) continue;
    lines.push(`${k.padEnd(13)} ${String(c.records).padStart(8)} ${String(c.unchanged).padStart(9)} ${String(c.written).padStart(11)} ${String(c.failed).padStart(6)} ${String(c.beyondWindow).padStart(13)}`);
  }
  lines.push(`${(r.importMs / 1000).toFixed(1)} s, ${Math.round(r.recordsPerSecond)} records/s`);
  for (const p of r.problems) lines.push(`unreadable ${p.kind ?? "?"}: ${p.path}: ${p.error}`);
  for (const u of r.unknown) lines.push(`unknown${u.kind ? ` in ${u.kind}` : ""}: ${u.path}: ${u.reason}`);
  for (const s of r.skipped) lines.push(`skipped: ${s.path}: ${s.reason}`);
  for (const f of r.failures) lines.push(`failed ${f.kind}: ${f.path}: ${f.error}`);
  for (const c of r.conflicts) lines.push(`conflict ${c.kind}: ${c.path}: ${c.error}`);
  if (r.verify) {
    const v = r.verify;
    lines.push(`verify: ${v.matched}/${v.records} records match the tenant${v.ok ? "" : ", NOT OK"}`);
    if (v.beyondWindow > 0) lines.push(`verify: ${v.beyondWindow} list items older than the window a read returns (sent again, not compared)`);
    for (const c of v.changedInDump) lines.push(`verify: dump ${c.change} while importing (a bot still running?): ${c.kind} ${c.path}`);
    for (const m of v.mismatches) lines.push(`verify: ${m.kind}: ${m.path}: ${m.error}`);
  }
  return lines.join("\n");
}
