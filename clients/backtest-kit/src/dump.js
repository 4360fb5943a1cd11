/**
 * readDump: every record of a backtest-kit file dump (./dump), read with the
 * installed backtest-kit's own file adapter classes.
 *
 * The file adapters name their folders by joining key parts (a signal lives in
 * dump/data/signal/<symbol>_<strategy>_<exchange>/<symbol>.json), so a folder
 * name is turned back into a key by trying the splits of the name, keeping the
 * ones whose parts are names the dump itself uses elsewhere (exchanges and
 * symbols of the candle folders, the strategy/exchange folders of sessions, the
 * names inside signal, storage and risk rows), and accepting a key only when
 * exactly one split remains and the installed backtest-kit's Persist<Kind>Instance,
 * built with that key, reads exactly that file. Anything else is reported, never
 * guessed: a folder no kind owns, a name that splits more than one way, a file
 * that is not valid JSON (with its path and kind). The dump is only read: the
 * adapters' waitForInit (which deletes files it cannot parse) is never called.
 */
import { mkdtempSync, readdirSync, rmSync, statSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import * as bk from "backtest-kit";
import { INTERVAL_MINUTES } from "./candles.js";

/** Top-level folders of a dump that hold reports, not adapter state: skipped, listed as such. */
const REPORT_FOLDERS = new Set([
  "agent", "backtest", "breakeven", "heatmap", "highest_profit", "image", "live", "log", "markdown",
  "max_drawdown", "mcp", "partial", "performance", "report", "risk", "schedule", "strategy", "sync", "walker",
]);
/** Folders of dump/data/, one per kind. */
const DATA_KINDS = ["signal", "schedule", "strategy", "risk", "partial", "breakeven", "candle", "storage", "notification", "log", "measure", "interval", "recent"];
const TMP_PREFIX = ".tmp-"; // backtest-kit's atomic-write temporary files

const READ_CONCURRENCY = 32; // files of one folder read at once

/** fn over items, at most READ_CONCURRENCY at a time; results in the items' order. */
async function inOrder(items, fn) {
  const out = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, items.length) }, worker));
  return out;
}

/** PersistBase.keys()'s order (one collator: localeCompare with options builds one per call). */
const KEY_ORDER = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });

const isObj = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const str = (v) => typeof v === "string" && v !== "";
const mode = (backtest) => (backtest ? "backtest" : "live");

/** The logical time a record carries in its payload, for kinds whose writes take one. */
const WHEN = {
  interval: (v) => (isObj(v) && typeof v.when === "string" ? Date.parse(v.when) : undefined),
  memory: (v) => (isObj(v) ? v.when : undefined),
  recent: (v) => (isObj(v) ? v.timestamp : undefined),
  state: (v) => (isObj(v) ? v.when : undefined),
  session: (v) => (isObj(v) ? v.when : undefined),
};
const whenOf = (kind, value) => {
  const w = WHEN[kind]?.(value);
  return Number.isFinite(w) && w >= 0 ? Math.trunc(w) : undefined;
};

/** Every way of cutting name at "_" into n non-empty parts. */
export function splits(name, n) {
  if (n === 1) return name === "" ? [] : [[name]];
  const out = [];
  for (let i = name.indexOf("_"); i > 0; i = name.indexOf("_", i + 1)) {
    const head = name.slice(0, i);
    for (const rest of splits(name.slice(i + 1), n - 1)) out.push([head, ...rest]);
  }
  return out;
}

/** Runs fn with the working directory at a scratch folder whose ./dump is dir (the adapters' paths are relative). */
export async function withDumpCwd(dir, fn) {
  const abs = path.resolve(dir);
  const scratch = mkdtempSync(path.join(tmpdir(), "btp-dump-"));
  symlinkSync(abs, path.join(scratch, "dump"), "dir");
  const back = process.cwd();
  process.chdir(scratch);
  try {
    return await fn(abs);
  } finally {
    process.chdir(back);
    rmSync(scratch, { recursive: true, force: true });
  }
}

const entries = (abs) => {
  try {
    return readdirSync(abs, { withFileTypes: true });
  } catch {
    return [];
  }
};
const dirs = (abs) => entries(abs).filter((e) => e.isDirectory()).map((e) => e.name).sort();

/**
 * Reads a dump. Must run inside withDumpCwd (readDump does that).
 * @param {string} dir the dump folder (what backtest-kit calls ./dump)
 * @param {{candles?: boolean}} [opts] candles: false skips candle folders (listed as skipped)
 * @returns {Promise<import("./index.js").Dump>}
 */
