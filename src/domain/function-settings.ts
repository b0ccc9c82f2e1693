/** Function settings: what a function may use, with the defaults and limits every layer agrees on. */
import { defaultBackoff, type Backoff } from "./backoff.js";

export type Runtime = "node" | "exec";

/** What a revision runs: fixed with its code. */
export interface RevisionSpec {
  runtime: Runtime;
  /** `node`: the module path in the code directory. `exec`: the command and its arguments. */
  entry: string[];
}

/** Settings that change without a new revision. */
export interface FunctionSettings {
  memoryMb: number;
  timeoutS: number;
  /** 0 means unlimited. */
  maxConcurrency: number;
  retries: number;
  backoff: Backoff;
  env: Record<string, string>;
  paused: boolean;
  /** Sandboxes kept started for the current revision even when idle: the answer to cold starts. */
  minWarm: number;
  /** A fresh sandbox for every task (still started ahead of time), for code that must never share one. */
  singleUse: boolean;
}

export const limits = {
  memoryMb: { min: 64, max: 4096 },
  minWarm: { min: 0, max: 64 },
  timeoutS: { min: 1, max: 3600 },
  retries: { min: 0, max: 10 },
  delayS: { min: 0, max: 7 * 24 * 3600 },
  batchSize: 10_000,
} as const;

export const defaultSettings: FunctionSettings = {
  memoryMb: 256,
  timeoutS: 60,
  maxConcurrency: 0,
  retries: 0,
  backoff: defaultBackoff,
  env: {},
  paused: false,
  minWarm: 0,
  singleUse: false,
};
