import { createUsageError } from "./cli-error.js";

/** Parses a whole-number flag value, or leaves it undefined when the flag was not given. */
export function parseIntegerFlag(
  command: string,
  flag: string,
  raw: string | undefined,
  range: { min: number; max?: number },
): number | undefined {
  if (raw === undefined) return undefined;
  const value = Number(raw);
  const max = range.max ?? Number.MAX_SAFE_INTEGER;
  if (raw.trim() === "" || !Number.isInteger(value) || value < range.min || value > max) {
    const bounds = range.max === undefined ? `at least ${range.min}` : `${range.min}..${range.max}`;
    throw createUsageError(`--${flag} must be a whole number ${bounds}, got '${raw}'`, command);
  }
  return value;
}
