/** `kiln projects`: listing, creating, showing, changing and deleting projects. */
import type { Project, ProjectWithUsage } from "../../client/index.js";
import { createUsageError } from "../cli-error.js";
import { parseCommandArgs, type Command } from "../command.js";
import { connectClient } from "../connection.js";
import { describePlanLimits } from "../format-plan.js";
import { formatAge, formatTable, writeJson, writeLine } from "../output.js";
import { runSubcommand } from "../subcommand.js";

const descriptionFlag = { description: { type: "string" } } as const;
const updateFlags = { ...descriptionFlag, plan: { type: "string" } } as const;
const deleteFlags = { "cancel-tasks": { type: "boolean" } } as const;

export const projectsCommand: Command = {
  name: "projects",
  summary: "list, create, show, update and delete projects",
  usage: `Usage: kiln projects [list]
       kiln projects create <name> [--description TEXT]
       kiln projects show [<name>]
       kiln projects update <name> [--description TEXT] [--plan P|none]
       kiln projects delete <name> [--cancel-tasks]

A project holds functions, tasks and tokens. Creating, updating and deleting projects needs an admin
token; a project's own token may list and show that project only.

  list             the projects, by name (what no subcommand does)
  create <name>    a new, empty project
  show [<name>]    the project, with its plan's limits and how many functions and unfinished tasks
                   it holds (default: the project --project or KILN_PROJECT names)
  update <name>    change the project's description, or the plan it is on
  delete <name>    delete the project with its functions, revisions, tasks and tokens; refused while it
                   has queued, delayed or running tasks, unless --cancel-tasks

  --description TEXT   what the project is for, at most 500 characters ("" clears it)
  --plan P|none        put the project on plan P (see kiln plans), whose limits every node then holds
                       it to within a second; refused while a function of the project is over them.
                       none takes it off its plan
  --cancel-tasks       cancel the project's queued, delayed and running tasks first (the server waits
                       up to 10 s for running ones to stop)`,

  run: (args) =>
    runSubcommand(
      "projects",
      args,
      {
        list: listProjects,
        create: createProject,
        show: showProject,
        update: updateProject,
        delete: deleteProject,
      },
      { flags: { ...updateFlags, ...deleteFlags }, defaultName: "list" },
    ),
};

async function listProjects(args: string[]): Promise<number> {
  const { values } = parseCommandArgs("projects", args, {}, { required: [] });
  const projects = await (await connectClient(values)).listProjects();
  if (values.json) {
    writeJson({ projects });
    return 0;
  }
  if (projects.length === 0) {
    writeLine("No projects.");
    return 0;
  }
  const rows = projects.map((project) => [project.name, project.description, formatAge(project.createdAt)]);
  writeLine(formatTable(["NAME", "DESCRIPTION", "CREATED"], rows));
  return 0;
}

async function createProject(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs("projects", args, descriptionFlag, {
    required: ["name"],
  });
  const client = await connectClient(values);
  const project = await client.createProject(positionals[0] as string, { description: values.description });
  if (values.json) writeJson(project);
  else writeLine(`Created project ${project.name}. Work in it with --project ${project.name}.`);
  return 0;
}

async function showProject(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(
    "projects",
    args,
    {},
    { required: [], optional: ["name"] },
  );
  const project = await (await connectClient(values)).getProject(positionals[0]);
  if (values.json) writeJson(project);
  else writeLine(formatProjectDetails(project));
  return 0;
}

async function updateProject(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs("projects", args, updateFlags, { required: ["name"] });
  const { description, plan } = values;
  if (description === undefined && plan === undefined) {
    throw createUsageError("update needs --description TEXT or --plan P|none", "projects");
  }
  const client = await connectClient(values);
  const project = await client.updateProject(positionals[0] as string, {
    description,
    plan: plan === "none" ? null : plan,
  });
  if (values.json) writeJson(project);
  else writeLine(formatProjectDetails(project));
  return 0;
}

async function deleteProject(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs("projects", args, deleteFlags, { required: ["name"] });
  const name = positionals[0] as string;
  await (await connectClient(values)).deleteProject(name, { cancelTasks: values["cancel-tasks"] });
  if (values.json) writeJson({ project: name, deleted: true });
  else writeLine(`Deleted project ${name} with its functions, revisions, tasks and tokens.`);
  return 0;
}

function formatProjectDetails(project: Project | ProjectWithUsage): string {
  const time = (timestamp: string) => `${timestamp} (${formatAge(timestamp)})`;
  const lines = [
    `Project      ${project.name}`,
    `Description  ${project.description || "-"}`,
    `Plan         ${formatPlan(project)}`,
    `Created      ${time(project.createdAt)}`,
    `Updated      ${time(project.updatedAt)}`,
  ];
  if ("usage" in project) {
    lines.push(
      `Functions    ${project.usage.functions}`,
      `Unfinished   ${project.usage.unfinishedTasks} tasks (queued, delayed or running)`,
    );
  }
  return lines.join("\n");
}

/** The plan's name, with its limits when the answer holds them. */
function formatPlan(project: Project | ProjectWithUsage): string {
  if (!("limits" in project)) return project.plan ?? "none";
  if (project.limits === null) return "none (no limits)";
  return `${project.limits.name} (${describePlanLimits(project.limits)})`;
}
