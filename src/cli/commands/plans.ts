/** `kiln plans`: listing, creating, showing, changing and deleting plans, the limits projects are put on. */
import type { Plan, PlanLimits, PlanWithProjects } from "../../client/index.js";
import { createUsageError } from "../cli-error.js";
import { parseCommandArgs, type Command } from "../command.js";
import { connectClient } from "../connection.js";
import { describePlanLimit, formatPlanLimitCells } from "../format-plan.js";
import { formatAge, formatTable, writeJson, writeLine } from "../output.js";
import { runSubcommand } from "../subcommand.js";

const limitFlags = {
  "max-memory-mb": { type: "string" },
  "max-timeout-s": { type: "string" },
  "max-payload-bytes": { type: "string" },
} as const;

type LimitFlag = keyof typeof limitFlags;

/** The bounds the server puts on each limit. */
const limitRanges: Record<LimitFlag, { min: number; max: number }> = {
  "max-memory-mb": { min: 64, max: 4096 },
  "max-timeout-s": { min: 1, max: 3600 },
  "max-payload-bytes": { min: 1, max: 1024 ** 3 },
};

/** The word `kiln projects update --plan` takes for "no plan", so no plan may be named it here. */
const noPlan = "none";

export const plansCommand: Command = {
  name: "plans",
  summary: "list, create, show, update and delete plans: limits for projects (admin token)",
  usage: `Usage: kiln plans [list]
       kiln plans create <name> [--max-memory-mb N] [--max-timeout-s N] [--max-payload-bytes N]
       kiln plans show <name>
       kiln plans update <name> [--max-memory-mb N|none] [--max-timeout-s N|none] [--max-payload-bytes N|none]
       kiln plans delete <name>

A plan is a named set of limits; a project put on it (kiln projects update <project> --plan <name>)
is held to them: a deploy or settings change over them, or a task whose timeout or payload is over
them, is refused. A change reaches every node within a second. Every subcommand needs an admin token.
The limits are memory, timeout and payload size; a limit left out is not set.

  list             the plans with their limits (- for none), by name (what no subcommand does)
  create <name>    a new plan
  show <name>      the plan, with the projects on it
  update <name>    change the limits given (none removes one); refused if a function of a project
                   on the plan would be over them
  delete <name>    delete a plan no project is on

  --max-memory-mb N       the most memory a function may ask for, MiB, ${range("max-memory-mb")}
  --max-timeout-s N       the longest timeout of a function or a task, seconds, ${range("max-timeout-s")}
  --max-payload-bytes N   the largest task payload, bytes of JSON, ${range("max-payload-bytes")}`,

  run: (args) =>
    runSubcommand(
      "plans",
      args,
      { list: listPlans, create: createPlan, show: showPlan, update: updatePlan, delete: deletePlan },
      { flags: limitFlags, defaultName: "list" },
    ),
};

async function listPlans(args: string[]): Promise<number> {
  const { values } = parseCommandArgs("plans", args, {}, { required: [] });
  const plans = await (await connectClient(values)).listPlans();
  if (values.json) {
    writeJson({ plans });
    return 0;
  }
  if (plans.length === 0) {
    writeLine("No plans. Create one with `kiln plans create <name> --max-memory-mb N`.");
    return 0;
  }
  const rows = plans.map((plan) => [plan.name, ...formatPlanLimitCells(plan)]);
  writeLine(formatTable(["NAME", "MEMORY", "TIMEOUT", "PAYLOAD"], rows));
  return 0;
}

async function createPlan(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs("plans", args, limitFlags, { required: ["name"] });
  const name = positionals[0] as string;
  if (name === noPlan) {
    throw createUsageError(
      `'${noPlan}' means no plan to \`kiln projects update --plan\`: choose another name`,
      "plans",
    );
  }
  const limits = parseLimitFlags(values, false);
  const plan = await (await connectClient(values)).createPlan(name, limits);
  if (values.json) {
    writeJson(plan);
    return 0;
  }
  writeLine(`Created plan ${plan.name}.`);
  writeLine(formatPlanDetails(plan));
  writeLine(`Put a project on it with \`kiln projects update <project> --plan ${plan.name}\`.`);
  return 0;
}

async function showPlan(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs("plans", args, {}, { required: ["name"] });
  const plan = await (await connectClient(values)).getPlan(positionals[0] as string);
  if (values.json) writeJson(plan);
  else writeLine(formatPlanDetails(plan));
  return 0;
}

async function updatePlan(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs("plans", args, limitFlags, { required: ["name"] });
  const limits = parseLimitFlags(values, true);
  if (Object.values(limits).every((limit) => limit === undefined)) {
    const flags = Object.keys(limitFlags)
      .map((flag) => `--${flag}`)
      .join(", ");
    throw createUsageError(`update needs at least one of ${flags}`, "plans");
  }
  const plan = await (await connectClient(values)).updatePlan(positionals[0] as string, limits);
  if (values.json) {
    writeJson(plan);
    return 0;
  }
  writeLine(formatPlanDetails(plan));
  writeLine("Every node holds the plan's projects to these limits within a second.");
  return 0;
}

async function deletePlan(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs("plans", args, {}, { required: ["name"] });
  const name = positionals[0] as string;
  await (await connectClient(values)).deletePlan(name);
  if (values.json) writeJson({ plan: name, deleted: true });
  else writeLine(`Deleted plan ${name}.`);
  return 0;
}

/** The limits the flags give: left out stays undefined; with `noneAllowed`, `none` is null (no limit). */
function parseLimitFlags(
  values: Partial<Record<LimitFlag, string>>,
  noneAllowed: boolean,
): { [Key in keyof PlanLimits]?: number | null } {
  const parse = (flag: LimitFlag): number | null | undefined => {
    const raw = values[flag];
    if (raw === undefined) return undefined;
    if (noneAllowed && raw === "none") return null;
    const value = Number(raw);
    const { min, max } = limitRanges[flag];
    if (raw.trim() === "" || !Number.isInteger(value) || value < min || value > max) {
      const none = noneAllowed ? " or none" : "";
      throw createUsageError(`--${flag} must be a whole number ${range(flag)}${none}, got '${raw}'`, "plans");
    }
    return value;
  };
  return {
    maxMemoryMb: parse("max-memory-mb"),
    maxTimeoutS: parse("max-timeout-s"),
    maxPayloadBytes: parse("max-payload-bytes"),
  };
}

function range(flag: LimitFlag): string {
  return `${limitRanges[flag].min}..${limitRanges[flag].max}`;
}

function formatPlanDetails(plan: Plan | PlanWithProjects): string {
  const time = (timestamp: string) => `${timestamp} (${formatAge(timestamp)})`;
  const [memory, timeout, payload] = formatPlanLimitCells(plan).map(describePlanLimit);
  const lines = [
    `Plan      ${plan.name}`,
    `Memory    ${memory}`,
    `Timeout   ${timeout}`,
    `Payload   ${payload}`,
  ];
  if ("projects" in plan) {
    lines.push(`Projects  ${plan.projects.length === 0 ? "none" : plan.projects.join(", ")}`);
  }
  lines.push(`Created   ${time(plan.createdAt)}`, `Updated   ${time(plan.updatedAt)}`);
  return lines.join("\n");
}
