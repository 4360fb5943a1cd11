/**
 * Contract checks of the 17 adapter classes, shared by the unit tests (fake
 * gateway) and the tests against a real gateway. Every key carries a run id so
 * runs against a persistent store do not see each other.
 */
import assert from "node:assert/strict";

const MIN = 60000;

/** @returns {Array<[string, () => Promise<void>]>} */
export function conformanceCases(A, run) {
  const sym = `BTC/USDT-${run}`;
  const strat = `s1-${run}`;
  const exch = `ex-${run}`;
  const signal = (id, extra = {}) => ({
    id, symbol: sym, position: "long", priceOpen: 100, priceTakeProfit: 110, priceStopLoss: 95,
    minuteEstimatedTime: 60, cost: 100, exchangeName: exch, strategyName: strat, frameName: "",
    scheduledAt: 1767225600000, pendingAt: 1767225600000, timestamp: 1767225600000, _isScheduled: false,
    multiplier: 1, isolated: true, ...extra,
  });
  return [
    ["signal/schedule: empty is null, null round-trips, Infinity is restored", async () => {
      for (const [C, r, w] of [[A.signal, "readSignalData", "writeSignalData"], [A.schedule, "readScheduleData", "writeScheduleData"]]) {
        const inst = new C(sym, strat, exch);
        await inst.waitForInit(true);
        assert.equal(await inst[r](), null);
        await inst[w](signal(`sig-${run}`, { minuteEstimatedTime: Infinity, note: "ünïcode $x.y" }));
        const got = await inst[r]();
        assert.equal(got.minuteEstimatedTime, Infinity);
        assert.equal(got.note, "ünïcode $x.y");
        assert.equal(got.id, `sig-${run}`);
        await inst[w](null);
        assert.equal(await inst[r](), null);
      }
    }],
    ["strategy: nested signals get Infinity back; null clears", async () => {
      const inst = new A.strategy(sym, strat, exch);
      assert.equal(await inst.readStrategyData(), null);
      const data = {
        pendingSignalId: null, lastPendingId: "x", createdSignal: null, commitQueue: [],
        closedSignal: signal("c1", { minuteEstimatedTime: Infinity }), cancelledSignal: null, activatedSignal: null,
        takeProfitSignal: null, stopLossSignal: null, retryOpenSignal: null, retryOpenCount: 0, retryCloseCount: 0, isPaused: false,
      };
      await inst.writeStrategyData(data);
      const got = await inst.readStrategyData();
      assert.equal(got.closedSignal.minuteEstimatedTime, Infinity);
      assert.equal(got.lastPendingId, "x");
      await inst.writeStrategyData(null);
      assert.equal(await inst.readStrategyData(), null);
    }],
    ["risk: empty is [], positions round-trip with Infinity restored", async () => {
      const inst = new A.risk(`risk-${run}`, exch);
      assert.deepEqual(await inst.readPositionData(new Date()), []);
      const pos = { strategyName: strat, exchangeName: exch, frameName: "", symbol: sym, position: "long", priceOpen: 1, priceStopLoss: 0.5, priceTakeProfit: 2, minuteEstimatedTime: Infinity, openTimestamp: 5 };
      await inst.writePositionData([[`${strat}_${exch}_${sym}`, pos]], new Date(1767225600000));
      const got = await inst.readPositionData(new Date());
      assert.equal(got.length, 1);
      assert.equal(got[0][0], `${strat}_${exch}_${sym}`);
      assert.equal(got[0][1].minuteEstimatedTime, Infinity);
    }],
    ["partial/breakeven: empty is {}, keyed by signal id", async () => {
      const p = new A.partial(sym, strat, exch);
      assert.deepEqual(await p.readPartialData("a", new Date()), {});
      await p.writePartialData({ a: { profitLevels: [10, 20], lossLevels: [] } }, "a", new Date());
      assert.deepEqual(await p.readPartialData("a", new Date()), { a: { profitLevels: [10, 20], lossLevels: [] } });
      assert.deepEqual(await p.readPartialData("b", new Date()), {});
      const b = new A.breakeven(sym, strat, exch);
      assert.deepEqual(await b.readBreakevenData("a", new Date()), {});
      await b.writeBreakevenData({ a: { reached: true } }, "a", new Date());
      assert.deepEqual(await b.readBreakevenData("a", new Date()), { a: { reached: true } });
    }],
    ["candle: exact windows, null on any gap, insert-only, incomplete candles skipped", async () => {
      const c = new A.candle(sym, "1m", exch);
      const t0 = 1767225600000;
      const mk = (i, close = 100 + i) => ({ timestamp: t0 + i * MIN, open: 100, high: 200, low: 50, close, volume: 1 });
      assert.equal(await c.readCandlesData(3, t0, t0 + 3 * MIN), null);
      await c.writeCandlesData([mk(0), mk(1), mk(2), mk(4)]);
      const w = await c.readCandlesData(3, t0, t0 + 3 * MIN);
      assert.deepEqual(w.map((x) => x.close), [100, 101, 102]);
      assert.equal(await c.readCandlesData(5, t0, t0 + 5 * MIN), null, "gap at 3 must give null");
      await c.writeCandlesData([mk(1, 999)]);
      const again = await new A.candle(sym, "1m", exch).readCandlesData(2, t0 + MIN, t0 + 3 * MIN);
      assert.equal(again[0].close, 101, "first write wins");
      const future = Math.floor(Date.now() / MIN) * MIN;
      await c.writeCandlesData([{ timestamp: future, open: 1, high: 1, low: 1, close: 1, volume: 1 }]);
      assert.equal(await new A.candle(sym, "1m", exch).readCandlesData(1, future, future + MIN), null, "a candle that has not closed is not stored");
    }],
    ["storage/notification: upsert by id, never delete, Infinity restored", async () => {
      for (const [C, r, w] of [[A.storage, "readStorageData", "writeStorageData"], [A.notification, "readNotificationData", "writeNotificationData"]]) {
        const bt = new C(true);
        const other = new C(false);
        // A read returns the consumer's window (the 50 rows of highest priority, the
        // newest 500 notifications), so the rows are the newest of the list.
        const before = (await bt[r]()).length;
        const now = Date.now();
        const a = { ...signal(`row-a-${run}`), status: "opened", priority: now + 1, createdAt: now + 1, minuteEstimatedTime: Infinity, type: "signal.opened", backtest: true };
        const b = { ...signal(`row-b-${run}`), status: "opened", priority: now + 2, createdAt: now + 2, type: "signal.opened", backtest: true };
        await bt[w]([a, b]);
        await bt[w]([{ ...a, status: "closed", priority: now + 3 }]);
        const got = (await bt[r]()).filter((x) => String(x.id).endsWith(run));
        assert.equal((await bt[r]()).length, Math.min(before + 2, C === A.storage ? 50 : 500));
        const ga = got.find((x) => x.id === a.id);
        assert.equal(ga.status, "closed");
        assert.equal(ga.minuteEstimatedTime, Infinity);
        assert.ok(got.find((x) => x.id === b.id), "a row missing from a later write is kept");
        assert.ok(!(await other[r]()).some((x) => x.id === a.id), "backtest and live lists are separate");
      }
    }],
    ["log: insert-only by id", async () => {
      const l = new A.log();
      const e = (id, topic) => ({ id, type: "info", priority: 1, createdAt: "2026-01-01T00:00:00.000Z", timestamp: 1, methodContext: null, executionContext: null, topic, args: [1, "x", { y: null }] });
      await l.writeLogData([e(`l1-${run}`, "first")]);
      await l.writeLogData([e(`l1-${run}`, "second"), e(`l2-${run}`, "other")]);
      const got = (await l.readLogData()).filter((x) => x.id.endsWith(run));
      assert.equal(got.length, 2);
      assert.equal(got.find((x) => x.id === `l1-${run}`).topic, "first");
    }],
    ["measure/interval: soft delete hides, list skips tombstones, write resurrects", async () => {
      for (const [C, N] of [[A.measure, "Measure"], [A.interval, "Interval"]]) {
        const m = new C(`bucket:${run}`);
        assert.equal(await m[`read${N}Data`]("k1"), null);
        await m[`write${N}Data`]({ id: "k1", data: { v: 1 }, removed: false, when: new Date(0).toISOString() }, "k1", new Date());
        await m[`write${N}Data`]({ id: "a:b", data: [1, 2], removed: false, when: new Date(0).toISOString() }, "a:b", new Date());
        assert.deepEqual((await m[`read${N}Data`]("k1")).data, { v: 1 });
        const keys = [];
        for await (const k of m[`list${N}Data`]()) keys.push(k);
        assert.deepEqual(keys.sort(), ["a:b", "k1"]);
        await m[`remove${N}Data`]("k1");
        await m[`remove${N}Data`]("never-written");
        assert.equal(await m[`read${N}Data`]("k1"), null);
        const after = [];
        for await (const k of m[`list${N}Data`]()) after.push(k);
        assert.deepEqual(after, ["a:b"]);
        await m[`write${N}Data`]({ id: "k1", data: { v: 2 }, removed: false, when: new Date(0).toISOString() }, "k1", new Date());
        assert.deepEqual((await m[`read${N}Data`]("k1")).data, { v: 2 });
        assert.equal(await new C(`bucket:${run}:other`)[`read${N}Data`]("k1"), null);
      }
    }],
    ["memory: has is true for a tombstone, read null, list skips it", async () => {
      const m = new A.memory(`sig-${run}`, "notes");
      assert.equal(await m.hasMemoryData("m1"), false);
      assert.equal(await m.readMemoryData("m1"), null);
      const d = (t) => ({ priority: 1, data: { t }, removed: false, index: `text ${t}`, when: 1767225600000 });
      await m.writeMemoryData(d("one"), "m1", new Date(1767225600000));
      await m.writeMemoryData(d("two"), "m2", new Date(1767225600000));
      await m.removeMemoryData("m1");
      assert.equal(await m.hasMemoryData("m1"), true);
      assert.equal(await m.readMemoryData("m1"), null);
      const all = [];
      for await (const e of m.listMemoryData()) all.push(e);
      assert.deepEqual(all.map((e) => e.memoryId), ["m2"]);
      assert.equal(all[0].data.data.t, "two");
      m.dispose();
    }],
    ["recent/state/session: empty null, round-trip, frameName '' is a valid key", async () => {
      const r = new A.recent(sym, strat, exch, "", false);
      assert.equal(await r.readRecentData(), null);
      await r.writeRecentData(signal(`rec-${run}`, { minuteEstimatedTime: null }), new Date());
      assert.equal((await r.readRecentData()).minuteEstimatedTime, Infinity);
      assert.equal(await new A.recent(sym, strat, exch, "frame", false).readRecentData(), null);
      const s = new A.state(`sig-${run}`, "bucket");
      assert.equal(await s.readStateData(), null);
      await s.writeStateData({ id: `sig-${run}_bucket`, data: { n: 1 }, when: 5 }, new Date(5));
      assert.deepEqual(await s.readStateData(), { id: `sig-${run}_bucket`, data: { n: 1 }, when: 5 });
      const se = new A.session(strat, exch, "", sym, false);
      assert.equal(await se.readSessionData(), null);
      await se.writeSessionData({ id: "x", data: null, when: 7 }, new Date(7));
      assert.deepEqual(await se.readSessionData(), { id: "x", data: null, when: 7 });
      assert.equal(await new A.session(strat, exch, "", sym, true).readSessionData(), null);
    }],
    ["dictionary: empty null, the whole snapshot is overwritten, dispose keeps it", async () => {
      const sig = `sig-${run}`;
      const d = new A.dictionary(sig, "levels");
      await d.waitForInit(true);
      assert.equal(await d.readDictionaryData(), null);
      const t0 = 1767225600000;
      const snap = { id: `${sig}_levels`, data: { "tp.1": { value: 52000.5, when: t0 }, $sl: { value: { pairs: [[1, 2]], note: "ü" }, when: t0 } }, when: t0 };
      await d.writeDictionaryData(snap, new Date(t0));
      assert.deepEqual(await d.readDictionaryData(), snap);
      const snap2 = { id: `${sig}_levels`, data: { only: { value: null, when: t0 + MIN } }, when: t0 + MIN };
      await d.writeDictionaryData(snap2, new Date(t0 + MIN));
      assert.deepEqual(await d.readDictionaryData(), snap2, "a write replaces the snapshot, it does not merge");
      assert.equal(await new A.dictionary(sig, "other").readDictionaryData(), null);
      assert.equal(await new A.state(sig, "levels").readStateData(), null, "a dictionary is not a state bucket");
      d.dispose();
      assert.deepEqual(await new A.dictionary(sig, "levels").readDictionaryData(), snap2);
    }],
  ];
}
