// The dump import: a dump written by backtest-kit's own file adapter classes, with a
// corrupt file, a truncated file and folders no adapter owns, imported into a tenant.
// Against the real gateway when BACKTEST_PERSISTENCE_TEST_URL (and _NAMESPACE, _NAME,
// _TOKEN or _TOKEN_FILE) are set, as gateway.test.js; against the in-memory fake otherwise.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import * as bk from "backtest-kit";
import { LIST_WINDOWS, startFakeGateway } from "./fake-gateway.js";
import { GatewayClient, importDump, readDump } from "../src/index.js";
import { splits, withDumpCwd } from "../src/dump.js";

const env = process.env;
const P = "BACKTEST_PERSISTENCE_TEST_";
const cli = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "src", "cli.js");

/** The tenant: the real gateway when configured, the fake otherwise. */
async function tenant() {
  if (env[`${P}URL`]) {
    const o = { url: env[`${P}URL`], namespace: env[`${P}NAMESPACE`], name: env[`${P}NAME`], token: env[`${P}TOKEN`], tokenFile: env[`${P}TOKEN_FILE`], caFile: env[`${P}CA_FILE`] };
    return { opts: o, close: async () => {} };
  }
  return fakeTenant();
}

/** A tenant on the in-memory fake, whose list reads return the window, as the store's. */
async function fakeTenant() {
  const gw = await startFakeGateway();
  gw.state.listWindows = LIST_WINDOWS;
  return { opts: { url: gw.url, namespace: "team-a", name: "store", token: "good-token" }, close: () => gw.close() };
}

// The dumps' list items sort low: in a tenant shared with other tests (the whole-system
// suite) they may fall outside the window a list read returns, and must not push the
// other tests' items out of it.
const beyond = (r) => Object.values(r.kinds).reduce((a, c) => a + c.beyondWindow, 0);

/** Writes a dump with backtest-kit's own file adapters: one or more records of every kind. */
async function writeDump(dir, t) {
  mkdirSync(dir, { recursive: true });
  const sym = `BTC${t}`;
  const strat = `st_${t}`; // underscores: the folder name splits more than one way
  const exch = `ex_${t}`;
  const sig = `sig-${t}`;
  const row = { id: sig, symbol: sym, strategyName: strat, exchangeName: exch, frameName: "", position: "long", priceOpen: 100, priceTakeProfit: 110, priceStopLoss: 95, minuteEstimatedTime: null, timestamp: 1740787200000 };
  await withDumpCwd(dir, async () => {
    const w = async (inst, fn) => {
      await inst.waitForInit(true);
      await fn(inst);
    };
    await w(new bk.PersistSignalInstance(sym, strat, exch), (i) => i.writeSignalData(row));
    await w(new bk.PersistScheduleInstance(sym, strat, exch), (i) => i.writeScheduleData(null));
    await w(new bk.PersistStrategyInstance(sym, strat, exch), (i) => i.writeStrategyData({ pendingSignalId: sig, commitQueue: [] }));
    await w(new bk.PersistRiskInstance(`risk_${t}`, exch), (i) => i.writePositionData([[`${strat}_${exch}_${sym}`, { ...row, openTimestamp: 1740787200000 }]], new Date()));
    await w(new bk.PersistPartialInstance(sym, strat, exch), (i) => i.writePartialData({ [sig]: { profitLevels: [10], lossLevels: [] } }, sig, new Date()));
    await w(new bk.PersistBreakevenInstance(sym, strat, exch), (i) => i.writeBreakevenData({ [sig]: { reached: true } }, sig, new Date()));
    await w(new bk.PersistCandleInstance(sym, "1m", exch), (i) =>
      i.writeCandlesData([0, 1, 2, 4].map((k) => ({ timestamp: 1740787200000 + k * 60000, open: 1, high: 2, low: 0.5, close: 1.5, volume: k }))),
    );
    await w(new bk.PersistStorageInstance(false), (i) => i.writeStorageData([{ ...row, id: `${sig}-a`, status: "opened", priority: 1 }, { ...row, id: `${sig}-b`, status: "closed", priority: 2 }]));
    await w(new bk.PersistNotificationInstance(true), (i) => i.writeNotificationData([{ id: `n-${t}`, type: "signal.opened", backtest: true, createdAt: 1 }]));
    await w(new bk.PersistLogInstance(), (i) => i.writeLogData([{ id: `log-${t}`, type: "info", priority: 1, topic: "x", args: [] }]));
    await w(new bk.PersistMeasureInstance(`m_${t}`), async (i) => {
      await i.writeMeasureData({ id: "k1", data: { v: 1 }, removed: false }, "k1", new Date());
      await i.writeMeasureData({ id: "k2", data: 2, removed: false }, "k2", new Date());
      await i.removeMeasureData("k2");
    });
    await w(new bk.PersistIntervalInstance(`i_${t}`), (i) => i.writeIntervalData({ id: "k", data: { fired: true }, when: new Date(1740787200000), removed: false }, "k", new Date()));
    await w(new bk.PersistMemoryInstance(sig, "entries"), async (i) => {
      await i.writeMemoryData({ priority: 1, data: { a: 1 }, removed: false, index: "a", when: 1740787200000 }, "m1", new Date());
      await i.writeMemoryData({ priority: 2, data: { b: 1 }, removed: false, index: "b", when: 1740787200000 }, "m2", new Date());
      await i.removeMemoryData("m2");
    });
    await w(new bk.PersistRecentInstance(sym, strat, exch, "", false), (i) => i.writeRecentData(row, new Date()));
    await w(new bk.PersistStateInstance(sig, "trade"), (i) => i.writeStateData({ id: `${sig}_trade`, data: { ticks: 3 }, when: 1740787200000 }, new Date()));
    await w(new bk.PersistSessionInstance(strat, exch, "", sym, false), (i) => i.writeSessionData({ id: "s", data: { calls: 1 }, when: 1740787200000 }, new Date()));
  });
  return { sym, strat, exch, sig };
}

