// Starts backtest-kit with its live notifications persisted through the gateway, as
// a restarted bot does, and prints what it restored: the ids and createdAt of its
// notification list, in backtest-kit's order, as JSON on stdout.
//
//   node restore.mjs      (BACKTEST_PERSISTENCE_URL/_NAMESPACE/_NAME/_TOKEN)
const bk = await import("backtest-kit");
const client = await import("@backtest-persistence/backtest-kit");

client.usePersistence({ timeoutMs: 20000 });
bk.NotificationLive.usePersist();
const list = await bk.NotificationLive.getData();
process.stdout.write(JSON.stringify(list.map((n) => ({ id: n.id, createdAt: n.createdAt }))) + "\n");
process.exit(0);
