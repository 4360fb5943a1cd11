/**
 * Token sources: a fixed token, or a service-account token file that the
 * kubelet rotates in place. The file is re-read when its modification time or
 * size changes (checked at most once per `checkIntervalMs`) and immediately
 * after the gateway answers 401.
 */
import { readFileSync, statSync } from "node:fs";

/** TokenSource yields the bearer token for each request. */
export class TokenSource {
  /**
   * @param {object} p
   * @param {string} [p.token] fixed token
   * @param {string} [p.tokenFile] path of a token file (re-read on rotation)
   * @param {number} [p.checkIntervalMs] how often to stat the file
   * @param {() => number} [p.now] clock in ms (tests)
   */
  constructor({ token, tokenFile, checkIntervalMs = 1000, now = () => performance.now() } = {}) {
    this.fixed = token ? String(token).trim() : "";
    this.file = tokenFile || "";
    this.checkIntervalMs = checkIntervalMs;
    this.now = now;
    this.cached = "";
    this.sig = "";
    this.checkedAt = -Infinity;
  }

  /** @returns {string} the current token, "" when none is configured */
  get() {
    if (this.fixed || !this.file) return this.fixed;
    const t = this.now();
    if (t - this.checkedAt >= this.checkIntervalMs || !this.cached) {
      this.checkedAt = t;
      this.reload(false);
    }
    return this.cached;
  }

  /** Forces a re-read of the token file (after a 401). Returns true when the token changed. */
  refresh() {
    if (this.fixed || !this.file) return false;
    const before = this.cached;
    this.checkedAt = this.now();
    this.reload(true);
    return this.cached !== before;
  }

  reload(force) {
    let st;
    try {
      st = statSync(this.file);
    } catch (err) {
      throw new Error(`backtest-persistence: cannot read token file ${this.file}: ${err.message}`, { cause: err });
    }
    const sig = `${st.mtimeMs}:${st.size}:${st.ino}`;
    if (!force && sig === this.sig && this.cached) return;
    const text = readFileSync(this.file, "utf8").trim();
    if (!text) throw new Error(`backtest-persistence: token file ${this.file} is empty`);
    this.cached = text;
    this.sig = sig;
  }
}
