/**
 * A stand-in for the backtest-kit 20.x module, for the client's registration tests
 * (the tests run with backtest-kit 19.5.0 installed, which has no Dictionary).
 *
 * It exports the 17 Persist<Kind>Adapter utils with usePersist<Kind>Adapter(Ctor),
 * and for Dictionary the 20.x calling convention as backtest-kit 20.x documents
 * PersistDictionaryUtils (waitForInit(signalId, dictionaryName, initial),
 * readDictionaryData(signalId, dictionaryName), writeDictionaryData(data, signalId,
 * dictionaryName, when), dispose(signalId, dictionaryName), clear()) and as
 * @backtest-kit/mongo 20.1.0's PersistDictionaryInstance is called, built like
 * 19.5.0's PersistStateUtils: one memoized instance per `${signalId}:${dictionaryName}`
 * built as new Ctor(signalId, dictionaryName); instance.waitForInit(isInitial) before
 * every call; readDictionaryData() → the snapshot or null; writeDictionaryData(data,
 * when: Date) with the whole snapshot {id, data: {key: {value, when}}, when};
 * dispose(ctx) evicts the memoized instance and calls nothing on it.
 */
const NAMES = [
  "Signal", "Schedule", "Strategy", "Risk", "Partial", "Breakeven", "Candle", "Storage", "Notification",
  "Log", "Measure", "Interval", "Memory", "Recent", "State", "Session", "Dictionary",
];

/** Ctor registered per adapter name, for assertions. */
export const registeredCtors = new Map();

function plainUtils(Name) {
  return {
    [`usePersist${Name}Adapter`](Ctor) {
      registeredCtors.set(Name, Ctor);
    },
    useJson() {
      registeredCtors.delete(Name);
    },
  };
}

class PersistDictionaryUtils {
  constructor() {
    this.Ctor = null;
    this.memo = new Map();
    /** Every waitForInit(initial) an instance saw, for assertions. */
    this.initCalls = [];
  }
  usePersistDictionaryAdapter(Ctor) {
    registeredCtors.set("Dictionary", Ctor);
    this.Ctor = Ctor;
    this.memo.clear();
  }
  useJson() {
    registeredCtors.delete("Dictionary");
    this.Ctor = null;
    this.memo.clear();
  }
  async instance(signalId, dictionaryName) {
    if (!this.Ctor) throw new Error("stand-in: no Dictionary adapter registered");
    const key = `${signalId}:${dictionaryName}`;
    const isInitial = !this.memo.has(key);
    if (isInitial) this.memo.set(key, Reflect.construct(this.Ctor, [signalId, dictionaryName]));
    const inst = this.memo.get(key);
    this.initCalls.push(isInitial);
    await inst.waitForInit(isInitial);
    return inst;
  }
  async waitForInit(signalId, dictionaryName, initial) {
    const isInitial = initial && !this.memo.has(`${signalId}:${dictionaryName}`);
    if (isInitial) await this.instance(signalId, dictionaryName);
  }
  async readDictionaryData(signalId, dictionaryName) {
    return (await this.instance(signalId, dictionaryName)).readDictionaryData();
  }
  async writeDictionaryData(data, signalId, dictionaryName, when) {
    return (await this.instance(signalId, dictionaryName)).writeDictionaryData(data, when);
  }
  dispose(signalId, dictionaryName) {
    this.memo.delete(`${signalId}:${dictionaryName}`);
  }
  clear() {
    this.memo.clear();
  }
}

export const PersistDictionaryAdapter = new PersistDictionaryUtils();

const kit = { PersistDictionaryAdapter };
for (const Name of NAMES) if (Name !== "Dictionary") kit[`Persist${Name}Adapter`] = plainUtils(Name);

/**
 * What a user mutation of a 20.x dictionary does: rewrite the whole snapshot with
 * one key set to {value, when}.
 */
export async function setDictionaryValue(signalId, dictionaryName, key, value, when) {
  const cur = (await PersistDictionaryAdapter.readDictionaryData(signalId, dictionaryName)) ?? {
    id: `${signalId}_${dictionaryName}`,
    data: {},
    when: when.getTime(),
  };
  const next = { id: cur.id, data: { ...cur.data, [key]: { value, when: when.getTime() } }, when: when.getTime() };
  await PersistDictionaryAdapter.writeDictionaryData(next, signalId, dictionaryName, when);
  return next;
}

export const getConfig = () => ({ CC_SIGNAL_LEVERAGE_MULTIPLIER: 1, CC_SIGNAL_ISOLATED_MARGIN: true });

/** The module as `import * as bk from "backtest-kit"` would give it. */
export const standinKit = { ...kit, getConfig };
