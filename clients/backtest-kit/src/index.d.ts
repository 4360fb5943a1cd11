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
  /**
   * Register only these kinds (default: every kind the running backtest-kit has: 16 with
   * 19.x, 17 with 20.x). A kind named here that backtest-kit lacks is an error.
   */
  kinds?: Kind[];
  /** The backtest-kit module to register with (default: the installed "backtest-kit"). */
  backtestKit?: Record<string, any>;
  /** Byte budget of one request of a whole-list write (default 1 MiB); longer lists are sent in parts. */
  listPartBytes?: number;
  /** Receives one line naming the kinds registered (e.g. console.log). */
  log?: (line: string) => void;
  /** Shared counters (e.g. one Stats for several tenants). */
  stats?: Stats;
}

export type Kind =
  | "signal" | "schedule" | "strategy" | "risk" | "partial" | "breakeven" | "candle" | "storage"
  | "notification" | "log" | "measure" | "interval" | "memory" | "recent" | "state" | "session"
  | "dictionary";

export type Op = "read" | "write" | "has" | "remove" | "list" | "scan";

/** One operation as the gateway receives it. */
export interface PersistRequest {
  kind: Kind;
  op: Op;
  key?: Record<string, string | boolean>;
  value?: unknown;
  /** Logical time of the operation, epoch ms. */
  when?: number;
  /** Candle reads: the window's length; scans: the page size (1..1000). */
  limit?: number;
  since?: number;
  until?: number;
  /** Scans: the previous page's `next`. */
  after?: string;
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
  /** Requests that carried writes (write, remove, batch), each counted once, without its retries. */
  writeRequests: number;
  retries: number;
  candleCache: { hits: number; misses: number };
  /** Writes merged into a queued write of the same key. */
  coalescedWrites: number;
  /** Writes sent together: batch requests and the writes they carried (lone writes are not counted). */
  batches: { requests: number; ops: number };
}

export interface PersistenceHandle {
  client: GatewayClient;
  /** The adapter classes, keyed by kind (all 17, registered or not). */
  classes: Record<Kind, new (...args: any[]) => any>;
  /** The kinds registered with backtest-kit, in table order (16 with backtest-kit 19.x, 17 with 20.x). */
  registered: Kind[];
  /** Optional kinds the running backtest-kit lacks, so not registered (["dictionary"] with 19.x). */
  unavailable: Kind[];
  stats(): PersistenceStats;
  resetStats(): void;
  /** Resolves once every write issued so far has reached the gateway. */
  flush(): Promise<void>;
  /** Closes idle keep-alive connections. */
  close(): void;
}

/** Registers the gateway-backed persist adapters with backtest-kit (every kind it has). */
export declare function usePersistence(options?: PersistenceOptions): PersistenceHandle;

/** Registers backtest-kit's own file adapters wrapped with the same timing counters. */
export declare function useTimedFileAdapters(backtestKit?: Record<string, any>): { registered: Kind[]; stats(): PersistenceStats; resetStats(): void };

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

/** Builds the 17 adapter classes for one client (for advanced use; usePersistence does this). */
export declare function createAdapterClasses(p: {
  client: GatewayClient;
  stats: Stats;
  defaults?: () => { multiplier?: number; isolated?: boolean };
  candleCacheSize?: number;
  now?: () => number;
  listPartBytes?: number;
}): Record<Kind, new (...args: any[]) => any> & { flush(): Promise<void> };

/** Restores minuteEstimatedTime null → Infinity and the multiplier/isolated defaults on a signal-like row. */
export declare function restoreSignalRow<T>(row: T, defaults: { multiplier?: number; isolated?: boolean }, onlyIfPresent?: boolean, onlyIfCost?: boolean): T;

/** The 17 kinds with their backtest-kit adapter names (backtest-kit 19.x's 16, then dictionary). */
export declare const KINDS: ReadonlyArray<readonly [Kind, string]>;

/** Kinds older backtest-kit versions lack; registered only when present ("dictionary", 20.x). */
export declare const OPTIONAL_KINDS: ReadonlySet<Kind>;

/** Default byte budget of one part of a whole-list write (1 MiB). */
export declare const DEFAULT_LIST_PART_BYTES: number;

/** Splits encoded list items into parts of at most maxBytes bytes of JSON array (indices per part). */
export declare function splitListParts(encoded: string[], maxBytes: number): number[][];

/** Sends a whole-list write in parts and records each acknowledged part as sent. */
export declare function sendListInParts(p: {
  items: any[];
  encoded: Array<[string, string]>;
  maxBytes: number;
  send(part: any[]): Promise<unknown>;
  record(sent: Array<[string, string]>): void;
  rejected?(id: string, json: string): void;
}): Promise<{ parts: number }>;

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

