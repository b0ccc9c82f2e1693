/**
 * Callbacks are signed with a key of their project, kept here so every node signs alike (each node
 * had a file of its own). Filled in at a project's first callback; the `default` project of a node
 * that had a key file takes that key, so its receivers keep verifying.
 */
export const up = `
ALTER TABLE projects ADD COLUMN callback_secret TEXT;
`;
