/**
 * WriteBatcher: writes issued together share round trips.
 *
 * backtest-kit issues many independent writes at once (a full-profile backtest
 * has dozens in flight). Writes submitted here wait for the current turn of the
 * event loop to end, then go out as few POST .../batch requests as the lanes
 * allow: at most `lanes` batcher requests are in flight, and writes issued while
 * every lane is busy wait for the next free lane, so a burst of N writes costs
 * about `lanes` round trips instead of N. A lone write still goes out at once, as
 * a single operation.
 *
 * Guarantees:
 * - per-key order: a batch holds at most one write of a key, and a write of a key
 *   is not sent while an earlier write of that key (or a retry of it) is pending,
 *   so two writes of one key are never reordered and a later one is never
 *   acknowledged first;
 * - each write keeps its own answer: a slot's Result resolves that write's promise,
 *   a slot's error rejects only that write, with a PersistenceError like the one a
 *   single request would have produced; a retryable slot error (Unavailable) is
 *   retried as a single request with the client's usual backoff;
 * - a whole batch the gateway refuses as malformed or too large (400/413, or an
 *   answer of the wrong shape) is sent again one operation at a time, so each
 *   write gets its own verdict and one bad write never fails its neighbours;
 * - limits: at most maxOps operations and maxBytes bytes of body per batch (the
 *   gateway's --gateway-max-batch-ops and --gateway-max-body-bytes); an operation
 *   too large for a batch goes alone.
 */
import { PersistenceError, RETRYABLE_CODES, VALUE_ERROR_CODES } from "./errors.js";

/** HTTP status a single request answers with, per gateway error code. */
const STATUS_BY_CODE = {
  InvalidRequest: 400,
  Unauthorized: 401,
  Forbidden: 403,
  NotFound: 404,
  TooLarge: 413,
  Internal: 500,
  Unavailable: 503,
};

/** Whole-batch failures that say nothing about the individual operations. */
const RESEND_ONE_BY_ONE = new Set([...VALUE_ERROR_CODES, "BadResponse", "Internal"]);

const ENVELOPE_BYTES = '{"ops":[]}'.length;

/**
 * @typedef {object} BatchOptions
 * @property {number} [maxOps] operations per batch (default 500)
 * @property {number} [maxBytes] body bytes per batch (default 8 MiB)
 * @property {number} [lanes] batch requests in flight at once (default 16)
 */

export class WriteBatcher {
  /**
   * @param {import("./client.js").GatewayClient} client
   * @param {BatchOptions} [opts]
   */
  constructor(client, opts = {}) {
    this.client = client;
    this.maxOps = Math.max(1, opts.maxOps ?? 500);
    this.maxBytes = Math.max(1024, opts.maxBytes ?? 8 << 20);
    this.lanes = Math.max(1, opts.lanes ?? 16);
    /** @type {Entry[]} writes not sent yet, in issue order */
    this.queue = [];
    /** keys with a write sent and not yet answered (retries included) */
    this.busy = new Set();
    this.inflight = 0;
    this.scheduled = false;
  }

  /**
   * Queues one write; resolves with its Result.
   * @param {import("./index.js").PersistRequest} req
   */
  submit(req) {
    const json = JSON.stringify(req);
    return new Promise((resolve, reject) => {
      this.queue.push({ req, json, bytes: Buffer.byteLength(json), key: `${req.kind}\u0000${JSON.stringify(req.key ?? null)}`, resolve, reject });
      this.schedule();
    });
  }

  schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  /** Sends what may go now: one batch per free lane. */
  pump() {
    const free = this.lanes - this.inflight;
    if (free <= 0 || this.queue.length === 0) return;
    const ready = [];
    const taken = new Set();
    for (const e of this.queue) {
      if (this.busy.has(e.key) || taken.has(e.key)) continue;
      taken.add(e.key);
      ready.push(e);
    }
    if (ready.length === 0) return;
    const per = Math.min(this.maxOps, Math.ceil(ready.length / free));
    const budget = this.maxBytes - ENVELOPE_BYTES;
    const batches = [];
    let cur = [];
    let bytes = 0;
    for (const e of ready) {
      if (e.bytes + 1 > budget) {
        batches.push([e]); // too large to share a body: alone, so the gateway judges it alone
      } else {
        if (cur.length >= per || bytes + e.bytes + 1 > budget) {
          batches.push(cur);
          cur = [];
          bytes = 0;
        }
        cur.push(e);
        bytes += e.bytes + 1;
      }
      if (batches.length >= free) break;
    }
    if (cur.length > 0 && batches.length < free) batches.push(cur);
    const sent = new Set();
    for (const b of batches) {
      for (const e of b) {
        sent.add(e);
        this.busy.add(e.key);
      }
      this.inflight++;
      this.run(b).finally(() => {
        this.inflight--;
        this.pump();
      });
    }
    this.queue = this.queue.filter((e) => !sent.has(e));
  }

  /** Sends one batch and settles each of its writes. */
  async run(entries) {
    if (entries.length === 1) return this.single(entries[0]);
    const c = this.client;
    c.stats.batches++;
    c.stats.batchedOps += entries.length;
    let results;
    try {
      const body = Buffer.from(`{"ops":[${entries.map((e) => e.json).join(",")}]}`);
      const res = await c.send(c.batchPath, body, "batch", `${entries.length} ops`);
      results = res && Array.isArray(res.results) && res.results.length === entries.length ? res.results : null;
      if (!results) throw new PersistenceError({ code: "BadResponse", status: 200, message: "batch answer has the wrong shape", tenant: c.tenant });
    } catch (err) {
      if (RESEND_ONE_BY_ONE.has(err.code)) {
        await Promise.all(entries.map((e) => this.single(e)));
      } else {
        for (const e of entries) this.settle(e, () => Promise.reject(this.copyError(err, e.req)));
      }
      return;
    }
    await Promise.all(
      entries.map((e, i) => {
        const r = results[i];
        const slotErr = r && typeof r === "object" && r.error && typeof r.error === "object" ? r.error : null;
        if (!slotErr) return this.settle(e, () => Promise.resolve(r ?? {}));
        const code = typeof slotErr.code === "string" && slotErr.code ? slotErr.code : "Internal";
        if (RETRYABLE_CODES.has(code)) {
          c.stats.retries++;
          return this.single(e); // retried as today: alone, with backoff
        }
        const message = typeof slotErr.message === "string" ? slotErr.message : "";
        return this.settle(e, () => Promise.reject(this.opError(e.req, { code, status: STATUS_BY_CODE[code] ?? 0, message, attempts: 1 })));
      }),
    );
  }

  /** Sends one write alone (with the client's retries). */
  single(e) {
    return this.settle(e, () => this.client.send(this.client.opsPath, Buffer.from(e.json), e.req.kind, e.req.op));
  }

  /** Runs fn, settles the write with its outcome and frees the write's key. */
  async settle(e, fn) {
    try {
      e.resolve(await fn());
    } catch (err) {
      e.reject(err);
    } finally {
      this.busy.delete(e.key);
    }
  }

  /** The error this write would have had as a single request, from the batch's error. */
  copyError(err, req) {
    if (!(err instanceof PersistenceError)) return err;
    return this.opError(req, { code: err.code, status: err.status, message: err.reason ?? err.message, attempts: err.attempts, cause: err });
  }

  opError(req, p) {
    return new PersistenceError({ kind: req.kind, op: req.op, tenant: this.client.tenant, ...p });
  }
}

/**
 * @typedef {object} Entry
 * @property {import("./index.js").PersistRequest} req
 * @property {string} json the request, encoded once
 * @property {number} bytes its length in bytes
 * @property {string} key kind and key: writes of one key keep their order
 * @property {(r: any) => void} resolve
 * @property {(e: any) => void} reject
 */
