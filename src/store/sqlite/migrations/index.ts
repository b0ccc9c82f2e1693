import * as initial from "./001-initial.js";
import * as oldestFirstClaims from "./002-oldest-first-claims.js";
import * as callbacks from "./003-callbacks.js";

/** Applied in order; the database's `user_version` is the number of migrations applied. */
export const migrations: readonly { up: string }[] = [initial, oldestFirstClaims, callbacks];
