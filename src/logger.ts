/**
 * The node's logger: pino, JSON lines on stderr (stdout is the `kiln serve` announcement), at
 * `KILN_LOG_LEVEL` (`info` by default). Requests are not logged one by one; failures are.
 */
import { pino, type DestinationStream, type Logger } from "pino";

export type { Logger } from "pino";

export const logLevels = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof logLevels)[number];

export function createLogger(level: LogLevel, destination: DestinationStream = pino.destination(2)): Logger {
  return pino({ level, base: { pid: process.pid } }, destination);
}