/** Runs a command without blocking this process (the fake gateway answers from it). */
function run(cmd, args, env) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (c) => (stdout += c));
    p.stderr.on("data", (c) => (stderr += c));
    p.on("error", reject);
    p.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}

const scratch = () => mkdtempSync(path.join(tmpdir(), "btp-import-test-"));

test("splits cuts a folder name at every underscore", () => {
  assert.deepEqual(splits("a_b_c", 2), [["a", "b_c"], ["a_b", "c"]]);
  assert.deepEqual(splits("a_b", 3), []);
  assert.deepEqual(splits("ab", 1), [["ab"]]);
});

test("a clean dump: every kind imported, a second run changes nothing, verify matches", async () => {
  const t = randomBytes(4).toString("hex");
  const dir = path.join(scratch(), "dump");
  const names = await writeDump(dir, t);
  const ten = await tenant();
  const client = new GatewayClient(ten.opts);
  try {
    const dump = await readDump(dir);
    assert.deepEqual(dump.problems, []);
    assert.deepEqual(dump.unknown, []);
    const kinds = new Set(dump.records.map((r) => r.kind));
    assert.equal(kinds.size, 16, `every kind is in the dump: ${[...kinds]}`);
    const sig = dump.records.find((r) => r.kind === "signal");
    assert.deepEqual(sig.key, { symbol: names.sym, strategyName: names.strat, exchangeName: names.exch }, "the underscored names are told apart");
    const risk = dump.records.find((r) => r.kind === "risk");
    assert.deepEqual(risk.key, { riskName: `risk_${t}`, exchangeName: names.exch });

    const dry = await importDump({ client, dump: dir, dryRun: true, progressBar: false });
    assert.ok(dry.changes > 0 && dry.ok);
    const before = await client.op({ kind: "signal", op: "read", key: sig.key });
    assert.equal(before.value ?? null, null, "a dry run writes nothing");

    const first = await importDump({ client, dump: dir, verify: true, progressBar: false });
    assert.ok(first.ok, JSON.stringify(first, null, 1));
    assert.equal(first.verify.matched + first.verify.beyondWindow, first.records);
    // The tombstones match an absent record, so they are not counted as changes; everything else is.
    assert.equal(first.changes + beyond(first), first.records - 2);
    const got = await client.op({ kind: "signal", op: "read", key: sig.key });
    assert.equal(got.value.id, names.sig);
    const has = await client.op({ kind: "memory", op: "has", key: { signalId: names.sig, bucketName: "entries", memoryId: "m2" } });
    assert.equal(has.has, true, "the memory tombstone is imported");

    const second = await importDump({ client, dump: dir, progressBar: false });
    assert.ok(second.ok);
    assert.equal(second.changes, 0, "a second import changes nothing");
    assert.equal(second.records, first.records);
  } finally {
    client.close();
    await ten.close();
  }
});

