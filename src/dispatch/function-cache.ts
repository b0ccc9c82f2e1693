/**
 * The settings and revision specs of the functions this node dispatches, read from the store once and
 * kept until the function changes (here or, announced, on another node) or a poll clears them all.
 */
import type { FunctionSettings, RevisionSpec } from "../domain/function-settings.js";
import { functionKey, type Lane } from "../domain/lane.js";
import type { Store } from "../store/store.js";

export interface CachedFunction {
  settings: FunctionSettings;
  /** Spec per revision digest (a lane may run an older revision than the current one). */
  specs: Map<string, RevisionSpec>;
}

export class FunctionCache {
  private readonly functions = new Map<string, CachedFunction>();

  constructor(private readonly store: Pick<Store, "getFunction" | "listRevisions">) {}

  /** The cached function, without reading the store; undefined when not cached. */
  peek(project: string, name: string): CachedFunction | undefined {
    return this.functions.get(functionKey(project, name));
  }

  /** The lane's function, read from the store when not cached (or its revision is new); null if gone. */
  async get(lane: Lane): Promise<CachedFunction | null> {
    const key = functionKey(lane.project, lane.functionName);
    let fn = this.functions.get(key);
    if (fn === undefined || !fn.specs.has(lane.revision)) {
      const record = await this.store.getFunction(lane.project, lane.functionName);
      if (record === null) return null;
      const revisions = await this.store.listRevisions(lane.project, lane.functionName);
      fn = {
        settings: record.settings,
        specs: new Map(revisions.map((revision) => [revision.digest, revision.spec])),
      };
      this.functions.set(key, fn);
    }
    return fn;
  }

  forget(project: string, name: string): void {
    this.functions.delete(functionKey(project, name));
  }

  clear(): void {
    this.functions.clear();
  }
}
