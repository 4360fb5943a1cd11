/**
 * GatewayClient: the HTTP transport to a backtest-persistence gateway.
 *
 * One keep-alive agent per client; JSON bodies; bearer token from a TokenSource;
 * retries with exponential backoff and jitter, bounded in attempts and total
 * time, for answers that say "try again" (503 Unavailable) and for transport
 * failures. Every operation of the persistence contract is idempotent (reads,
 * and writes that set a value, upsert by id or insert-only), so a retried write
 * stores the same value; writes of one key are additionally serialized by the
 * caller (see KeyedQueue) so a retried write can never land after a newer one.
 */
import http from "node:http";
import https from "node:https";
import { readFileSync } from "node:fs";
import { PersistenceError } from "./errors.js";
import { TokenSource } from "./token.js";
import { Stats } from "./stats.js";
import { WriteBatcher } from "./batcher.js";

const TRANSIENT_NET = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EAI_AGAIN",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "UND_ERR_SOCKET",
]);

const CODE_BY_STATUS = {
  400: "InvalidRequest",
  401: "Unauthorized",
  403: "Forbidden",
  404: "NotFound",
  413: "TooLarge",
  500: "Internal",
  502: "Unavailable",
  503: "Unavailable",
  504: "Unavailable",
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * @typedef {object} ClientOptions
 * @property {string} url gateway base URL, e.g. https://gw.example:8443
 * @property {string} namespace namespace of the BacktestPersistence
 * @property {string} name name of the BacktestPersistence
 * @property {string} [token] bearer token
 * @property {string} [tokenFile] file holding the token; re-read when it rotates
 * @property {string|Buffer} [ca] PEM CA bundle (or use caFile)
 * @property {string} [caFile] path of a PEM CA bundle
 * @property {boolean} [insecureSkipVerify] skip TLS verification (development only)
 * @property {number} [timeoutMs] per-attempt timeout (default 30000)
 * @property {number} [retries] retries after the first attempt (default 5)
 * @property {number} [retryBaseMs] first backoff (default 100)
 * @property {number} [retryMaxMs] largest backoff (default 3000)
 * @property {number} [retryBudgetMs] total time spent retrying one call (default 20000)
 * @property {number} [maxSockets] connection pool size (default 16)
 * @property {boolean} [batchWrites] send writes issued together in shared batch requests (default true)
 * @property {number} [batchLanes] batch requests in flight at once (default maxSockets)
 * @property {number} [batchMaxOps] operations per batch request (default 500)
 * @property {number} [batchMaxBytes] body bytes per batch request (default 8 MiB)
 * @property {Stats} [stats] shared counters
 */

/** Operations the batcher may send together: those that change a key. */
const WRITE_OPS = new Set(["write", "remove"]);

/** GatewayClient sends persistence requests to one tenant of the gateway. */
export class GatewayClient {
  /** @param {ClientOptions} opts */
  constructor(opts) {
    if (!opts || !opts.url) throw new Error("backtest-persistence: url is required (e.g. https://gateway:8443)");
    if (!opts.namespace) throw new Error("backtest-persistence: namespace is required");
    if (!opts.name) throw new Error("backtest-persistence: name (of the BacktestPersistence) is required");
    let base;
    try {
      base = new URL(opts.url);
    } catch {
      throw new Error(`backtest-persistence: url ${JSON.stringify(opts.url)} is not a valid URL`);
    }
    if (base.protocol !== "http:" && base.protocol !== "https:") {
      throw new Error(`backtest-persistence: url must be http:// or https://, got ${base.protocol}`);
    }
    this.tenant = `${opts.namespace}/${opts.name}`;
    const prefix = base.pathname.replace(/\/+$/, "");
    const path = `${prefix}/v1/namespaces/${encodeURIComponent(opts.namespace)}/persistences/${encodeURIComponent(opts.name)}`;
    this.base = base;
    this.opsPath = `${path}/ops`;
    this.batchPath = `${path}/batch`;
    this.tokens = new TokenSource({ token: opts.token, tokenFile: opts.tokenFile });
    this.timeoutMs = opts.timeoutMs ?? 30000;
    this.retries = opts.retries ?? 5;
    this.retryBaseMs = opts.retryBaseMs ?? 100;
    this.retryMaxMs = opts.retryMaxMs ?? 3000;
    this.retryBudgetMs = opts.retryBudgetMs ?? 20000;
    this.stats = opts.stats ?? new Stats();
    /** @type {Set<Promise<any>>} requests in flight */
    this.pending = new Set();
    const isTLS = base.protocol === "https:";
    this.mod = isTLS ? https : http;
    const agentOpts = { keepAlive: true, maxSockets: opts.maxSockets ?? 16, keepAliveMsecs: 15000 };
    if (isTLS) {
      const ca = opts.ca ?? (opts.caFile ? readFileSync(opts.caFile) : undefined);
      if (ca) agentOpts.ca = ca;
      if (opts.insecureSkipVerify) agentOpts.rejectUnauthorized = false;
    }
    this.agent = new this.mod.Agent(agentOpts);
    this.batcher =
      opts.batchWrites === false
        ? null
        : new WriteBatcher(this, { lanes: opts.batchLanes ?? agentOpts.maxSockets, maxOps: opts.batchMaxOps, maxBytes: opts.batchMaxBytes });
  }

  /**
   * One operation. Resolves with the gateway's Result ({value} or {has}; {} for most
   * writes, {value} for candle writes). Writes go through the batcher (see batcher.js).
   * @param {import("./index.js").PersistRequest} req
   */
  op(req) {
    if (this.batcher && WRITE_OPS.has(req.op)) return this.track(this.batcher.submit(req));
    return this.track(this.send(this.opsPath, req, req.kind, req.op));
  }

  track(p) {
    this.pending.add(p);
    const done = () => this.pending.delete(p);
    p.then(done, done);
    return p;
  }

  /** Resolves when every request issued so far (and any issued meanwhile) has finished. */
  async flush() {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  /**
   * Several operations in one round trip. Resolves with one entry per request:
   * a Result, or {error:{code,message}} for a request that failed on its own.
   * @param {import("./index.js").PersistRequest[]} reqs
   */
  async batch(reqs) {
    const res = await this.track(this.send(this.batchPath, { ops: reqs }, "batch", `${reqs.length} ops`));
    if (!res || !Array.isArray(res.results) || res.results.length !== reqs.length) {
      throw new PersistenceError({ code: "BadResponse", status: 200, message: "batch answer has the wrong shape", tenant: this.tenant });
    }
    return res.results;
  }

  /** Sends body (an object, or an encoded Buffer) to path, with retries. */
  async send(path, body, kind, op) {
    const payload = Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
    if (kind === "batch" || WRITE_OPS.has(op)) this.stats.writeRequests++; // once per request, not per attempt
    const started = performance.now();
    let refreshed = false;
    for (let attempt = 1; ; attempt++) {
      let err;
      try {
        this.stats.requests++;
        return await this.attempt(path, payload, kind, op, attempt);
      } catch (e) {
        err = e;
      }
      if (err.code === "Unauthorized" && !refreshed && this.tokens.refresh()) {
        refreshed = true; // the kubelet rotated the token file: retry once with the new token
        this.stats.retries++;
        continue;
      }
      const elapsed = performance.now() - started;
      if (!err.retryable || attempt > this.retries || elapsed >= this.retryBudgetMs) {
        err.attempts = attempt;
        if (attempt > 1) err.message = err.message.replace(" failed: ", ` failed after ${attempt} attempts: `);
        throw err;
      }
      const backoff = Math.min(this.retryMaxMs, this.retryBaseMs * 2 ** (attempt - 1));
      const wait = Math.min(backoff / 2 + Math.random() * (backoff / 2), Math.max(0, this.retryBudgetMs - elapsed));
      this.stats.retries++;
      await sleep(wait);
    }
  }

  attempt(path, payload, kind, op, attempt) {
    const token = this.tokens.get();
    const headers = {
      "content-type": "application/json",
      accept: "application/json",
      "content-length": payload.length,
    };
    if (token) headers.authorization = `Bearer ${token}`;
    const fail = (p) => new PersistenceError({ kind, op, tenant: this.tenant, attempts: attempt, ...p });
    return new Promise((resolve, reject) => {
      const req = this.mod.request(
        {
          protocol: this.base.protocol,
          hostname: this.base.hostname,
          port: this.base.port,
          path,
          method: "POST",
          headers,
          agent: this.agent,
          timeout: this.timeoutMs,
        },
        (res) => {
          const chunks = [];
          res.on("data", (c) => chunks.push(c));
          res.on("error", (e) => reject(fail({ code: "Network", message: e.message, cause: e })));
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            let json;
            try {
              json = text ? JSON.parse(text) : {};
            } catch {
              json = undefined;
            }
            if (res.statusCode >= 200 && res.statusCode < 300) {
              if (json === undefined) {
                reject(fail({ code: "BadResponse", status: res.statusCode, message: `answer is not JSON: ${text.slice(0, 200)}` }));
              } else resolve(json);
              return;
            }
            const code = (json && typeof json.code === "string" && json.code) || CODE_BY_STATUS[res.statusCode] || "Internal";
            const message = (json && typeof json.message === "string" && json.message) || text.slice(0, 300) || res.statusMessage || "";
            reject(fail({ code, status: res.statusCode, message }));
          });
        },
      );
      req.on("timeout", () => {
        req.destroy(Object.assign(new Error(`no answer within ${this.timeoutMs} ms`), { code: "ETIMEDOUT_CLIENT" }));
      });
      req.on("error", (e) => {
        if (e.code === "ETIMEDOUT_CLIENT") {
          reject(fail({ code: "Timeout", message: e.message, cause: e }));
          return;
        }
        // Connection-level failures are worth retrying; TLS and other local errors are not.
        const transient = TRANSIENT_NET.has(e.code) || e.code === undefined;
        reject(fail({ code: transient ? "Network" : "Transport", message: `${e.code ? e.code + ": " : ""}${e.message}`, cause: e }));
      });
      req.end(payload);
    });
  }

  /** Closes idle keep-alive connections. The client stays usable. */
  close() {
    this.agent.destroy();
  }
}