test("list items older than the window a read returns: sent, not counted as changes, not mismatches", async () => {
  const t = randomBytes(4).toString("hex");
  const dir = path.join(scratch(), "dump");
  mkdirSync(dir, { recursive: true });
  // 60 signal rows: backtest-kit reads back the 50 of highest priority.
  const rows = Array.from({ length: 60 }, (_, i) => ({ id: `row-${t}-${i}`, symbol: `W${t}`, status: "closed", priority: 1000 + i, timestamp: 1740787200000 + i }));
  await withDumpCwd(dir, async () => {
    const inst = new bk.PersistStorageInstance(true);
    await inst.waitForInit(true);
    await inst.writeStorageData(rows);
  });
  // The fake, whatever the environment: in a shared tenant the other tests' items decide the window.
  const ten = await fakeTenant();
  const client = new GatewayClient(ten.opts);
  try {
    const first = await importDump({ client, dump: dir, verify: true, progressBar: false });
    assert.ok(first.ok, JSON.stringify(first.verify, null, 1));
    assert.equal(first.kinds.storage.records, 60);
    assert.equal(first.kinds.storage.written, 60, "the first import writes every row");
    assert.equal(first.verify.beyondWindow, 10, "the 10 lowest rows are outside the window a read returns");
    assert.equal(first.verify.mismatches.length, 0);
    const second = await importDump({ client, dump: dir, verify: true, progressBar: false });
    assert.ok(second.ok);
    assert.equal(second.changes, 0, "a second import changes nothing");
    assert.equal(second.kinds.storage.beyondWindow, 10);
    assert.equal(second.kinds.storage.unchanged, 50);
    const back = await client.op({ kind: "storage", op: "read", key: { backtest: true } });
    const ids = new Set(back.value.map((r) => r.id));
    for (const r of rows.slice(10)) assert.ok(ids.has(r.id), `${r.id} is in the window`);
  } finally {
    client.close();
    await ten.close();
  }
});

