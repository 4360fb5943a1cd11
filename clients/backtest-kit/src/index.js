/**
 * @backtest-persistence/backtest-kit: plug backtest-kit's persist adapters (16 in
 * 19.x, 17 in 20.x) into a backtest-persistence-operator gateway with one call.
 *
 *   import { usePersistence } from "@backtest-persistence/backtest-kit";
 *   usePersistence({ url, namespace, name, tokenFile });
 */
import { existsSync } from "node:fs";
import * as bk from "backtest-kit";
import { GatewayClient } from "./client.js";
import { createAdapterClasses, KINDS, OPTIONAL_KINDS } from "./adapters.js";
import { Stats, timed } from "./stats.js";

export { PersistenceError } from "./errors.js";
export { GatewayClient } from "./client.js";
export { createAdapterClasses, restoreSignalRow, KINDS, OPTIONAL_KINDS } from "./adapters.js";
export { splitListParts, sendListInParts, DEFAULT_LIST_PART_BYTES } from "./listwrite.js";
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

const signalDefaults = (kit) => () => {
  try {
    const c = kit.getConfig();
    return { multiplier: c.CC_SIGNAL_LEVERAGE_MULTIPLIER, isolated: c.CC_SIGNAL_ISOLATED_MARGIN };
  } catch {
    return {};
  }
};

/** The Persist<Name>Adapter of kit, or null when kit has none (an older backtest-kit). */
function utilsOf(kit, Name) {
  const utils = kit[`Persist${Name}Adapter`];
  return utils && typeof utils[`usePersist${Name}Adapter`] === "function" ? utils : null;
}

/**
 * Registers classFor(kind) with kit for each wanted kind. A kind kit lacks fails the
 * call before anything is registered, except an optional kind (OPTIONAL_KINDS) that
 * was not asked for by name, which is reported as unavailable.
 * @returns {{registered: string[], unavailable: string[]}}
 */
function register(kit, kinds, explicit, classFor) {
  const todo = [];
  const unavailable = [];
  for (const [kind, Name] of KINDS) {
    if (!kinds.has(kind)) continue;
    const utils = utilsOf(kit, Name);
    if (utils) {
      todo.push([kind, Name, utils, classFor(kind, Name)]);
    } else if (OPTIONAL_KINDS.has(kind) && !explicit) {
      unavailable.push(kind);
    } else {
      throw new Error(
        `backtest-persistence: this backtest-kit has no Persist${Name}Adapter.usePersist${Name}Adapter (need backtest-kit >= ${OPTIONAL_KINDS.has(kind) ? 20 : 19})`,
      );
    }
  }
  for (const [, Name, utils, Ctor] of todo) utils[`usePersist${Name}Adapter`](Ctor);
  return { registered: todo.map(([kind]) => kind), unavailable };
}

/**
 * Registers the gateway-backed adapters with backtest-kit: every kind the running
 * backtest-kit has (16 with 19.x, 17 with 20.x, which adds Dictionary). The handle's
 * `registered` lists the kinds registered, `unavailable` the optional ones this
 * backtest-kit lacks; `options.log`, when given, receives one line naming them.
 * @param {import("./index.js").PersistenceOptions} [options]
 * @returns {import("./index.js").PersistenceHandle}
 */
export function usePersistence(options = {}) {
  const opts = { ...optionsFromEnv(), ...options };
  if (!opts.token && !opts.tokenFile) {
    const found = DEFAULT_TOKEN_FILES.find((f) => existsSync(f));
    if (found) opts.tokenFile = found;
  }
  const kit = opts.backtestKit ?? bk;
  const stats = opts.stats ?? new Stats();
  const client = new GatewayClient({ ...opts, stats });
  const classes = createAdapterClasses({
    client,
    stats,
    defaults: signalDefaults(kit),
    candleCacheSize: opts.candleCacheSize,
    listPartBytes: opts.listPartBytes,
  });
  const kinds = new Set(opts.kinds ?? KINDS.map(([k]) => k));
  const { registered, unavailable } = register(kit, kinds, opts.kinds !== undefined, (kind) => classes[kind]);
  if (opts.log) opts.log(`backtest-persistence: registered ${registered.length} persist adapters with backtest-kit: ${registered.join(", ")}`);
  return {
    client,
    classes,
    registered,
    unavailable,
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
 * @param {object} [kit] the backtest-kit module (default: the installed one)
 * @returns {{registered: string[], stats: () => import("./index.js").PersistenceStats, resetStats: () => void}}
 */
export function useTimedFileAdapters(kit = bk) {
  const stats = new Stats();
  const { registered } = register(kit, new Set(KINDS.map(([k]) => k)), false, (kind, Name) => {
    const Base = kit[`Persist${Name}Instance`];
    if (typeof Base !== "function") throw new Error(`backtest-persistence: backtest-kit exports no Persist${Name}Instance`);
    return timed(Base, kind, stats);
  });
  return { registered, stats: () => stats.snapshot(), resetStats: () => stats.reset() };
}

export { importDump, formatImportReport } from "./import.js";
export { readDump } from "./dump.js";
export { verifyTenant, formatVerifyReport } from "./verify.js";
