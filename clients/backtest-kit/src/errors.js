/**
 * Errors of the backtest-kit persistence client.
 *
 * Every failure of a gateway call surfaces as a PersistenceError naming the
 * tenant, the kind and the operation, the gateway's stable error code and the
 * HTTP status, with a hint for the usual causes.
 */

/** Gateway error codes that a retry may cure. */
export const RETRYABLE_CODES = new Set(["Unavailable"]);

/** Gateway error codes about a write's value (400, 413), not the transport or the store. */
export const VALUE_ERROR_CODES = new Set(["InvalidRequest", "TooLarge"]);

/** Whether err is about a write's value: the gateway refused it (400/413), or a client-side check did. */
export function isValueError(err) {
  return err instanceof TypeError || VALUE_ERROR_CODES.has(err?.code);
}

const HINTS = {
  Unauthorized:
    "the service-account token was rejected: check token/tokenFile, that the token is not expired and that its audience matches the gateway's",
  Forbidden:
    "the service account may not use this BacktestPersistence: grant it the backtestpersistences/data resource (get for reads, update for writes) with a Role and RoleBinding",
  NotFound:
    "no such BacktestPersistence in this namespace (or the caller may not see it): check namespace and name",
  TooLarge: "a key or payload is over the gateway's size limit",
  Unavailable: "the tenant's MongoDB or Redis is unreachable right now",
  Network: "the gateway could not be reached: check url, TLS settings (ca) and that the operator is running",
  Timeout: "the gateway did not answer in time",
  Transport: "the connection to the gateway failed (for TLS errors: pass the gateway's CA as ca or caFile)",
};

/** PersistenceError is a failed gateway call. */
export class PersistenceError extends Error {
  /**
   * @param {object} p
   * @param {string} p.code stable code: gateway codes, or Network / Timeout / BadResponse
   * @param {number} [p.status] HTTP status, 0 when no response arrived
   * @param {string} p.message what the gateway (or the transport) said
   * @param {string} [p.kind] adapter kind
   * @param {string} [p.op] operation
   * @param {string} [p.tenant] namespace/name
   * @param {number} [p.attempts] attempts made
   * @param {unknown} [p.cause] underlying error
   */
  constructor({ code, status = 0, message, kind, op, tenant, attempts, cause }) {
    const where = [kind && op ? `${kind} ${op}` : kind || op, tenant && `tenant ${tenant}`].filter(Boolean).join(" on ");
    const hint = HINTS[code];
    const tries = attempts > 1 ? ` after ${attempts} attempts` : "";
    super(
      `backtest-persistence: ${where || "request"} failed${tries}: ${code}${status ? ` (HTTP ${status})` : ""}: ${message}` +
        (hint ? ` — ${hint}` : ""),
      cause === undefined ? undefined : { cause },
    );
    this.name = "PersistenceError";
    this.code = code;
    /** what the gateway (or the transport) said, without the context above */
    this.reason = message;
    this.status = status;
    this.kind = kind;
    this.op = op;
    this.tenant = tenant;
    this.attempts = attempts;
  }

  /** True when a retry may succeed (the store was unavailable or the gateway unreachable). */
  get retryable() {
    return RETRYABLE_CODES.has(this.code) || this.code === "Network" || this.code === "Timeout";
  }
}
