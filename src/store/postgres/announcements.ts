/**
 * What nodes tell each other through `NOTIFY`: lanes that have new queued tasks, the start and end of
 * tasks a caller waits on, running tasks to cancel, and deleted projects. Announcements go out after
 * the commit that made them true, a turn's worth in one statement; one that is lost (a node died
 * between the two) is made up for by polling.
 */
import type pg from "pg";
import type { Lane } from "../../domain/lane.js";

export interface Announcement {
  /** The node that sent it: a node ignores its own, having acted on them already. */
  from: string;
  lanes: [project: string, functionName: string, revision: string][];
  started: string[];
  ended: string[];
  cancel: string[];
  /** Functions changed: their settings and revisions are to be read again. */
  functions: [project: string, name: string, sandboxesStale: boolean][];
  /** Projects deleted, with their lanes: the lane ids a node cached for them are gone. */
  projectsDeleted: string[];
}

/** One channel per schema: stores in different schemas of one database do not hear each other. */
export function channelOf(schema: string): string {
  return `kiln.${schema}`;
}

/** NOTIFY payloads must stay under 8,000 bytes. */
const maxPayloadChars = 7000;

export class Announcer {
  private pending: Announcement;
  private scheduled = false;

  constructor(
    private readonly db: { query(config: pg.QueryConfig): Promise<unknown> },
    private readonly channel: string,
    private readonly nodeId: string,
  ) {
    this.pending = this.empty();
  }

  lanes(lanes: Iterable<Lane>): void {
    for (const lane of lanes) this.pending.lanes.push([lane.project, lane.functionName, lane.revision]);
    this.schedule();
  }

  started(taskIds: readonly string[]): void {
    this.pending.started.push(...taskIds);
    this.schedule();
  }

  ended(taskIds: readonly string[]): void {
    this.pending.ended.push(...taskIds);
    this.schedule();
  }

  functionChanged(project: string, name: string, sandboxesStale: boolean): void {
    this.pending.functions.push([project, name, sandboxesStale]);
    this.schedule();
  }

  cancel(taskIds: readonly string[]): void {
    this.pending.cancel.push(...taskIds);
    this.schedule();
  }

  projectDeleted(project: string): void {
    this.pending.projectsDeleted.push(project);
    this.schedule();
  }

  private empty(): Announcement {
    return {
      from: this.nodeId,
      lanes: [],
      started: [],
      ended: [],
      cancel: [],
      functions: [],
      projectsDeleted: [],
    };
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => void this.flush());
  }

  /** Sends what is pending now. Best effort: polling finds what a lost announcement would have said. */
  async flush(): Promise<void> {
    this.scheduled = false;
    const payloads = this.split(this.pending);
    this.pending = this.empty();
    if (payloads.length === 0) return;
    // $1 channel, $2 payloads
    await this.db
      .query({
        text: "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p",
        values: [this.channel, payloads],
      })
      .catch(() => {});
  }

  /** The announcement as payloads that each fit a NOTIFY. */
  private split(announcement: Announcement): string[] {
    const lanes = [...new Map(announcement.lanes.map((lane) => [lane.join("\u0000"), lane])).values()];
    const payloads: string[] = [];
    let part = this.empty();
    let size = 0;
    const add = (item: string[] | string, into: (part: Announcement) => void) => {
      const itemSize = JSON.stringify(item).length + 1;
      if (size + itemSize > maxPayloadChars) {
        payloads.push(JSON.stringify(part));
        part = this.empty();
        size = 0;
      }
      into(part);
      size += itemSize;
    };
    for (const lane of lanes) add(lane, (p) => p.lanes.push(lane));
    for (const id of announcement.started) add(id, (p) => p.started.push(id));
    for (const id of announcement.ended) add(id, (p) => p.ended.push(id));
    for (const id of announcement.cancel) add(id, (p) => p.cancel.push(id));
    for (const fn of announcement.functions) add(fn.map(String), (p) => p.functions.push(fn));
    for (const project of announcement.projectsDeleted) add(project, (p) => p.projectsDeleted.push(project));
    if (size > 0) payloads.push(JSON.stringify(part));
    return payloads;
  }
}

/** The announcement in a NOTIFY payload, or null when it is not one. */
export function parseAnnouncement(payload: string | undefined): Announcement | null {
  try {
    const value = JSON.parse(payload ?? "") as Partial<Announcement>;
    if (typeof value.from !== "string" || !Array.isArray(value.lanes)) return null;
    return {
      from: value.from,
      lanes: value.lanes,
      started: value.started ?? [],
      ended: value.ended ?? [],
      cancel: value.cancel ?? [],
      functions: value.functions ?? [],
      projectsDeleted: value.projectsDeleted ?? [],
    };
  } catch {
    return null;
  }
}
