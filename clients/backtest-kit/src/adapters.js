/**
 * The 17 persist adapter classes, backed by a gateway tenant.
 *
 * Each class has the constructor signature and methods backtest-kit's
 * Persist<Kind>Adapter.usePersist<Kind>Adapter(Ctor) expects, and the semantics
 * of its file adapter: the same empty values, soft deletes, insert-only candles
 * and logs, upsert-by-id lists (sent in parts, listwrite.js), and Infinity restored
 * where JSON turned it into null. The classes are built per client by
 * createAdapterClasses so several clients (tenants) can coexist in one process.
 */
import { KeyedQueue, latestWins, mergeNewerWins, mergeOlderWins } from "./queue.js";
import { CandleCache, intervalStepMs, storedCandles } from "./candles.js";
import { timed } from "./stats.js";
import { DEFAULT_LIST_PART_BYTES, sendListInParts } from "./listwrite.js";

/**
 * The 17 kinds with the name of their Persist<Kind>Adapter: backtest-kit 19.x's 16 in
 * its order, then Dictionary (backtest-kit 20.x).
 */
export const KINDS = [
  ["signal", "Signal"],
  ["schedule", "Schedule"],
  ["strategy", "Strategy"],
  ["risk", "Risk"],
  ["partial", "Partial"],
  ["breakeven", "Breakeven"],
  ["candle", "Candle"],
  ["storage", "Storage"],
  ["notification", "Notification"],
  ["log", "Log"],
  ["measure", "Measure"],
  ["interval", "Interval"],
  ["memory", "Memory"],
  ["recent", "Recent"],
  ["state", "State"],
  ["session", "Session"],
  ["dictionary", "Dictionary"],
];

/**
 * Kinds that older backtest-kit versions lack (Dictionary came with 20.x): usePersistence
 * registers them only when the running backtest-kit exports their Persist<Kind>Adapter.
 */
export const OPTIONAL_KINDS = new Set(["dictionary"]);

const ms = (when) => (when instanceof Date ? when.getTime() : typeof when === "number" ? when : undefined);
const isObj = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

/**
 * Restores what JSON lost on a signal-like row, as backtest-kit's file adapters do:
 * minuteEstimatedTime null → Infinity ("hold forever"); missing multiplier/isolated
 * → the configured defaults.
 * @param {any} row
 * @param {{multiplier:number, isolated:boolean}} d
 * @param {boolean} [onlyIfPresent] restore minuteEstimatedTime only when the field exists (notifications)
 * @param {boolean} [onlyIfCost] restore multiplier/isolated only when the row has a cost (notifications)
 */
export function restoreSignalRow(row, d, onlyIfPresent = false, onlyIfCost = false) {
  if (!isObj(row)) return row;
  if ((!onlyIfPresent || "minuteEstimatedTime" in row) && row.minuteEstimatedTime == null) {
    row.minuteEstimatedTime = Infinity;
  }
  if (!onlyIfCost || "cost" in row) {
    if (row.multiplier == null && d.multiplier !== undefined) row.multiplier = d.multiplier;
    if (row.isolated == null && d.isolated !== undefined) row.isolated = d.isolated;
  }
  return row;
}

/**
 * Builds the 17 adapter classes for one gateway client.
 * @param {object} p
 * @param {import("./client.js").GatewayClient} p.client
 * @param {import("./stats.js").Stats} p.stats
 * @param {() => {multiplier:number, isolated:boolean}} [p.defaults] signal defaults (backtest-kit's config)
 * @param {number} [p.candleCacheSize] candles kept in memory (0 disables)
 * @param {() => number} [p.now] wall clock for the incomplete-candle guard (default Date.now, so fake clocks apply)
 * @param {number} [p.listPartBytes] byte budget of one request of a whole-list write (default 1 MiB; see listwrite.js)
 * @returns {Record<string, new (...args: any[]) => any>} classes keyed by kind
 */
