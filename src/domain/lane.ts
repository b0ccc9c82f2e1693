/**
 * The unit of dispatch: the tasks of one function revision, which share warm sandboxes. (The memory
 * tier follows from the revision's settings, so the three names identify a lane.)
 */
export interface Lane {
  project: string;
  functionName: string;
  revision: string;
}
