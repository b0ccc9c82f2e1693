/**
 * The unit of dispatch: the tasks of one function revision, which share warm sandboxes. (The memory
 * tier follows from the revision's settings, so the three names identify a lane.)
 */
export interface Lane {
  project: string;
  functionName: string;
  revision: string;
}

/** A lane as a map key. */
export function laneKey(lane: Lane): string {
  return `${lane.project}/${lane.functionName}@${lane.revision}`;
}

/** The function a lane belongs to, as a map key (its limits hold across its revisions). */
export function functionKey(project: string, functionName: string): string {
  return `${project}/${functionName}`;
}

/** The lane a task runs in. */
export function laneOf(task: Pick<Lane, "project" | "functionName" | "revision">): Lane {
  return { project: task.project, functionName: task.functionName, revision: task.revision };
}
