/**
 * Whole-list writes of any size (Storage, Notification, Log).
 *
 * backtest-kit rewrites the whole retained list on every change (up to 1,000 log
 * entries with arbitrary args, 500 notifications). The store merges a list write
 * into the stored list by item id (an upsert per item, insert-only for Log; items
 * are never deleted), so a list can be sent as several writes of parts of it: once
 * every part is acknowledged the stored list holds every item written, as one
 * request would have left it. Each part stays under a byte budget well below the
 * gateway's body limit and the store's payload limit.
 *
 * Only acknowledged parts are recorded as sent. A part that fails leaves the parts
 * before it stored and recorded, and the next write of the list resends what was
 * not acknowledged (it is still unrecorded), which repairs the stored list.
 */

/** Default byte budget of one part's JSON array (1 MiB; the store accepts 4 MiB). */
export const DEFAULT_LIST_PART_BYTES = 1 << 20;

/**
 * Splits encoded items into parts whose JSON array ("[" + items joined by "," + "]")
 * is at most maxBytes bytes of UTF-8. An item larger than maxBytes on its own
 * forms a part by itself. Order is kept.
 * @param {string[]} encoded JSON of each item
 * @param {number} maxBytes
 * @returns {number[][]} indices into encoded, per part
 */
export function splitListParts(encoded, maxBytes) {
  const parts = [];
  let cur = [];
  let size = 2; // "[" and "]"
  for (let i = 0; i < encoded.length; i++) {
    const n = Buffer.byteLength(encoded[i], "utf8");
    const add = cur.length === 0 ? n : n + 1; // "," before every item but the first
    if (cur.length > 0 && size + add > maxBytes) {
      parts.push(cur);
      cur = [];
      size = 2;
    }
    size += cur.length === 0 ? n : n + 1;
    cur.push(i);
  }
  if (cur.length > 0) parts.push(cur);
  return parts;
}

/**
 * Sends the items of a list write in parts, one after another, and records each
 * part as sent once the gateway acknowledged it.
 *
 * A part of one item that the gateway refuses as TooLarge can never be stored: it
 * is reported through rejected(id, json) and skipped, the other parts are still
 * sent, and the write then fails with that error (so the caller learns of it once,
 * while later writes of the list are not blocked by it). Any other failure stops
 * the write at that part and is thrown; nothing after it is recorded.
 *
 * @param {object} p
 * @param {any[]} p.items items to send
 * @param {Array<[string, string]>} p.encoded [id, JSON] of each item
 * @param {number} p.maxBytes byte budget of one part
 * @param {(part: any[]) => Promise<void>} p.send writes one part
 * @param {(sent: Array<[string, string]>) => void} p.record records acknowledged items
 * @param {(id: string, json: string) => void} [p.rejected] records an item refused as too large
 * @returns {Promise<{parts: number}>} the number of parts sent
 */
export async function sendListInParts({ items, encoded, maxBytes, send, record, rejected = () => {} }) {
  const parts = splitListParts(
    encoded.map(([, j]) => j),
    maxBytes,
  );
  let tooLarge = null;
  for (const part of parts) {
    try {
      await send(part.map((i) => items[i]));
    } catch (err) {
      if (err && err.code === "TooLarge" && part.length === 1) {
        const [id, j] = encoded[part[0]];
        rejected(id, j);
        tooLarge ??= err;
        continue;
      }
      throw err;
    }
    record(part.map((i) => encoded[i]));
  }
  if (tooLarge) throw tooLarge;
  return { parts: parts.length };
}
