/**
 * Integer ids of lanes and of their function's concurrency slot (`lanes`, `function_slots`), created on
 * first use and cached for the life of the store: a lane's id never changes.
 */
import type { Lane } from "../../domain/lane.js";
import type { Queryable } from "./statements.js";

export interface LaneIds {
  laneId: number;
  slotId: number;
}

export class PostgresLaneIds {
  private readonly known = new Map<string, LaneIds>();

  /** `db` commits each statement on its own (not a transaction): a cached id names a committed row. */
  constructor(private readonly db: Queryable) {}

  async of(lane: Lane): Promise<LaneIds> {
    const key = `${lane.project}\u0000${lane.functionName}\u0000${lane.revision}`;
    const cached = this.known.get(key);
    if (cached !== undefined) return cached;
    const values = [lane.project, lane.functionName, lane.revision];
    // $1 project, $2 function, $3 revision, in every statement. Three round trips, once per lane and
    // node: whatever is missing is created (by whichever node gets there first), then read.
    await this.db.query({
      text: `INSERT INTO function_slots (project, function_name) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
      values: values.slice(0, 2),
    });
    await this.db.query({
      text: `INSERT INTO lanes (slot_id, project, function_name, revision)
               SELECT id, $1, $2, $3 FROM function_slots WHERE project = $1 AND function_name = $2
               ON CONFLICT DO NOTHING`,
      values,
    });
    const { rows } = await this.db.query<{ lane_id: number; slot_id: number }>({
      text: "SELECT id AS lane_id, slot_id FROM lanes WHERE project = $1 AND function_name = $2 AND revision = $3",
      values,
    });
    const row = rows[0];
    if (row === undefined) throw new Error(`lane ${values.join("/")} was neither created nor found`);
    const ids = { laneId: row.lane_id, slotId: row.slot_id };
    this.known.set(key, ids);
    return ids;
  }
}
