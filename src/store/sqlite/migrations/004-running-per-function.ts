/** Claims count the running tasks of a function to hold its `maxConcurrency`. */
export const up = `
CREATE INDEX tasks_running ON tasks (project, function_name) WHERE state = 'running';
`;
