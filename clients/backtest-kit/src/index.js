/**
 * @backtest-persistence/backtest-kit: plug backtest-kit's 16 persist adapters
 * into a backtest-persistence-operator gateway with one call.
 *
 *   import { usePersistence } from "@backtest-persistence/backtest-kit";
 *   usePersistence({ url, namespace, name, tokenFile });
 */
import { existsSync } from "node:fs";
import * as bk from "backtest-kit";
import { GatewayClient } from "./client.js";
import { createAdapterClasses, KINDS } from "./adapters.js";
import { Stats, timed } from "./stats.js";

export { PersistenceError } from "./errors.js";
export { GatewayClient } from "./client.js";
export { createAdapterClasses, restoreSignalRow, KINDS } from "./adapters.js";
export { Stats, timed } from "./stats.js";
export { TokenSource } from "./token.js";
export { CandleCache, INTERVAL_MINUTES } from "./candles.js";

const ENV = "BACKTEST_PERSISTENCE_";

/** Options read from BACKTEST_PERSISTENCE_* environment variables, for those not given. */
export function optionsFromEnv(env = process.env) {
  const o = {};
  const s = (k) => (env[ENV + k] ? String(env[ENV + k]) : undefined);
  if (s("URL")) o.url = s("URL");
  if (s("NAMESPACE")) o.namespace = s("NAMESPACE");
  if (s("NAME")) o.name = s("NAME");
  if (s("TOKEN")) o.token = s("TOKEN");
  if (s("TOKEN_FILE")) o.tokenFile = s("TOKEN_FILE");
  if (s("CA_FILE")) o.caFile = s("CA_FILE");
  if (s("BATCH_WRITES")) o.batchWrites = !/^(0|false|no|off)$/i.test(s("BATCH_WRITES"));
  return o;
}

// The projected token for the gateway's audience (config/samples/worker_pod.yaml mounts it
// here), then the pod's default token (accepted only by a gateway without an audience).
const DEFAULT_TOKEN_FILES = [
  "/var/run/secrets/backtest-persistence/token",
  "/var/run/secrets/kubernetes.io/serviceaccount/token",
];

function signalDefaults() {
  try {
    const c = bk.getConfig();
    return { multiplier: c.CC_SIGNAL_LEVERAGE_MULTIPLIER, isolated: c.CC_SIGNAL_ISOLATED_MARGIN };
  } catch {
    return {};
  }
}

function utilsOf(Name) {
  const utils = bk[`Persist${Name}Adapter`];
  const use = utils && utils[`usePersist${Name}Adapter`];
  if (typeof use !== "function") {
    throw new Error(`backtest-persistence: this backtest-kit has no Persist${Name}Adapter.usePersist${Name}Adapter (need backtest-kit >= 19)`);
  }
  return utils;
}

/**
 * Registers the gateway-backed adapters with backtest-kit.
 * @param {import("./index.js").PersistenceOptions} [options]
 * @returns {import("./index.js").PersistenceHandle}
 */
export function usePersistence(options = {}) {
  const opts = { ...optionsFromEnv(), ...options };
  if (!opts.token && !opts.tokenFile) {
    const found = DEFAULT_TOKEN_FILES.find((f) => existsSync(f));
    if (found) opts.tokenFile = found;
  }
  const stats = opts.stats ?? new Stats();
  const client = new GatewayClient({ ...opts, stats });
  const classes = createAdapterClasses({
    client,
    stats,
    defaults: signalDefaults,
    candleCacheSize: opts.candleCacheSize,
  });
  const kinds = new Set(opts.kinds ?? KINDS.map(([k]) => k));
  for (const [kind, Name] of KINDS) {
    if (!kinds.has(kind)) continue;
    utilsOf(Name)[`usePersist${Name}Adapter`](classes[kind]);
  }
  return {
    client,
    classes,
    stats: () => stats.snapshot(),
    resetStats: () => stats.reset(),
    flush: async () => {
      await classes.flush();
      await client.flush();
    },
    close: () => client.close(),
  };
}

/**
 * Registers backtest-kit's own file adapters, each wrapped with the same timing
 * counters, so a run on the file adapters can be compared with a run on the gateway.
 * @returns {{stats: () => import("./index.js").PersistenceStats, resetStats: () => void}}
 */
export function useTimedFileAdapters() {
  const stats = new Stats();
  for (const [kind, Name] of KINDS) {
    const Base = bk[`Persist${Name}Instance`];
    if (typeof Base !== "function") throw new Error(`backtest-persistence: backtest-kit exports no Persist${Name}Instance`);
    utilsOf(Name)[`usePersist${Name}Adapter`](timed(Base, kind, stats));
  }
  return { stats: () => stats.snapshot(), resetStats: () => stats.reset() };
}
