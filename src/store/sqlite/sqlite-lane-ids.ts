/**
 * Integer ids of lanes and of their function's concurrency slot (`lanes`, `function_slots`), created on
 * first use, only in a project that exists, and cached until the project is deleted (which deletes
 * them): a lane's id never changes while its project lives.
 */
import type { Lane } from "../../domain/lane.js";
import { projectNotFound } from "../project-catalog.js";
import type { SqliteDatabase } from "./sqlite-database.js";
import { toStoreError } from "./sqlite-errors.js";

export interface LaneIds {
  laneId: number;
  slotId: number;
}

export class SqliteLaneIds {
  private readonly known = new Map<string, LaneIds>();

  constructor(private readonly database: SqliteDatabase) {}

  /**
   * Null when the lane's project does not exist. Call it outside a group-commit write: the rows it
   * creates commit at once, so a write that fails later cannot roll back a lane whose id is cached.
   */
  of(lane: Lane): LaneIds | null {
    const key = keyOf(lane);
    const cached = this.known.get(key);
    if (cached !== undefined) return cached;
    const ids = this.create(lane);
    if (ids !== null) this.known.set(key, ids);
    return ids;
  }

  /**
   * Throws `PROJECT_NOT_FOUND` unless every id in `laneIds` (that of `lanes[i]`, looked up before the
   * write) still names a lane of a project that exists: a deletion of the project in an earlier write
   * of the same group took its lanes along. Runs inside the write that uses the ids.
   */
  assertLive(lanes: readonly Lane[], laneIds: readonly number[]): void {
    const live = this.database.sql<[number]>(
      "SELECT 1 FROM lanes l JOIN projects p ON p.name = l.project WHERE l.id = ?",
    );
    const checked = new Set<number>();
    laneIds.forEach((laneId, i) => {
      if (checked.has(laneId)) return;
      checked.add(laneId);
      if (live.get(laneId) === undefined) throw projectNotFound(lanes[i]?.project ?? "");
    });
  }

  /** Forgets the ids of the project's lanes, which its deletion deleted. */
  forgetProject(project: string): void {
    const prefix = `${project}\u0000`;
    for (const key of this.known.keys()) if (key.startsWith(prefix)) this.known.delete(key);
  }

  /** Creates the lane's rows if missing; a full disk or read-only file throws a `StoreWriteRefusedError`. */
  private create(lane: Lane): LaneIds | null {
    const create = this.database.db.transaction(() => {
      if (this.database.sql("SELECT 1 FROM projects WHERE name = ?").get(lane.project) === undefined)
        return null;
      this.database
        .sql("INSERT INTO function_slots (project, function_name) VALUES (?, ?) ON CONFLICT DO NOTHING")
        .run(lane.project, lane.functionName);
      this.database
        .sql(
          `INSERT INTO lanes (slot_id, project, function_name, revision)
             SELECT id, @project, @functionName, @revision FROM function_slots
             WHERE project = @project AND function_name = @functionName
             ON CONFLICT DO NOTHING`,
        )
        .run(lane);
      const row = this.database
        .sql<[string, string, string], { lane_id: number; slot_id: number }>(
          "SELECT id AS lane_id, slot_id FROM lanes WHERE project = ? AND function_name = ? AND revision = ?",
        )
        .get(lane.project, lane.functionName, lane.revision);
      if (row === undefined)
        throw new Error(
          `lane ${lane.project}/${lane.functionName}/${lane.revision} was neither created nor found`,
        );
      return { laneId: row.lane_id, slotId: row.slot_id };
    });
    try {
      return create();
    } catch (error) {
      throw toStoreError(error);
    }
  }
}

function keyOf(lane: Lane): string {
  return `${lane.project}\u0000${lane.functionName}\u0000${lane.revision}`;
}
