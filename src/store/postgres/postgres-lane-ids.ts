/**
 * Integer ids of lanes and of their function's concurrency slot (`lanes`, `function_slots`), created on
 * first use, only in a project that exists, and cached. A lane's id never changes while its project
 * lives; a project's deletion deletes its lanes, and the nodes forget them: the one that deleted at
 * once, the others when they hear of it (`PostgresCluster`), and any node whose enqueue is refused for
 * a lane id that is gone (`PostgresTaskQueue`).
 */
import type { Lane } from "../../domain/lane.js";
import { laneKeyOf, type Queryable } from "./statements.js";

export interface LaneIds {
  laneId: number;
  slotId: number;
}

export class PostgresLaneIds {
  private readonly known = new Map<string, LaneIds>();

  /** `transaction` runs its work in one transaction: a cached id names a committed row. */
  constructor(private readonly transaction: <T>(work: (db: Queryable) => Promise<T>) => Promise<T>) {}

  /** Null when the lane's project does not exist (then nothing is created). */
  async of(lane: Lane): Promise<LaneIds | null> {
    const key = laneKeyOf(lane);
    const cached = this.known.get(key);
    if (cached !== undefined) return cached;
    const values = [lane.project, lane.functionName, lane.revision];
    // $1 project, $2 function, $3 revision, in every statement. Once per lane and node: whatever is
    // missing is created (by whichever node gets there first), then read.
    const ids = await this.transaction(async (db) => {
      // The project's row is held (KEY SHARE, as a foreign key would) until the lane commits: a
      // deletion of the project waits for the lane and deletes it too, or the lane waits for the
      // deletion and finds no project.
      const { rowCount } = await db.query({
        text: "SELECT 1 FROM projects WHERE name = $1 FOR KEY SHARE",
        values: values.slice(0, 1),
      });
      if (rowCount === 0) return null;
      await db.query({
        text: `INSERT INTO function_slots (project, function_name) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
        values: values.slice(0, 2),
      });
      await db.query({
        text: `INSERT INTO lanes (slot_id, project, function_name, revision)
                 SELECT id, $1, $2, $3 FROM function_slots WHERE project = $1 AND function_name = $2
                 ON CONFLICT DO NOTHING`,
        values,
      });
      const { rows } = await db.query<{ lane_id: number; slot_id: number }>({
        text: "SELECT id AS lane_id, slot_id FROM lanes WHERE project = $1 AND function_name = $2 AND revision = $3",
        values,
      });
      const row = rows[0];
      if (row === undefined) throw new Error(`lane ${values.join("/")} was neither created nor found`);
      return { laneId: row.lane_id, slotId: row.slot_id };
    });
    if (ids !== null) this.known.set(key, ids);
    return ids;
  }

  /** Forgets the ids of these lanes, to look them up again on next use. */
  forget(lanes: Iterable<Lane>): void {
    for (const lane of lanes) this.known.delete(laneKeyOf(lane));
  }

  /** Forgets the ids of the project's lanes (of every lane, without a project). */
  forgetProject(project?: string): void {
    if (project === undefined) return this.known.clear();
    // `laneKeyOf` starts with the project and a NUL
    const prefix = `${project}\u0000`;
    for (const key of this.known.keys()) if (key.startsWith(prefix)) this.known.delete(key);
  }
}
