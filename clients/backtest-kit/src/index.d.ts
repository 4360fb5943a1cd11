/** Options of usePersistence and GatewayClient. Unset fields fall back to BACKTEST_PERSISTENCE_* environment variables. */
export interface PersistenceOptions {
  /** Gateway base URL, e.g. "https://backtest-persistence-gateway.backtest-persistence-system.svc" (BACKTEST_PERSISTENCE_URL). */
  url?: string;
  /** Namespace of the BacktestPersistence (BACKTEST_PERSISTENCE_NAMESPACE). */
  namespace?: string;
  /** Name of the BacktestPersistence (BACKTEST_PERSISTENCE_NAME). */
  name?: string;
  /** Bearer token (BACKTEST_PERSISTENCE_TOKEN). */
  token?: string;
  /** Token file, re-read when it rotates (BACKTEST_PERSISTENCE_TOKEN_FILE; default: the pod's service-account token when present). */
  tokenFile?: string;
  /** PEM CA bundle that signed the gateway's certificate. */
  ca?: string | Uint8Array;
  /** Path of a PEM CA bundle (BACKTEST_PERSISTENCE_CA_FILE). */
  caFile?: string;
  /** Skip TLS verification. Development only. */
  insecureSkipVerify?: boolean;
  /** Per-attempt timeout in ms (default 30000). */
  timeoutMs?: number;
  /** Retries after the first attempt for 503 and network errors (default 5). */
  retries?: number;
  /** First backoff in ms (default 100); doubles per retry with jitter. */
  retryBaseMs?: number;
  /** Largest backoff in ms (default 3000). */
  retryMaxMs?: number;
  /** Total time one call may spend retrying, in ms (default 20000). */
  retryBudgetMs?: number;
  /** Keep-alive connection pool size (default 16). */
  maxSockets?: number;
  /** Send writes issued together in shared POST .../batch requests (default true). */
  batchWrites?: boolean;
  /** Batch requests in flight at once (default maxSockets, 16). */
  batchLanes?: number;
  /** Operations per batch request (default 500, the gateway's --gateway-max-batch-ops). */
  batchMaxOps?: number;
  /** Body bytes per batch request (default 8 MiB, the gateway's --gateway-max-body-bytes). */
  batchMaxBytes?: number;
  /** Candles kept in the in-process window cache (default 200000; 0 disables). */
  candleCacheSize?: number;
  /** Register only these kinds (default: all 16). */
  kinds?: Kind[];
  /** Shared counters (e.g. one Stats for several tenants). */
  stats?: Stats;
}

export type Kind =
  | "signal" | "schedule" | "strategy" | "risk" | "partial" | "breakeven" | "candle" | "storage"
  | "notification" | "log" | "measure" | "interval" | "memory" | "recent" | "state" | "session";

export type Op = "read" | "write" | "has" | "remove" | "list";

/** One operation as the gateway receives it. */
export interface PersistRequest {
  kind: Kind;
  op: Op;
  key?: Record<string, string | boolean>;
  value?: unknown;
  /** Logical time of the operation, epoch ms. */
  when?: number;
  limit?: number;
  since?: number;
  until?: number;
}

/** The gateway's answer to one operation. */
export interface PersistResult {
  value?: unknown;
  has?: boolean;
}

export interface CallCounters {
  calls: number;
  /** Sum of the durations of the calls (overlapping calls count twice). */
  ms: number;
  errors: number;
}

/** Snapshot of the timing counters. */
export interface PersistenceStats extends CallCounters {
  /** Wall time during which at least one persistence call was in flight. */
  busyMs: number;
  kinds: Partial<Record<Kind, CallCounters & { methods: Record<string, CallCounters> }>>;
  /** HTTP requests sent (including retries). */
  requests: number;
  retries: number;
  candleCache: { hits: number; misses: number };
  /** Writes merged into a queued write of the same key. */
  coalescedWrites: number;
  /** Writes sent together: batch requests and the writes they carried (lone writes are not counted). */
  batches: { requests: number; ops: number };
}

export interface PersistenceHandle {
  client: GatewayClient;
  /** The adapter classes registered with backtest-kit, keyed by kind. */
  classes: Record<Kind, new (...args: any[]) => any>;
  stats(): PersistenceStats;
  resetStats(): void;
  /** Resolves once every write issued so far has reached the gateway. */
  flush(): Promise<void>;
  /** Closes idle keep-alive connections. */
  close(): void;
}

/** Registers all 16 gateway-backed persist adapters with backtest-kit. */
export declare function usePersistence(options?: PersistenceOptions): PersistenceHandle;

/** Registers backtest-kit's own file adapters wrapped with the same timing counters. */
export declare function useTimedFileAdapters(): { stats(): PersistenceStats; resetStats(): void };

/** Options read from the BACKTEST_PERSISTENCE_* environment variables. */
export declare function optionsFromEnv(env?: Record<string, string | undefined>): PersistenceOptions;

/** A failed gateway call. */
export declare class PersistenceError extends Error {
  /** InvalidRequest, Unauthorized, Forbidden, NotFound, TooLarge, Unavailable, Internal, Network, Timeout, Transport or BadResponse. */
  readonly code: string;
  /** HTTP status; 0 when no answer arrived. */
  readonly status: number;
  readonly kind?: string;
  readonly op?: string;
  /** namespace/name */
  readonly tenant?: string;
  attempts?: number;
  readonly retryable: boolean;
}

/** The HTTP transport to one tenant of the gateway. */
export declare class GatewayClient {
  constructor(options: PersistenceOptions & { url: string; namespace: string; name: string });
  readonly tenant: string;
  op(req: PersistRequest): Promise<PersistResult>;
  batch(reqs: PersistRequest[]): Promise<Array<PersistResult | { error: { code: string; message: string } }>>;
  flush(): Promise<void>;
  close(): void;
}

/** Timing counters. */
export declare class Stats {
  reset(): void;
  record(kind: string, method: string, ms: number, failed: boolean): void;
  snapshot(): PersistenceStats;
}

/** Wraps every method of an adapter class with timing counters. */
export declare function timed<C extends new (...args: any[]) => any>(Base: C, kind: string, stats: Stats): C;

/** Builds the 16 adapter classes for one client (for advanced use; usePersistence does this). */
export declare function createAdapterClasses(p: {
  client: GatewayClient;
  stats: Stats;
  defaults?: () => { multiplier?: number; isolated?: boolean };
  candleCacheSize?: number;
  now?: () => number;
}): Record<Kind, new (...args: any[]) => any> & { flush(): Promise<void> };

/** Restores minuteEstimatedTime null → Infinity and the multiplier/isolated defaults on a signal-like row. */
export declare function restoreSignalRow<T>(row: T, defaults: { multiplier?: number; isolated?: boolean }, onlyIfPresent?: boolean, onlyIfCost?: boolean): T;

/** The 16 kinds with their backtest-kit adapter names. */
export declare const KINDS: ReadonlyArray<readonly [Kind, string]>;

export declare const INTERVAL_MINUTES: Readonly<Record<string, number>>;

export declare class CandleCache {
  constructor(maxCandles?: number);
  window(series: string, since: number, step: number, limit: number): object[] | null;
  has(series: string, ts: number): boolean;
  add(series: string, candles: object[]): void;
}

export declare class TokenSource {
  constructor(p?: { token?: string; tokenFile?: string; checkIntervalMs?: number; now?: () => number });
  get(): string;
  refresh(): boolean;
}
