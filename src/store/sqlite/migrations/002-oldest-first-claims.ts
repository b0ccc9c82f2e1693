/** Oldest-first claims (the share of a lane's starts that ignores priority, so no class starves). */
export const up = `
CREATE INDEX tasks_ready_oldest ON tasks (project, function_name, revision, seq) WHERE state = 'queued';
`;
