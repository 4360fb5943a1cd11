// The adapter setup of @backtest-kit/cli (its Setup.enable() and the setConfig calls of
// its config/setup.ts), reproduced because the registry here does not serve the CLI.
// The CLI runs a paper session as Live.background after this setup. It registers no
// persist adapters itself (a project's setup.config, such as @backtest-kit/mongo's
// setup(), does), so the benchmark applies the same setup to every backend. (With a
// setup.config the CLI skips its default adapter choices below; the framework's own
// live defaults then differ only in NotificationLive, memory, and Log, memory.)

// The CLI's default notification config (its config/notification.config.mjs).
const NOTIFICATIONS = {
  signal: true,
  risk: true,
  pause: true,
  info: true,
  breakeven: true,
  common_error: true,
  critical_error: true,
  validation_error: true,
  partial_loss: false,
  partial_profit: false,
  order_sync: false,
  order_check: false,
  order_fill: true,
  order_reject: true,
  order_continue: false,
  order_stop: true,
  strategy_commit: true,
};

/** Applies the CLI's configuration and adapter choices to backtest-kit. */
export function useCliSetup(bk) {
  bk.setConfig({
    CC_MAX_NOTIFICATIONS: 5_000,
    CC_MAX_SIGNALS: 750,
    CC_NOTIFICATION_ORDER_CHECK_TTL: 15 * 60 * 1_000,
    CC_ENABLE_DCA_EVERYWHERE: true,
    CC_ENABLE_PPPL_EVERYWHERE: true,
    CC_ENABLE_TRAILING_EVERYWHERE: true,
    CC_MAX_SIGNAL_GENERATION_SECONDS: 15 * 60,
    CC_MAX_BACKTEST_MARKDOWN_ROWS: 1_000,
    CC_MAX_BREAKEVEN_MARKDOWN_ROWS: 1_000,
    CC_MAX_HEATMAP_MARKDOWN_ROWS: 1_000,
    CC_MAX_HIGHEST_PROFIT_MARKDOWN_ROWS: 1_000,
    CC_MAX_LIVE_MARKDOWN_ROWS: 1_000,
    CC_MAX_PARTIAL_MARKDOWN_ROWS: 1_000,
    CC_MAX_RISK_MARKDOWN_ROWS: 1_000,
    CC_MAX_SCHEDULE_MARKDOWN_ROWS: 1_000,
    CC_MAX_STRATEGY_MARKDOWN_ROWS: 1_000,
    CC_MAX_SYNC_MARKDOWN_ROWS: 1_000,
    CC_MAX_PERFORMANCE_MARKDOWN_ROWS: 1_000,
    CC_MAX_SIGNAL_LIFETIME_MINUTES: Infinity,
    CC_WALKER_MARKDOWN_TOP_N: 10,
  });
  bk.Notification.enable(NOTIFICATIONS);
  bk.Cron.enable();
  bk.Recent.enable();
  bk.Storage.enable();
  bk.Markdown.enable();
  bk.Report.enable();
  bk.Dump.enable();
  bk.State.enable();
  bk.Memory.enable();
  // The CLI's default adapters (skipped by the CLI only when a setup.config exists).
  bk.Dump.useMarkdown();
  bk.SessionLive.usePersist();
  bk.SessionBacktest.useLocal();
  bk.StorageLive.usePersist();
  bk.StorageBacktest.useMemory();
  bk.NotificationLive.usePersist();
  bk.NotificationBacktest.useMemory();
  bk.RecentLive.usePersist();
  bk.RecentBacktest.useMemory();
  bk.MemoryLive.usePersist();
  bk.MemoryBacktest.useLocal();
  bk.StateLive.usePersist();
  bk.StateBacktest.useLocal();
  bk.Markdown.useDummy();
  bk.Log.useJsonl();
}