export async function readDump(dir, opts = {}) {
  let st;
  try {
    st = statSync(path.resolve(dir));
  } catch (e) {
    throw new Error(`backtest-persistence: no dump at ${dir}: ${e.code ?? e.message}`);
  }
  if (!st.isDirectory()) throw new Error(`backtest-persistence: ${dir} is not a folder (give the dump folder, backtest-kit's ./dump)`);
  return withDumpCwd(dir, (abs) => scanDump(abs, opts));
}

async function scanDump(root, { candles = true }) {
  /** @type {import("./index.js").DumpRecord[]} */
  const records = [];
  const problems = [];
  const unknown = [];
  const skipped = [];
  const rel = (...p) => path.join(...p);
  const names = { symbol: new Set(), strategyName: new Set(), exchangeName: new Set(), frameName: new Set() };
  const learn = (row) => {
    if (!isObj(row)) return;
    for (const f of Object.keys(names)) if (str(row[f])) names[f].add(row[f]);
  };

  /** Files of one PersistBase folder: {id, file} for *.json (temporary files skipped), the rest reported. */
  const filesOf = (relDir, kind) => {
    const out = [];
    for (const e of entries(path.join(root, relDir))) {
      if (e.name.startsWith(TMP_PREFIX)) continue;
      if (e.isFile() && e.name.endsWith(".json")) out.push({ id: e.name.slice(0, -5), file: rel(relDir, e.name) });
      else unknown.push({ path: rel(relDir, e.name), kind, reason: e.isDirectory() ? "a folder where backtest-kit keeps only files" : "not a .json file" });
    }
    return out.sort((a, b) => KEY_ORDER.compare(a.id, b.id));
  };
  /** Reads one file through a backtest-kit PersistBase (the adapters' reader); problems are recorded. */
  const readVia = async (storage, id, file, kind) => {
    try {
      return { ok: true, value: await storage.readValue(id) };
    } catch (e) {
      problems.push({ path: file, kind, error: String(e?.message ?? e) });
      return { ok: false };
    }
  };
  /** True when the installed adapter built for this key keeps entity id in exactly this file. */
  const owns = (inst, id, file) => {
    const p = inst?._storage?._getFilePath?.(id);
    return typeof p === "string" && path.resolve(p) === path.resolve("dump", file);
  };
  const Inst = (Name) => {
    const C = bk[`Persist${Name}Instance`];
    if (typeof C !== "function") throw new Error(`backtest-persistence: this backtest-kit exports no Persist${Name}Instance`);
    return C;
  };
  const base = (entity, baseDir) => new bk.PersistBase(entity, baseDir);

  // Pass 1: what the dump names elsewhere (used only to tell apart the splits of a folder name).
  for (const ex of dirs(path.join(root, "data", "candle"))) {
    names.exchangeName.add(ex);
    for (const sym of dirs(path.join(root, "data", "candle", ex))) names.symbol.add(sym);
  }
  for (const st of dirs(path.join(root, "session"))) {
    names.strategyName.add(st);
    for (const ex of dirs(path.join(root, "session", st))) names.exchangeName.add(ex);
  }
  const peek = async (kind, perFolder) => {
    for (const folder of dirs(path.join(root, "data", kind))) {
      const b = base(folder, `./dump/data/${kind}/`);
      for (const { id } of filesOf(rel("data", kind, folder), kind).slice(0, perFolder)) {
        try {
          const v = await b.readValue(id);
          if (Array.isArray(v)) for (const [, pos] of v.filter(Array.isArray)) learn(pos);
          else learn(v);
        } catch {
          // reported when the records are read
        }
      }
    }
  };
  unknown.length = 0;
  for (const kind of ["signal", "schedule", "recent", "risk"]) await peek(kind, Infinity);
  for (const kind of ["storage", "notification"]) await peek(kind, 50);
  unknown.length = 0; // pass 2 reports them

  /** The one split of folder into parts whose known-name parts are known; or a problem. */
  const resolve = (kind, folder, fields, fixed = {}) => {
    const open = fields.filter((f) => !(f in fixed));
    let cands = [];
    // fixed parts sit at the start (symbol) or end (mode) of the folder name.
    let name = folder;
    const lead = fields[0] in fixed ? `${fixed[fields[0]]}_` : "";
    const last = fields[fields.length - 1];
    const tail = last in fixed && fields.length > 1 ? `_${fixed[last]}` : "";
    if (!name.startsWith(lead) || !name.endsWith(tail) || name.length < lead.length + tail.length) return null;
    name = name.slice(lead.length, name.length - tail.length);
    for (const parts of splits(name, open.length)) {
      const key = { ...fixed };
      open.forEach((f, i) => (key[f] = parts[i]));
      cands.push(key);
    }
    if (cands.length > 1) {
      const known = cands.filter((k) => open.every((f) => !names[f] || names[f].size === 0 || names[f].has(k[f])));
      if (known.length > 0) cands = known;
    }
    if (cands.length === 1) return cands[0];
    if (cands.length > 1) {
      problems.push({
        path: rel("data", kind, folder),
        kind,
        error: `the folder name splits into more than one key (${cands.map((k) => open.map((f) => k[f]).join(" | ")).join("; ")}): not imported`,
      });
      return undefined;
    }
    return null;
  };
  const push = (kind, key, value, file, extra = {}) => {
    const when = whenOf(kind, value);
    records.push({ kind, key, value, path: file, ...(when !== undefined ? { when } : {}), ...extra });
  };
  const notOwned = (kind, file, why) => unknown.push({ path: file, kind, reason: why });

  // Pass 2: the records.
  for (const top of entries(root)) {
    if (top.name.startsWith(TMP_PREFIX)) continue;
    if (!top.isDirectory()) {
      unknown.push({ path: top.name, reason: "a file at the top of the dump" });
      continue;
    }
    if (top.name === "data") {
      for (const e of entries(path.join(root, "data"))) {
        if (!e.isDirectory() || !DATA_KINDS.includes(e.name)) {
          unknown.push({ path: rel("data", e.name), reason: "no backtest-kit adapter keeps this folder" });
        }
      }
    } else if (!["memory", "state", "session"].includes(top.name)) {
      if (REPORT_FOLDERS.has(top.name)) skipped.push({ path: top.name, reason: "backtest-kit report output, not adapter state" });
      else unknown.push({ path: top.name, reason: "no backtest-kit adapter keeps this folder" });
    }
  }

  // Signal, Schedule: data/<kind>/<symbol>_<strategy>_<exchange>/<symbol>.json
  for (const [kind, Name] of [["signal", "Signal"], ["schedule", "Schedule"]]) {
    for (const folder of dirs(path.join(root, "data", kind))) {
      const b = base(folder, `./dump/data/${kind}/`);
      for (const { id, file } of filesOf(rel("data", kind, folder), kind)) {
        const r = await readVia(b, id, file, kind);
        if (!r.ok) continue;
        const v = r.value;
        let key =
          isObj(v) && `${id}_${v.strategyName}_${v.exchangeName}` === folder
            ? { symbol: id, strategyName: v.strategyName, exchangeName: v.exchangeName }
            : resolve(kind, folder, ["symbol", "strategyName", "exchangeName"], { symbol: id });
        if (key === undefined) continue;
        const inst = key && new (Inst(Name))(key.symbol, key.strategyName, key.exchangeName);
        if (!key || !owns(inst, id, file)) {
          notOwned(kind, file, `backtest-kit's Persist${Name}Instance does not keep this file`);
          continue;
        }
        push(kind, { symbol: key.symbol, strategyName: key.strategyName, exchangeName: key.exchangeName }, v, file);
      }
    }
  }

  // Strategy, Partial, Breakeven: data/<kind>/<symbol>_<strategy>_<exchange>/<id>.json
  for (const [kind, Name] of [["strategy", "Strategy"], ["partial", "Partial"], ["breakeven", "Breakeven"]]) {
    for (const folder of dirs(path.join(root, "data", kind))) {
      const files = filesOf(rel("data", kind, folder), kind);
      if (files.length === 0) continue;
      const key = resolve(kind, folder, ["symbol", "strategyName", "exchangeName"]);
      if (key === undefined) continue;
      const inst = key && new (Inst(Name))(key.symbol, key.strategyName, key.exchangeName);
      for (const { id, file } of files) {
        if (!key || !owns(inst, id, file) || (kind === "strategy" && id !== "strategy")) {
          notOwned(kind, file, `backtest-kit's Persist${Name}Instance does not keep this file`);
          continue;
        }
        const r = await readVia(inst._storage, id, file, kind);
        if (!r.ok) continue;
        const k = { symbol: key.symbol, strategyName: key.strategyName, exchangeName: key.exchangeName };
        push(kind, kind === "strategy" ? k : { ...k, signalId: id }, r.value, file);
      }
    }
  }

  // Risk: data/risk/<riskName>_<exchange>/positions.json
  for (const folder of dirs(path.join(root, "data", "risk"))) {
    const files = filesOf(rel("data", "risk", folder), "risk");
    if (files.length === 0) continue;
    const key = resolve("risk", folder, ["riskName", "exchangeName"]);
    if (key === undefined) continue;
    const inst = key && new (Inst("Risk"))(key.riskName, key.exchangeName);
    for (const { id, file } of files) {
      if (!key || id !== "positions" || !owns(inst, id, file)) {
        notOwned("risk", file, "backtest-kit's PersistRiskInstance does not keep this file");
        continue;
      }
      const r = await readVia(inst._storage, id, file, "risk");
      if (r.ok) push("risk", { riskName: key.riskName, exchangeName: key.exchangeName }, r.value, file);
    }
  }

  // Candle: data/candle/<exchange>/<symbol>/<interval>/<timestamp>.json
  const candleRoot = path.join(root, "data", "candle");
  for (const ex of dirs(candleRoot)) {
    for (const sym of dirs(path.join(candleRoot, ex))) {
      for (const e of entries(path.join(candleRoot, ex, sym))) {
        const relDir = rel("data", "candle", ex, sym, e.name);
        if (!e.isDirectory() || !(e.name in INTERVAL_MINUTES)) {
          unknown.push({ path: relDir, kind: "candle", reason: "not a candle interval backtest-kit knows" });
          continue;
        }
        if (!candles) {
          skipped.push({ path: relDir, kind: "candle", reason: "candles not imported (--no-candles)" });
          continue;
        }
        const inst = new (Inst("Candle"))(sym, e.name, ex);
        const key = { exchangeName: ex, symbol: sym, interval: e.name };
        const files = filesOf(relDir, "candle").filter(({ id, file }) => {
          if (/^\d+$/.test(id) && owns(inst, id, file)) return true;
          notOwned("candle", file, "not a candle open time");
          return false;
        });
        const reads = await inOrder(files, ({ id, file }) => readVia(inst._storage, id, file, "candle"));
        for (const [i, { id, file }] of files.entries()) {
          const r = reads[i];
          if (!r.ok) continue;
          if (!isObj(r.value) || r.value.timestamp !== Number(id)) {
            problems.push({ path: file, kind: "candle", error: `the candle's timestamp is not ${id}` });
            continue;
          }
          records.push({ kind: "candle", key, value: r.value, path: file, timestamp: Number(id) });
        }
      }
    }
  }
  for (const e of entries(candleRoot)) if (!e.isDirectory()) unknown.push({ path: rel("data", "candle", e.name), kind: "candle", reason: "not an exchange folder" });

  // Storage, Notification: data/<kind>/{backtest|live}/<id>.json; Log: data/log/log/<id>.json
  for (const [kind, Name] of [["storage", "Storage"], ["notification", "Notification"], ["log", "Log"]]) {
    const modes = kind === "log" ? [["log", null]] : [["backtest", true], ["live", false]];
    for (const folder of dirs(path.join(root, "data", kind))) {
      const m = modes.find(([f]) => f === folder);
      if (!m) {
        unknown.push({ path: rel("data", kind, folder), kind, reason: `backtest-kit's Persist${Name}Instance keeps only ${modes.map(([f]) => f).join(" and ")}/` });
        continue;
      }
      const inst = kind === "log" ? new (Inst(Name))() : new (Inst(Name))(m[1]);
      const key = kind === "log" ? {} : { backtest: m[1] };
      const files = filesOf(rel("data", kind, folder), kind).filter(({ id, file }) => {
        if (owns(inst, id, file)) return true;
        notOwned(kind, file, `backtest-kit's Persist${Name}Instance does not keep this file`);
        return false;
      });
      const reads = await inOrder(files, ({ id, file }) => readVia(inst._storage, id, file, kind));
      for (const [i, { id, file }] of files.entries()) {
        const r = reads[i];
        if (!r.ok) continue;
        if (!isObj(r.value) || String(r.value.id) !== id) {
          problems.push({ path: file, kind, error: `the item's id is not ${JSON.stringify(id)}` });
          continue;
        }
        records.push({ kind, key, value: r.value, path: file, id });
      }
    }
  }

  // Measure, Interval: data/<kind>/<bucket>/<key>.json
  for (const [kind, Name] of [["measure", "Measure"], ["interval", "Interval"]]) {
    for (const bucket of dirs(path.join(root, "data", kind))) {
      const inst = new (Inst(Name))(bucket);
      for (const { id, file } of filesOf(rel("data", kind, bucket), kind)) {
        if (!owns(inst, id, file)) {
          notOwned(kind, file, `backtest-kit's Persist${Name}Instance does not keep this file`);
          continue;
        }
        const r = await readVia(inst._storage, id, file, kind);
        if (r.ok) push(kind, { bucket, key: id }, r.value, file);
      }
    }
  }

  // Recent: data/recent/<symbol>_<strategy>_<exchange>[_<frame>]_<backtest|live>/<symbol>.json
  for (const folder of dirs(path.join(root, "data", "recent"))) {
    const b = base(folder, "./dump/data/recent/");
    for (const { id, file } of filesOf(rel("data", "recent", folder), "recent")) {
      const r = await readVia(b, id, file, "recent");
      if (!r.ok) continue;
      const v = r.value;
      const backtest = folder.endsWith("_backtest") ? true : folder.endsWith("_live") ? false : null;
      let key = null;
      if (backtest !== null && isObj(v) && str(v.strategyName) && str(v.exchangeName)) {
        const frameName = typeof v.frameName === "string" ? v.frameName : "";
        const parts = [id, v.strategyName, v.exchangeName, ...(frameName ? [frameName] : []), mode(backtest)];
        if (parts.join("_") === folder) key = { symbol: id, strategyName: v.strategyName, exchangeName: v.exchangeName, frameName, backtest };
      }
      if (!key && backtest !== null) {
        // Without a usable payload: the frame is absent or present; both are tried.
        const a = resolve("recent", folder, ["symbol", "strategyName", "exchangeName", "mode"], { symbol: id, mode: mode(backtest) });
        if (a === undefined) continue;
        if (a) key = { symbol: id, strategyName: a.strategyName, exchangeName: a.exchangeName, frameName: "", backtest };
      }
      const inst = key && new (Inst("Recent"))(key.symbol, key.strategyName, key.exchangeName, key.frameName, key.backtest);
      if (!key || !owns(inst, id, file)) {
        notOwned("recent", file, "backtest-kit's PersistRecentInstance does not keep this file");
        continue;
      }
      push("recent", key, v, file);
    }
  }

  // Memory: memory/<signalId>/<bucketName>/<memoryId>.json; State: state/<signalId>/<bucketName>/<bucketName>.json
  for (const [kind, Name] of [["memory", "Memory"], ["state", "State"]]) {
    for (const signalId of dirs(path.join(root, kind))) {
      for (const e of entries(path.join(root, kind, signalId))) {
        if (!e.isDirectory()) {
          unknown.push({ path: rel(kind, signalId, e.name), kind, reason: "a file where backtest-kit keeps bucket folders" });
          continue;
        }
        const bucketName = e.name;
        const inst = new (Inst(Name))(signalId, bucketName);
        for (const { id, file } of filesOf(rel(kind, signalId, bucketName), kind)) {
          if (!owns(inst, id, file) || (kind === "state" && id !== bucketName)) {
            notOwned(kind, file, `backtest-kit's Persist${Name}Instance does not keep this file`);
            continue;
          }
          const r = await readVia(inst._storage, id, file, kind);
          if (!r.ok) continue;
          push(kind, kind === "memory" ? { signalId, bucketName, memoryId: id } : { signalId, bucketName }, r.value, file);
        }
      }
    }
    for (const e of entries(path.join(root, kind))) if (!e.isDirectory()) unknown.push({ path: rel(kind, e.name), kind, reason: "a file where backtest-kit keeps signal folders" });
  }

  // Session: session/<strategy>/<exchange>/[<frame>/]<symbol>_<backtest|live>.json
  for (const strategyName of dirs(path.join(root, "session"))) {
    for (const exchangeName of dirs(path.join(root, "session", strategyName))) {
      const at = rel("session", strategyName, exchangeName);
      const frames = [["", at]];
      for (const f of dirs(path.join(root, at))) frames.push([f, rel(at, f)]);
      for (const [frameName, relDir] of frames) {
        for (const e of entries(path.join(root, relDir))) {
          if (e.isDirectory() || e.name.startsWith(TMP_PREFIX)) continue;
          const file = rel(relDir, e.name);
          const m = /^(.+)_(backtest|live)\.json$/.exec(e.name);
          const key = m && { strategyName, exchangeName, frameName, symbol: m[1], backtest: m[2] === "backtest" };
          const inst = key && new (Inst("Session"))(strategyName, exchangeName, frameName, key.symbol, key.backtest);
          if (!key || !owns(inst, inst._entityId, file)) {
            notOwned("session", file, "backtest-kit's PersistSessionInstance does not keep this file");
            continue;
          }
          const r = await readVia(inst._storage, inst._entityId, file, "session");
          if (r.ok) push("session", key, r.value, file);
        }
      }
    }
  }

  return { dir: root, records, problems, unknown, skipped };
}