export function createAdapterClasses({
  client,
  stats,
  defaults = () => ({}),
  candleCacheSize = 200000,
  now = () => Date.now(),
  listPartBytes = DEFAULT_LIST_PART_BYTES,
}) {
  const queue = new KeyedQueue(stats);
  const candles = new CandleCache(candleCacheSize);
  /** Per list key: item id → JSON last stored by this process; unchanged items are not resent. */
  const sent = new Map();
  /** Per list key: item id → JSON the gateway refused as too large (never storable as is). */
  const refused = new Map();
  const SENT_MAX = 20000;

  const call = async (kind, op, key, extra) => client.op({ kind, op, key, ...extra });
  const read = async (kind, key, empty, extra) => {
    const r = await call(kind, "read", key, extra);
    return r && r.value !== undefined && r.value !== null ? r.value : empty;
  };
  const qkey = (kind, key, item) => `${kind}\u0000${JSON.stringify(key)}${item === undefined ? "" : `\u0000${item}`}`;
  /**
   * Serialized write of one record key. Writes of a key that queue up behind a
   * running one collapse into the newest (a record write overwrites the whole
   * record), so a burst of writes of one key costs two requests, not one per write.
   */
  const write = (kind, key, value, when, item) =>
    queue.submit(
      qkey(kind, key, item),
      { value, when },
      async (w) => {
        const extra = { value: w.value === undefined ? null : w.value };
        const t = ms(w.when);
        if (t !== undefined) extra.when = t;
        await call(kind, "write", key, extra);
      },
      latestWins,
    );
  /**
   * Serialized, merged, de-duplicated write of a whole list (upsert or insert-only by
   * item id), sent in parts under listPartBytes; only acknowledged parts count as sent.
   */
  const writeList = (kind, key, items, insertOnly) => {
    if (!Array.isArray(items)) throw new TypeError(`backtest-persistence: ${kind} write expects an array, got ${typeof items}`);
    const lk = qkey(kind, key);
    return queue.submit(
      lk,
      items,
      async (list) => {
        let known = sent.get(lk);
        if (!known) sent.set(lk, (known = new Map()));
        let tooLarge = refused.get(lk);
        if (!tooLarge) refused.set(lk, (tooLarge = new Map()));
        const todo = [];
        const enc = [];
        const at = new Map(); // a repeated id keeps its last occurrence, as in one request
        for (const it of list) {
          if (!isObj(it) || it.id === undefined || it.id === null || it.id === "") {
            throw new TypeError(`backtest-persistence: every ${kind} item needs an id`);
          }
          const id = String(it.id);
          const j = JSON.stringify(it);
          const prev = known.get(id);
          if (insertOnly ? prev !== undefined : prev === j) continue;
          if (tooLarge.get(id) === j) continue; // refused as too large before: never storable
          if (at.has(id)) {
            todo[at.get(id)] = it;
            enc[at.get(id)] = [id, j];
            continue;
          }
          at.set(id, todo.length);
          todo.push(it);
          enc.push([id, j]);
        }
        if (todo.length === 0) return;
        await sendListInParts({
          items: todo,
          encoded: enc,
          maxBytes: listPartBytes,
          send: (part) => call(kind, "write", key, { value: part }),
          record: (acked) => {
            for (const [id, j] of acked) {
              known.delete(id);
              known.set(id, j);
            }
            while (known.size > SENT_MAX) known.delete(known.keys().next().value);
          },
          // Over the store's payload limit on its own: reported once, not resent unchanged.
          rejected: (id, j) => {
            tooLarge.set(id, j);
            while (tooLarge.size > SENT_MAX) tooLarge.delete(tooLarge.keys().next().value);
          },
        });
      },
      insertOnly ? mergeOlderWins : mergeNewerWins,
    );
  };
  const list = async (kind, key) => {
    const r = await call(kind, "list", key);
    return Array.isArray(r?.value) ? r.value : [];
  };
  const remove = (kind, key, item) => queue.submit(qkey(kind, key, item), null, () => call(kind, "remove", key));

  class SignalInstance {
    constructor(symbol, strategyName, exchangeName) {
      this.key = { symbol, strategyName, exchangeName };
    }
    async waitForInit(_initial) {}
    async readSignalData() {
      return restoreSignalRow(await read("signal", this.key, null), defaults());
    }
    async writeSignalData(row) {
      await write("signal", this.key, row ?? null);
    }
  }

  class ScheduleInstance {
    constructor(symbol, strategyName, exchangeName) {
      this.key = { symbol, strategyName, exchangeName };
    }
    async waitForInit(_initial) {}
    async readScheduleData() {
      return restoreSignalRow(await read("schedule", this.key, null), defaults());
    }
    async writeScheduleData(row) {
      await write("schedule", this.key, row ?? null);
    }
  }

  class StrategyInstance {
    constructor(symbol, strategyName, exchangeName) {
      this.key = { symbol, strategyName, exchangeName };
    }
    async waitForInit(_initial) {}
    async readStrategyData() {
      const data = await read("strategy", this.key, null);
      if (!isObj(data)) return null;
      const d = defaults();
      for (const f of ["closedSignal", "cancelledSignal", "activatedSignal", "takeProfitSignal", "stopLossSignal", "retryOpenSignal"]) {
        restoreSignalRow(data[f], d);
      }
      return data;
    }
    async writeStrategyData(row) {
      await write("strategy", this.key, row ?? null);
    }
  }

  class RiskInstance {
    constructor(riskName, exchangeName) {
      this.key = { riskName, exchangeName };
    }
    async waitForInit(_initial) {}
    async readPositionData(_when) {
      const data = await read("risk", this.key, []);
      if (!Array.isArray(data)) return [];
      for (const entry of data) {
        const pos = Array.isArray(entry) ? entry[1] : null;
        if (isObj(pos) && pos.minuteEstimatedTime == null) pos.minuteEstimatedTime = Infinity;
      }
      return data;
    }
    async writePositionData(rows, when) {
      await write("risk", this.key, rows ?? [], when);
    }
  }

  class PartialInstance {
    constructor(symbol, strategyName, exchangeName) {
      this.ctx = { symbol, strategyName, exchangeName };
    }
    async waitForInit(_initial) {}
    async readPartialData(signalId, _when) {
      const v = await read("partial", { ...this.ctx, signalId }, {});
      return isObj(v) ? v : {};
    }
    async writePartialData(data, signalId, when) {
      await write("partial", { ...this.ctx, signalId }, data ?? {}, when);
    }
  }

  class BreakevenInstance {
    constructor(symbol, strategyName, exchangeName) {
      this.ctx = { symbol, strategyName, exchangeName };
    }
    async waitForInit(_initial) {}
    async readBreakevenData(signalId, _when) {
      const v = await read("breakeven", { ...this.ctx, signalId }, {});
      return isObj(v) ? v : {};
    }
    async writeBreakevenData(data, signalId, when) {
      await write("breakeven", { ...this.ctx, signalId }, data ?? {}, when);
    }
  }

  class CandleInstance {
    constructor(symbol, interval, exchangeName) {
      this.key = { exchangeName, symbol, interval };
      this.series = JSON.stringify(this.key);
      this.step = intervalStepMs(interval);
    }
    async waitForInit(_initial) {}
    async readCandlesData(limit, sinceTimestamp, untilTimestamp) {
      const cached = candles.window(this.series, sinceTimestamp, this.step, limit);
      if (cached) {
        stats.candleCacheHits++;
        return cached;
      }
      stats.candleCacheMisses++;
      const extra = { limit, since: sinceTimestamp };
      if (typeof untilTimestamp === "number") extra.until = untilTimestamp;
      const r = await call("candle", "read", this.key, extra);
      const v = r?.value;
      if (!Array.isArray(v) || v.length !== limit) return null;
      for (let i = 0; i < limit; i++) {
        if (!v[i] || v[i].timestamp !== sinceTimestamp + i * this.step) return null;
      }
      candles.add(this.series, v);
      return v;
    }
    async writeCandlesData(list) {
      if (!Array.isArray(list) || list.length === 0) return;
      const t = now();
      // Like the file adapter: a candle that has not closed yet is never stored; nor is one known to be stored.
      const todo = list.filter((c) => c && c.timestamp + this.step <= t && !candles.has(this.series, c.timestamp));
      if (todo.length === 0) return;
      const r = await call("candle", "write", this.key, { value: todo });
      candles.add(this.series, storedCandles(r, todo));
    }
  }

  class StorageInstance {
    constructor(backtest) {
      this.key = { backtest: Boolean(backtest) };
    }
    async waitForInit(_initial) {}
    async readStorageData() {
      const rows = await read("storage", this.key, []);
      if (!Array.isArray(rows)) return [];
      const d = defaults();
      for (const r of rows) restoreSignalRow(r, d);
      return rows;
    }
    async writeStorageData(rows) {
      await writeList("storage", this.key, rows ?? [], false);
    }
  }

  class NotificationInstance {
    constructor(backtest) {
      this.key = { backtest: Boolean(backtest) };
    }
    async waitForInit(_initial) {}
    async readNotificationData() {
      const rows = await read("notification", this.key, []);
      if (!Array.isArray(rows)) return [];
      const d = defaults();
      for (const r of rows) restoreSignalRow(r, d, true, true);
      return rows;
    }
    async writeNotificationData(rows) {
      await writeList("notification", this.key, rows ?? [], false);
    }
  }

  class LogInstance {
    constructor() {
      this.key = {};
    }
    async waitForInit(_initial) {}
    async readLogData() {
      const rows = await read("log", this.key, []);
      return Array.isArray(rows) ? rows : [];
    }
    async writeLogData(entries) {
      await writeList("log", this.key, entries ?? [], true);
    }
  }

  const bucketed = (kind, Name) => {
    const C = class {
      constructor(bucket) {
        this.bucket = bucket;
      }
      async waitForInit(_initial) {}
    };
    Object.defineProperty(C, "name", { value: `${Name}Instance` });
    C.prototype[`read${Name}Data`] = async function (key) {
      const v = await read(kind, { bucket: this.bucket, key }, null);
      return isObj(v) && !v.removed ? v : null;
    };
    C.prototype[`write${Name}Data`] = async function (data, key, when) {
      await write(kind, { bucket: this.bucket, key }, data, when, key);
    };
    C.prototype[`remove${Name}Data`] = async function (key) {
      await remove(kind, { bucket: this.bucket, key }, key);
    };
    C.prototype[`list${Name}Data`] = async function* () {
      for (const k of await list(kind, { bucket: this.bucket })) yield String(k);
    };
    return C;
  };
  const MeasureInstance = bucketed("measure", "Measure");
  const IntervalInstance = bucketed("interval", "Interval");

  class MemoryInstance {
    constructor(signalId, bucketName) {
      this.ctx = { signalId, bucketName };
    }
    async waitForInit(_initial) {}
    async readMemoryData(memoryId) {
      const v = await read("memory", { ...this.ctx, memoryId }, null);
      return isObj(v) && !v.removed ? v : null;
    }
    async hasMemoryData(memoryId) {
      const r = await call("memory", "has", { ...this.ctx, memoryId });
      return r?.has === true;
    }
    async writeMemoryData(data, memoryId, when) {
      await write("memory", { ...this.ctx, memoryId }, data, when, memoryId);
    }
    async removeMemoryData(memoryId) {
      await remove("memory", { ...this.ctx, memoryId }, memoryId);
    }
    async *listMemoryData() {
      for (const e of await list("memory", this.ctx)) {
        if (!isObj(e) || !isObj(e.data) || e.data.removed) continue;
        yield { memoryId: String(e.memoryId), data: e.data };
      }
    }
    dispose() {}
  }

  class RecentInstance {
    constructor(symbol, strategyName, exchangeName, frameName, backtest) {
      this.key = { symbol, strategyName, exchangeName, frameName: frameName ?? "", backtest: Boolean(backtest) };
    }
    async waitForInit(_initial) {}
    async readRecentData() {
      return restoreSignalRow(await read("recent", this.key, null), defaults());
    }
    async writeRecentData(row, when) {
      await write("recent", this.key, row, when);
    }
  }

  class StateInstance {
    constructor(signalId, bucketName) {
      this.key = { signalId, bucketName };
    }
    async waitForInit(_initial) {}
    async readStateData() {
      return await read("state", this.key, null);
    }
    async writeStateData(data, when) {
      await write("state", this.key, data, when);
    }
    dispose() {}
  }

  class SessionInstance {
    constructor(strategyName, exchangeName, frameName, symbol, backtest) {
      this.key = { strategyName, exchangeName, frameName: frameName ?? "", symbol, backtest: Boolean(backtest) };
    }
    async waitForInit(_initial) {}
    async readSessionData() {
      return await read("session", this.key, null);
    }
    async writeSessionData(data, when) {
      await write("session", this.key, data, when);
    }
    dispose() {}
  }

  /** backtest-kit 20.x: one dictionary snapshot per (signal, dictionary), overwritten whole. */
  class DictionaryInstance {
    constructor(signalId, dictionaryName) {
      this.key = { signalId, dictionaryName };
    }
    async waitForInit(_initial) {}
    async readDictionaryData() {
      return await read("dictionary", this.key, null);
    }
    async writeDictionaryData(data, when) {
      await write("dictionary", this.key, data, when);
    }
    dispose() {}
  }

  const raw = {
    signal: SignalInstance,
    schedule: ScheduleInstance,
    strategy: StrategyInstance,
    risk: RiskInstance,
    partial: PartialInstance,
    breakeven: BreakevenInstance,
    candle: CandleInstance,
    storage: StorageInstance,
    notification: NotificationInstance,
    log: LogInstance,
    measure: MeasureInstance,
    interval: IntervalInstance,
    memory: MemoryInstance,
    recent: RecentInstance,
    state: StateInstance,
    session: SessionInstance,
    dictionary: DictionaryInstance,
  };
  const out = {};
  for (const [kind] of KINDS) out[kind] = timed(raw[kind], kind, stats);
  // Not a class: waits until every queued write has been sent (used before exit and in tests).
  Object.defineProperty(out, "flush", { value: () => queue.idle(), enumerable: false });
  return out;
}
