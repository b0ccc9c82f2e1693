import * as initial from "./001-initial.js";
import * as oldestFirstClaims from "./002-oldest-first-claims.js";
import * as callbacks from "./003-callbacks.js";
import * as runningPerFunction from "./004-running-per-function.js";
import * as queueTables from "./005-queue-tables.js";
import * as projectsAndTokens from "./006-projects-and-tokens.js";
import * as projectCallbackSecrets from "./007-project-callback-secrets.js";
import * as plans from "./008-plans.js";

/** Applied in order; the database's `user_version` is the number of migrations applied. */
export const migrations: readonly { up: string }[] = [
  initial,
  oldestFirstClaims,
  callbacks,
  runningPerFunction,
  queueTables,
  projectsAndTokens,
  projectCallbackSecrets,
  plans,
];