test("a corrupt file, a truncated file and unknown folders: reported, the rest imported, exit 1", async () => {
  const t = randomBytes(4).toString("hex");
  const dir = path.join(scratch(), "dump");
  const names = await writeDump(dir, t);
  const stateFile = path.join(dir, "state", names.sig, "trade", "trade.json");
  const full = readFileSync(stateFile, "utf8");
  writeFileSync(stateFile, full.slice(0, Math.floor(full.length / 2))); // truncated
  const notif = path.join(dir, "data", "notification", "backtest", `n-${t}.json`);
  writeFileSync(notif, "{not json at all"); // corrupt
  mkdirSync(path.join(dir, "data", "orders", "x"), { recursive: true });
  writeFileSync(path.join(dir, "data", "orders", "x", "1.json"), "{}");
  mkdirSync(path.join(dir, "mystery"), { recursive: true });
  mkdirSync(path.join(dir, "markdown"), { recursive: true });

  const ten = await tenant();
  const client = new GatewayClient(ten.opts);
  try {
    const r = await importDump({ client, dump: dir, progressBar: false });
    assert.equal(r.ok, false);
    const problems = r.problems.map((p) => [p.kind, p.path]).sort();
    assert.deepEqual(problems, [
      ["notification", path.join("data", "notification", "backtest", `n-${t}.json`)],
      ["state", path.join("state", names.sig, "trade", "trade.json")],
    ]);
    assert.deepEqual(r.unknown.map((u) => u.path).sort(), [path.join("data", "orders"), "mystery"]);
    assert.deepEqual(r.skipped.map((s) => s.path), ["markdown"]);
    assert.deepEqual(r.failures, []);
    assert.equal(r.kinds.state.records, 0);
    assert.equal(r.kinds.notification.records, 0);
    assert.equal(r.changes + beyond(r), r.records - 2, "everything readable is imported");
    const got = await client.op({ kind: "session", op: "read", key: { strategyName: names.strat, exchangeName: names.exch, frameName: "", symbol: names.sym, backtest: false } });
    assert.deepEqual(got.value.data, { calls: 1 });
    assert.ok(readFileSync(notif, "utf8").startsWith("{not"), "the dump is only read: backtest-kit's init would have deleted the corrupt file");

    // The command line: the same report, exit status 1.
    const o = ten.opts;
    const res = await run(process.execPath, [cli, "import", "--dump", dir, "--url", o.url, "--namespace", o.namespace, "--name", o.name], {
      ...process.env,
      BACKTEST_PERSISTENCE_TOKEN: o.token ?? "",
      ...(o.tokenFile ? { BACKTEST_PERSISTENCE_TOKEN_FILE: o.tokenFile } : {}),
    });
    assert.doesNotMatch(res.stdout, /^failed /m, "the gateway answered");
    assert.equal(res.status, 1, res.stdout + res.stderr);
    assert.match(res.stdout, /, 0 changes/);
    assert.match(res.stdout, new RegExp(`unreadable notification: data/notification/backtest/n-${t}\\.json: .*`));
    assert.match(res.stdout, new RegExp(`unreadable state: state/${names.sig}/trade/trade\\.json`));
    assert.match(res.stdout, /unknown: data\/orders: no backtest-kit adapter keeps this folder/);
    assert.match(res.stdout, /unknown: mystery/);
  } finally {
    client.close();
    await ten.close();
  }
});

test("a dump folder that does not exist is an error, not an empty import", async () => {
  await assert.rejects(readDump(path.join(scratch(), "no-such-dump")), /no dump at .*no-such-dump: ENOENT/);
});

test("a name that splits two ways is reported, not guessed", async () => {
  const t = randomBytes(4).toString("hex");
  const dir = path.join(scratch(), "dump");
  mkdirSync(dir, { recursive: true });
  await withDumpCwd(dir, async () => {
    const i = new bk.PersistPartialInstance(`A_${t}`, "b", "c");
    await i.waitForInit(true);
    await i.writePartialData({}, "s1", new Date());
  });
  const d = await readDump(dir);
  assert.equal(d.records.length, 0);
  assert.equal(d.problems.length, 1);
  assert.match(d.problems[0].error, /splits into more than one key/);
});

test("verify sees a dump that changed while it was imported", async () => {
  const t = randomBytes(4).toString("hex");
  const dir = path.join(scratch(), "dump");
  const names = await writeDump(dir, t);
  const ten = await tenant();
  const client = new GatewayClient(ten.opts);
  try {
    const r = await importDump({
      client,
      dump: dir,
      verify: true,
      progressBar: false,
      // A bot still running: it moves its signal after the import read the file.
      afterImport: async () => {
        const f = path.join(dir, "data", "signal", `${names.sym}_${names.strat}_${names.exch}`, `${names.sym}.json`);
        const v = JSON.parse(readFileSync(f, "utf8"));
        writeFileSync(f, JSON.stringify({ ...v, priceStopLoss: 99 }));
      },
    });
    assert.equal(r.ok, false);
    assert.equal(r.verify.ok, false);
    assert.deepEqual(r.verify.changedInDump.map((c) => [c.kind, c.change]), [["signal", "changed"]]);
    assert.deepEqual(r.verify.mismatches.map((m) => m.kind), ["signal"]);
  } finally {
    client.close();
    await ten.close();
    rmSync(path.dirname(dir), { recursive: true, force: true });
  }
});
