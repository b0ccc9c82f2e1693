/**
 * The client methods that manage the server rather than run functions: projects and their callback
 * keys, tokens, plans. `createClient` spreads them into the `KilnClient` it returns.
 */
import type { ApiToken, Plan, Project } from "./api-types.js";
import type { KilnClient } from "./client.js";
import type { Transport } from "./transport.js";

export type AdminMethods = Pick<
  KilnClient,
  | "listProjects"
  | "createProject"
  | "getProject"
  | "updateProject"
  | "deleteProject"
  | "getCallbackSecret"
  | "rotateCallbackSecret"
  | "createToken"
  | "listTokens"
  | "revokeToken"
  | "listPlans"
  | "createPlan"
  | "getPlan"
  | "updatePlan"
  | "deletePlan"
>;

/** `projectPath()` is the path of the client's project, `projectPath(name)` that of another. */
export function createAdminMethods(
  transport: Transport,
  projectPath: (name?: string) => string,
): AdminMethods {
  const { requestJson } = transport;
  const planPath = (name: string) => `/v1/plans/${encodeURIComponent(name)}`;

  return {
    listProjects: async () => (await requestJson<{ projects: Project[] }>("GET", "/v1/projects")).projects,
    createProject: (name, createOptions = {}) =>
      requestJson("POST", "/v1/projects", { json: { name, description: createOptions.description } }),
    getProject: (name) => requestJson("GET", projectPath(name)),
    updateProject: (name, patch) => requestJson("PATCH", projectPath(name), { json: patch }),
    async deleteProject(name, deleteOptions = {}) {
      const { cancelTasks } = deleteOptions;
      // 204 without a body: nothing to parse.
      await transport.request("DELETE", projectPath(name), {
        query: { cancelTasks: cancelTasks === undefined ? undefined : String(cancelTasks) },
      });
    },
    getCallbackSecret: async (name) =>
      (await requestJson<{ secret: string }>("GET", `${projectPath(name)}/callback-secret`)).secret,
    rotateCallbackSecret: async (name) =>
      (await requestJson<{ secret: string }>("POST", `${projectPath(name)}/callback-secret/rotate`)).secret,
    createToken: (input) => requestJson("POST", "/v1/tokens", { json: input }),
    async listTokens(listOptions = {}) {
      const query = { project: listOptions.project };
      return (await requestJson<{ tokens: ApiToken[] }>("GET", "/v1/tokens", { query })).tokens;
    },
    revokeToken: (id) => requestJson("DELETE", `/v1/tokens/${encodeURIComponent(id)}`),
    listPlans: async () => (await requestJson<{ plans: Plan[] }>("GET", "/v1/plans")).plans,
    createPlan: (name, limits = {}) => requestJson("POST", "/v1/plans", { json: { ...limits, name } }),
    getPlan: (name) => requestJson("GET", planPath(name)),
    updatePlan: (name, limits) => requestJson("PATCH", planPath(name), { json: limits }),
    async deletePlan(name) {
      // 204 without a body: nothing to parse.
      await transport.request("DELETE", planPath(name));
    },
  };
}
