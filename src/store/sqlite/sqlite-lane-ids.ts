/**
 * Integer ids of lanes and of their function's concurrency slot (`lanes`, `function_slots`), created on
 * first use and cached for the life of the store: a lane's id never changes.
 */
import type { Lane } from "../../domain/lane.js";
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
   * Call it outside a group-commit write: the rows it creates commit at once, so a write that fails
   * later cannot roll back a lane whose id is cached.
   */
  of(lane: Lane): LaneIds {
    const key = `${lane.project}\u0000${lane.functionName}\u0000${lane.revision}`;
    const cached = this.known.get(key);
    if (cached !== undefined) return cached;
    const ids = this.create(lane);
    this.known.set(key, ids);
    return ids;
  }

  /** Creates the lane's rows if missing; a full disk or read-only file throws a `StoreWriteRefusedError`. */
  private create(lane: Lane): LaneIds {
    const create = this.database.db.transaction(() => {
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
      return this.database
        .sql<[string, string, string], { lane_id: number; slot_id: number }>(
          "SELECT id AS lane_id, slot_id FROM lanes WHERE project = ? AND function_name = ? AND revision = ?",
        )
        .get(lane.project, lane.functionName, lane.revision);
    });
    let row: { lane_id: number; slot_id: number } | undefined;
    try {
      row = create();
    } catch (error) {
      throw toStoreError(error);
    }
    if (row === undefined)
      throw new Error(
        `lane ${lane.project}/${lane.functionName}/${lane.revision} was neither created nor found`,
      );
    return { laneId: row.lane_id, slotId: row.slot_id };
  }
}
