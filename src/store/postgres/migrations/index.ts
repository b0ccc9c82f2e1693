import * as initial from "./001-initial.js";
import * as nodesAndLeases from "./002-nodes-and-leases.js";
import * as queueTables from "./003-queue-tables.js";
import * as runningByKeyAndUncounted from "./004-running-by-key-and-uncounted.js";
import * as projectsAndTokens from "./005-projects-and-tokens.js";
import * as projectCallbackSecrets from "./006-project-callback-secrets.js";
import * as plans from "./007-plans.js";

/**
 * Applied in order; migration N (1-based) is recorded as version N in the schema's `kiln_migrations`
 * table. Append only: a migration that has shipped is never edited.
 */
export const migrations: readonly { name: string; up: string }[] = [
  { name: "001-initial", ...initial },
  { name: "002-nodes-and-leases", ...nodesAndLeases },
  { name: "003-queue-tables", ...queueTables },
  { name: "004-running-by-key-and-uncounted", ...runningByKeyAndUncounted },
  { name: "005-projects-and-tokens", ...projectsAndTokens },
  { name: "006-project-callback-secrets", ...projectCallbackSecrets },
  { name: "007-plans", ...plans },
];
