/**
 * KeyedQueue serializes the writes of one key inside the process, so a write
 * (and any retry of it) completes before the next write of the same key starts:
 * last-issued write wins, as with the file adapters. Writes that queue up behind
 * a running one are merged into one request when the kind allows it (whole-list
 * writes: union by item id; record overwrites: the newest), which keeps bursts of
 * overlapping writes of one key cheap.
 */
import { isValueError } from "./errors.js";

export class KeyedQueue {
  /** @param {{coalescedWrites:number}} stats */
  constructor(stats) {
    this.stats = stats;
    /** @type {Map<string, {active:boolean, items:any[]}>} */
    this.queues = new Map();
    /** @type {Set<Promise<void>>} */
    this.running = new Set();
  }

  /**
   * Runs task(value) after every earlier task of the same key.
   * @template V, R
   * @param {string} key
   * @param {V} value
   * @param {(value: V) => Promise<R>} task
   * @param {((older: V, newer: V) => V) | null} merge merges into a waiting (not yet started) task
   * @returns {Promise<R>}
   */
  submit(key, value, task, merge = null) {
    let q = this.queues.get(key);
    if (!q) {
      q = { active: false, items: [] };
      this.queues.set(key, q);
    }
    const tail = q.items[q.items.length - 1];
    let item;
    if (merge && tail && tail.merge === merge) {
      tail.value = merge(tail.value, value);
      this.stats.coalescedWrites++;
      item = tail;
    } else {
      item = { value, task, merge, waiters: [] };
      q.items.push(item);
    }
    const p = new Promise((resolve, reject) => item.waiters.push({ value, resolve, reject }));
    if (!q.active) {
      const d = this.drain(key, q);
      this.running.add(d);
      d.then(() => this.running.delete(d));
    }
    return p;
  }

  /** Resolves when no key has queued or running work. */
  async idle() {
    while (this.queues.size > 0 || this.running.size > 0) {
      await Promise.allSettled([...this.running]);
    }
  }

  async drain(key, q) {
    q.active = true;
    while (q.items.length > 0) {
      const item = q.items.shift();
      try {
        const r = await item.task(item.value);
        for (const w of item.waiters) w.resolve(r);
      } catch (err) {
        if (item.waiters.length > 1 && isValueError(err)) {
          // The merged value was refused for its content: one of the merged writes
          // is bad. Each then goes on its own, in order, and gets its own verdict, so
          // a bad write neither fails the good ones nor passes for good itself.
          for (const w of item.waiters) {
            try {
              w.resolve(await item.task(w.value));
            } catch (e) {
              w.reject(e);
            }
          }
        } else {
          for (const w of item.waiters) w.reject(err);
        }
      }
    }
    q.active = false;
    this.queues.delete(key);
  }
}

/**
 * Merge for whole-record overwrites: the newer write replaces a waiting one. The
 * waiting write's caller is answered when the newer one is stored; its value is
 * never seen, as if it had been overwritten at once (both were in flight together).
 */
export function latestWins(_older, newer) {
  return newer;
}

/** Merge for upsert-by-id lists: union, the newer item wins. */
export function mergeNewerWins(older, newer) {
  const byId = new Map();
  for (const it of older) byId.set(it?.id, it);
  for (const it of newer) byId.set(it?.id, it);
  return [...byId.values()];
}

/** Merge for insert-only lists: union, the older item wins. */
export function mergeOlderWins(older, newer) {
  const byId = new Map();
  for (const it of older) byId.set(it?.id, it);
  for (const it of newer) if (!byId.has(it?.id)) byId.set(it?.id, it);
  return [...byId.values()];
}
