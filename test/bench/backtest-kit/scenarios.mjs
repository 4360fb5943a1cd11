// The three scenarios: what backtest-kit persists in each, beyond the candle cache.
import { useCliSetup } from "./cli-setup.mjs";

export const SCENARIOS = {
  // A backtest with the framework's defaults: only candles go through the adapters.
  defaults: { live: false, features: false, configure: () => {} },
  // A backtest with every list and signal-scoped kind persisted, and a strategy that uses them.
  full: {
    live: false,
    features: true,
    configure: (bk) => {
      bk.StorageBacktest.usePersist();
      bk.NotificationBacktest.usePersist();
      bk.Log.usePersist();
      bk.StateBacktest.usePersist();
      bk.MemoryBacktest.usePersist();
      bk.SessionBacktest.usePersist();
      bk.RecentBacktest.usePersist();
      bk.Storage.enable();
      bk.Notification.enable();
      bk.Recent.enable();
      bk.Memory.enable();
      bk.State.enable();
    },
  },
  // A paper (live) session on the fake clock with @backtest-kit/cli's setup.
  paper: { live: true, features: true, configure: useCliSetup },
};
