// The three persistence backends of the benchmark, each registered for all 16 kinds
// and timed by the client's counters (busy: wall time with a persistence call in flight).
//   file:     backtest-kit's own file adapters (./dump under the run's directory)
//   mongo:    @backtest-kit/mongo (CC_MONGO_CONNECTION_STRING, CC_REDIS_HOST, CC_REDIS_PORT)
//   operator: this project's client against the gateway (BACKTEST_PERSISTENCE_*)
import { realSleep } from "../../e2e/node/lib/clock.mjs";

/**
 * Registers a backend with backtest-kit.
 * @returns {Promise<{stats: () => object, settle: () => Promise<void>, close: () => Promise<void>}>}
 */
export async function useBackend(name, bk, client) {
  switch (name) {
    case "file": {
      const h = client.useTimedFileAdapters();
      return { stats: h.stats, settle: () => settled(h.stats), close: async () => {} };
    }
    case "operator": {
      const h = client.usePersistence({ timeoutMs: 20000 });
      return { stats: h.stats, settle: () => h.flush(), close: async () => h.close() };
    }
    case "mongo":
      return useMongo(bk, client);
    default:
      throw new Error(`--backend must be file, mongo or operator, not ${name}`);
  }
}

// @backtest-kit/mongo's install() registers its 16 classes (19.5.0); each is wrapped on the way
// in. Its Redis keys have no prefix, so it gets its own Redis database (0, flushed
// here) and each run its own MongoDB database (named by the driver); the connection
// and mongoose's indexes are ready before anything is timed.
async function useMongo(bk, client) {
  const mongo = await import("@backtest-kit/mongo");
  const { default: mongoose } = await import("mongoose");
  const stats = new client.Stats();
  const restore = [];
  for (const [kind, Name] of client.KINDS) {
    const utils = bk[`Persist${Name}Adapter`];
    if (!utils) continue; // a kind of a later backtest-kit (Dictionary on 19.x)
    const key = `usePersist${Name}Adapter`;
    const own = Object.prototype.hasOwnProperty.call(utils, key);
    const original = utils[key];
    utils[key] = (Ctor) => original.call(utils, client.timed(Ctor, kind, stats));
    restore.push(() => (own ? (utils[key] = original) : delete utils[key]));
  }
  mongo.setup();
  for (const r of restore) r();
  await mongo.waitForInit();
  const redis = await mongo.getRedis();
  await redis.flushdb();
  for (const n of mongoose.modelNames()) await mongoose.model(n).init();
  const h = { stats: () => stats.snapshot() };
  return {
    stats: h.stats,
    settle: () => settled(h.stats),
    close: async () => {
      await mongoose.disconnect().catch(() => {});
      redis.disconnect();
    },
  };
}

// Waits until no persistence call is in flight (busy time stops growing), at most 60 s.
async function settled(stats) {
  const deadline = performance.now() + 60000;
  let last = -1;
  while (performance.now() < deadline) {
    const busy = stats().busyMs;
    if (busy === last) return;
    last = busy;
    await realSleep(100);
  }
}