/** One record of a file dump, keyed as the gateway keys it. */
export interface DumpRecord {
  kind: Kind;
  key: Record<string, string | boolean>;
  value: unknown;
  /** Path of its file, relative to the dump. */
  path: string;
  /** Logical time taken from the payload, for kinds whose writes carry one. */
  when?: number;
  /** List kinds (storage, notification, log): the item id. */
  id?: string;
  /** Candles: the open time. */
  timestamp?: number;
}

/** A file dump as the installed backtest-kit's file adapters lay it out. */
export interface Dump {
  dir: string;
  records: DumpRecord[];
  /** Files that could not be read (corrupt or truncated JSON), or folder names that split more than one way. */
  problems: { path: string; kind?: Kind; error: string }[];
  /** Folders and files no adapter keeps. */
  unknown: { path: string; kind?: Kind; reason: string }[];
  /** Left out on purpose (report folders; candles with candles: false). */
  skipped: { path: string; kind?: Kind; reason: string }[];
}

/** Reads a dump with the installed backtest-kit's file adapter classes; the dump is only read. */
export declare function readDump(dir: string, opts?: { candles?: boolean }): Promise<Dump>;

export interface ImportOptions {
  client: GatewayClient;
  /** The dump folder (backtest-kit's ./dump). */
  dump: string;
  /** Read and compare only; report what would be written. */
  dryRun?: boolean;
  /** Afterwards, read the dump again and everything back from the tenant and compare. */
  verify?: boolean;
  /** Import candles (default true). */
  candles?: boolean;
  /** Batches in flight (default 4). */
  concurrency?: number;
  /** Where the progress bar goes (default process.stdout). */
  progress?: { write(chunk: string): unknown; isTTY?: boolean };
  /** Show a progress bar (default: when `progress` is a terminal). */
  progressBar?: boolean;
  /** Called after the writes, before the verify pass. */
  afterImport?: () => void | Promise<void>;
}

export interface ImportKindCounts {
  records: number;
  unchanged: number;
  /** Written (dry run: would be written). */
  written: number;
  failed: number;
  /**
   * List items (storage, notification, log) older than the full window a list read
   * returns: sent again, the store skipping unchanged ones, but not comparable, so not
   * counted as changes.
   */
  beyondWindow: number;
}

export interface ImportIssue {
  kind: Kind;
  path: string;
  key: Record<string, string | boolean>;
  error: string;
}

export interface ImportReport {
  dump: string;
  dryRun: boolean;
  records: number;
  /** Records written; 0 on a second run of the same dump. */
  changes: number;
  kinds: Record<Kind, ImportKindCounts>;
  problems: Dump["problems"];
  unknown: Dump["unknown"];
  skipped: Dump["skipped"];
  /** Reads or writes the gateway refused. */
  failures: ImportIssue[];
  /** Insert-only records (candles, logs) the tenant holds with other content. */
  conflicts: ImportIssue[];
  importMs: number;
  recordsPerSecond: number;
  verify?: {
    records: number;
    matched: number;
    /** List items older than the window a list read returns: not compared. */
    beyondWindow: number;
    mismatches: ImportIssue[];
    changedInDump: { kind: Kind; path: string; change: "appeared" | "changed" | "disappeared" | "became unreadable" }[];
    ok: boolean;
  };
  /** Nothing reported: every record imported (and verified). */
  ok: boolean;
}

/**
 * Imports a file dump into the client's tenant: read, compare, write only what differs, in
 * batches. The working directory is changed while the dump is read (backtest-kit's file
 * adapters use paths relative to it): give the client absolute token and CA file paths.
 */
export declare function importDump(opts: ImportOptions): Promise<ImportReport>;
export declare function formatImportReport(r: ImportReport): string;

export interface VerifyReport {
  documents: number;
  kinds: Record<Kind, { collection: string; documents: number; readable: number; removed: number; unreadable: number }>;
  /** Every document that cannot be read, with its collection and key (and _id when its key is malformed). */
  unreadable: { kind: Kind; collection: string; id?: string; key: Record<string, unknown>; error: string }[];
  ms: number;
  ok: boolean;
}

/** Counts every kind of the tenant's store through the gateway (scan, verb "list") and reads every key back. */
export declare function verifyTenant(opts: { client: GatewayClient; concurrency?: number; kinds?: Kind[] }): Promise<VerifyReport>;
export declare function formatVerifyReport(r: VerifyReport): string;
