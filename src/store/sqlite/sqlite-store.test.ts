import { runStoreContract } from "../contract/store-contract.js";
import { SqliteStore } from "./sqlite-store.js";

runStoreContract(
  "SqliteStore",
  () => Promise.resolve(new SqliteStore({ path: ":memory:", maxLogChars: 1000 })),
  {
    // An in-memory database has no other way in than the store's own (private) handle.
    storePlanLimitsJson: (store, plan, json) => {
      (store as SqliteStore)["database"].db
        .prepare("UPDATE plans SET limits = ? WHERE name = ?")
        .run(json, plan);
      return Promise.resolve();
    },
  },
);
