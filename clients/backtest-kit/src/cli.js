#!/usr/bin/env node
/**
 * The package's command line:
 *
 *   npx @backtest-persistence/backtest-kit import --dump ./dump [--dry-run] [--verify] [--no-candles]
 *   npx @backtest-persistence/backtest-kit verify
 *
 * The gateway and tenant come from --url/--namespace/--name/--token-file/--ca-file
 * or the BACKTEST_PERSISTENCE_* variables usePersistence() reads.
 * Exit status: 0 done, 1 something was not imported or does not match, 2 usage.
 */
import path from "node:path";
import { parseArgs } from "node:util";
import { GatewayClient } from "./client.js";
import { optionsFromEnv } from "./index.js";
import { importDump, formatImportReport } from "./import.js";
import { verifyTenant, formatVerifyReport } from "./verify.js";

const USAGE = `usage: backtest-kit import --dump DIR [--dry-run] [--verify] [--no-candles] [--json] [gateway options]
       backtest-kit verify [--json] [gateway options]
gateway options (default: BACKTEST_PERSISTENCE_URL, _NAMESPACE, _NAME, _TOKEN, _TOKEN_FILE, _CA_FILE):
  --url URL --namespace NS --name NAME --token-file FILE --ca-file FILE --concurrency N`;

async function main(argv) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        dump: { type: "string" },
        "dry-run": { type: "boolean", default: false },
        verify: { type: "boolean", default: false },
        "no-candles": { type: "boolean", default: false },
        json: { type: "boolean", default: false },
        url: { type: "string" },
        namespace: { type: "string" },
        name: { type: "string" },
        "token-file": { type: "string" },
        "ca-file": { type: "string" },
        concurrency: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (e) {
    console.error(`${e.message}\n${USAGE}`);
    return 2;
  }
  const { values: a, positionals } = parsed;
  const command = positionals[0];
  if (a.help || !command || positionals.length > 1 || !["import", "verify"].includes(command)) {
    console.error(USAGE);
    return a.help ? 0 : 2;
  }
  const opts = { ...optionsFromEnv() };
  if (a.url) opts.url = a.url;
  if (a.namespace) opts.namespace = a.namespace;
  if (a.name) opts.name = a.name;
  if (a["token-file"]) opts.tokenFile = a["token-file"];
  if (a["ca-file"]) opts.caFile = a["ca-file"];
  // The import reads the dump from a scratch working directory: files are named absolutely.
  if (opts.tokenFile) opts.tokenFile = path.resolve(opts.tokenFile);
  if (opts.caFile) opts.caFile = path.resolve(opts.caFile);
  const concurrency = a.concurrency ? Number(a.concurrency) : 4;
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) {
    console.error(`--concurrency must be an integer from 1 to 64, got ${a.concurrency}`);
    return 2;
  }
  let client;
  try {
    client = new GatewayClient(opts);
  } catch (e) {
    console.error(`${e.message}\n${USAGE}`);
    return 2;
  }
  try {
    if (command === "import") {
      if (!a.dump) {
        console.error(`import needs --dump DIR\n${USAGE}`);
        return 2;
      }
      // The progress bar only on a terminal, and never inside --json output.
      const progressBar = Boolean(process.stdout.isTTY) && !a.json;
      const report = await importDump({ client, dump: a.dump, dryRun: a["dry-run"], verify: a.verify, candles: !a["no-candles"], concurrency, progressBar });
      console.log(a.json ? JSON.stringify(report, null, 1) : formatImportReport(report));
      return report.ok ? 0 : 1;
    }
    const report = await verifyTenant({ client, concurrency });
    console.log(a.json ? JSON.stringify(report, null, 1) : formatVerifyReport(report));
    return report.ok ? 0 : 1;
  } catch (e) {
    console.error(String(e?.message ?? e));
    return 1;
  } finally {
    client.close();
  }
}

process.exitCode = await main(process.argv.slice(2));
