/**
 * Validation failures in the user's words: which field (`tasks[3].payload`, not `/tasks/3/payload`),
 * what was wrong and what is allowed. Fastify's AJV (request bodies, queries, paths) and TypeBox
 * (`kiln.json`) report failures in nearly the same form; both go through `describeSchemaErrors`.
 */

/** One failure as AJV reports it (TypeBox's are turned into this form by `fromTypeBoxErrors`). */
export interface SchemaError {
  keyword: string;
  instancePath: string;
  /** The path of the failing keyword in the schema, e.g. `#/properties/tasks/maxItems`. */
  schemaPath: string;
  params: Record<string, unknown>;
  message?: string;
}

export interface FieldError {
  field: string;
  message: string;
}

export interface DescribeOptions {
  /** What the validated value is called as a whole: `body`, `query`, `path`, `kiln.json`. */
  root: string;
  /** What one key of an object is called in the messages: `field`, `query parameter`, `key`. */
  keyNoun: string;
  /** Said after array limits: ` per call` for request bodies. */
  perWhat?: string;
}

/** `details.errors` lists at most this many: enough to fix a request, bounded for a hostile one. */
export const maxReportedErrors = 20;

type Schema = Record<string, unknown>;

export function describeSchemaErrors(
  errors: readonly SchemaError[],
  schema: unknown,
  data: unknown,
  options: DescribeOptions,
): FieldError[] {
  const chosen = chooseUnionBranches(
    errors.filter((error) => error.keyword !== "anyOf" && error.keyword !== "boolean"),
    schema,
    data,
  );
  const described: FieldError[] = [];
  const seen = new Set<string>();
  for (const error of chosen) {
    for (const fieldError of describeOne(error, schema, data, options)) {
      const key = `${fieldError.field}\0${fieldError.message}`;
      if (seen.has(key)) continue;
      seen.add(key);
      described.push(fieldError);
      if (described.length === maxReportedErrors) return described;
    }
  }
  return described;
}

/** One line for the error's `message`: every failure when there are few, else the first and a count. */
export function summariseFieldErrors(errors: readonly FieldError[], total = errors.length): string {
  if (errors.length === 0) return "the request is invalid";
  if (total <= 3) return errors.map((error) => error.message).join("; ");
  return `${errors[0]!.message}; and ${total - 1} more (see details.errors)`;
}

/** TypeBox's `Value.Errors` in AJV's form: keyword paths, one error per missing or unknown key. */
export function fromTypeBoxErrors(
  errors: readonly { keyword: string; instancePath: string; schemaPath: string; params: object }[],
): SchemaError[] {
  return errors.flatMap((error): SchemaError[] => {
    const params = error.params as Record<string, unknown>;
    const schemaPath = `${error.schemaPath}/${error.keyword}`;
    const base = { keyword: error.keyword, instancePath: error.instancePath, schemaPath };
    if (error.keyword === "required" && Array.isArray(params.requiredProperties)) {
      return (params.requiredProperties as unknown[]).map((missing) => ({
        ...base,
        params: { missingProperty: missing },
      }));
    }
    if (error.keyword === "additionalProperties" && Array.isArray(params.additionalProperties)) {
      return (params.additionalProperties as unknown[]).map((extra) => ({
        ...base,
        params: { additionalProperty: extra },
      }));
    }
    return [{ ...base, params }];
  });
}

/**
 * A value that matches no branch of a union (`anyOf`) fails every branch; reporting all of them
 * ("must have required property 'function'" for a batch) tells the user nothing. The branch is picked
 * by the value's shape (its type, the object keys a branch requires), and only its failures are kept;
 * a union of constants becomes one "must be one of" failure.
 */
function chooseUnionBranches(errors: SchemaError[], schema: unknown, data: unknown): SchemaError[] {
  let remaining = errors;
  const decided = new Set<string>();
  for (;;) {
    const base = outermostUnion(remaining, decided);
    if (base === null) return remaining;
    decided.add(base);
    const inUnion = (error: SchemaError) => error.schemaPath.startsWith(`${base}/`);
    const members = remaining.filter(inUnion);
    const others = remaining.filter((error) => !inUnion(error));
    const branches = (resolvePointer(schema, base) as Schema[] | undefined) ?? [];
    const instancePath = members[0]!.instancePath;
    const value = valueAt(data, instancePath);
    const union = unionError(branches, value, base, instancePath);
    if (union !== null) {
      remaining = [...others, union];
      continue;
    }
    const index = pickBranch(branches, value, members, base);
    remaining = [...others, ...members.filter((error) => error.schemaPath.startsWith(`${base}/${index}/`))];
  }
}

/** The union (its schema path, ending in `/anyOf`) nearest the root whose branch is not decided yet. */
function outermostUnion(errors: readonly SchemaError[], decided: ReadonlySet<string>): string | null {
  let best: string | null = null;
  for (const error of errors) {
    for (const match of error.schemaPath.matchAll(/\/anyOf\/\d+\//g)) {
      const base = error.schemaPath.slice(0, match.index + "/anyOf".length);
      if (decided.has(base)) continue;
      if (best === null || base.length < best.length) best = base;
      break;
    }
  }
  return best;
}

/** A union of constants, or a value no branch takes by type: one failure for the whole union. */
function unionError(
  branches: readonly Schema[],
  value: unknown,
  base: string,
  instancePath: string,
): SchemaError | null {
  if (branches.length > 0 && branches.every((branch) => "const" in branch)) {
    return {
      keyword: "enum",
      instancePath,
      schemaPath: `${base}/enum`,
      params: { allowedValues: branches.map((branch) => branch.const) },
    };
  }
  if (branches.some((branch) => typeMatches(branch, value))) return null;
  return {
    keyword: "type",
    instancePath,
    schemaPath: `${base}/type`,
    params: { type: branches.map((branch) => branch.type).filter((type) => type !== undefined) },
  };
}

function pickBranch(
  branches: readonly Schema[],
  value: unknown,
  members: SchemaError[],
  base: string,
): number {
  let best = -1;
  let bestScore = -Infinity;
  branches.forEach((branch, index) => {
    if (!typeMatches(branch, value)) return;
    const required = Array.isArray(branch.required) ? (branch.required as string[]) : [];
    const present = isObject(value) ? required.filter((key) => key in value).length : 0;
    const failures = members.filter((error) => error.schemaPath.startsWith(`${base}/${index}/`)).length;
    const score = present * 1_000_000 - failures;
    if (score > bestScore) {
      best = index;
      bestScore = score;
    }
  });
  return best;
}

function typeMatches(schema: Schema, value: unknown): boolean {
  const types = Array.isArray(schema.type) ? (schema.type as string[]) : [schema.type];
  if (schema.type === undefined) return true;
  return types.some(
    (type) => type === jsonType(value) || (type === "number" && jsonType(value) === "integer"),
  );
}

function describeOne(
  error: SchemaError,
  schema: unknown,
  data: unknown,
  options: DescribeOptions,
): FieldError[] {
  const path = pointerSegments(error.instancePath);
  const field = fieldName(path, options.root);
  const value = valueAt(data, error.instancePath);
  const parent = (resolvePointer(schema, parentPointer(error.schemaPath)) ?? {}) as Schema;
  const params = error.params;
  const say = (message: string): FieldError[] => [{ field, message }];
  switch (error.keyword) {
    case "required": {
      const missing = String(params.missingProperty);
      const child = fieldName([...path, missing], options.root);
      return [{ field: child, message: `${child} is required` }];
    }
    case "additionalProperties": {
      const extra = String(params.additionalProperty);
      const child = fieldName([...path, extra], options.root);
      if (parent.patternProperties !== undefined) {
        const rule = typeof parent.description === "string" ? ` (${parent.description})` : "";
        return [{ field: child, message: `${field}: ${show(extra)} is not an allowed name${rule}` }];
      }
      const known = Object.keys((parent.properties as Schema | undefined) ?? {});
      const allowed = known.length === 0 ? "none are allowed" : `allowed: ${known.join(", ")}`;
      return [{ field: child, message: `${child}: unknown ${options.keyNoun} (${allowed})` }];
    }
    case "type":
      return say(`${field} must be ${typeWords(params.type)} (got ${kindOf(value)})`);
    case "enum": {
      const allowed = (params.allowedValues as unknown[]).map((item) => String(item)).join(", ");
      return say(`${field} must be one of: ${allowed} (got ${show(value)})`);
    }
    case "const":
      return say(`${field} must be ${show(params.allowedValue)} (got ${show(value)})`);
    case "minimum":
      return say(`${field} must be at least ${String(params.limit)} (got ${show(value)})`);
    case "maximum":
      return say(`${field} must be at most ${String(params.limit)} (got ${show(value)})`);
    case "exclusiveMinimum":
      return say(`${field} must be greater than ${String(params.limit)} (got ${show(value)})`);
    case "exclusiveMaximum":
      return say(`${field} must be less than ${String(params.limit)} (got ${show(value)})`);
    case "minLength":
      return say(
        params.limit === 1
          ? `${field} must not be empty`
          : `${field} must be at least ${String(params.limit)} characters long`,
      );
    case "maxLength":
      return say(
        `${field} must be at most ${String(params.limit)} characters long (got ${typeof value === "string" ? value.length : "more"})`,
      );
    case "pattern":
      return say(
        typeof parent.description === "string"
          ? `${field} must be ${parent.description} (got ${show(value)})`
          : `${field} must match the pattern ${String(params.pattern)} (got ${show(value)})`,
      );
    case "minItems":
      return say(`${field} must hold at least ${String(params.limit)} ${itemNoun(path)}`);
    case "maxItems":
      return say(
        `${field}: at most ${String(params.limit)} ${itemNoun(path)}${options.perWhat ?? ""} (got ${Array.isArray(value) ? value.length : "more"})`,
      );
    default:
      return say(`${field} ${error.message ?? "is invalid"}`);
  }
}

/** `["tasks", "3", "payload"]` → `tasks[3].payload`; the root itself is called by its name. */
function fieldName(path: readonly string[], root: string): string {
  if (path.length === 0) return root;
  let name = "";
  for (const segment of path) {
    if (/^\d+$/.test(segment) && name !== "") name += `[${segment}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(segment)) name += name === "" ? segment : `.${segment}`;
    else name += `[${JSON.stringify(segment)}]`;
  }
  return name;
}

function itemNoun(path: readonly string[]): string {
  const last = path.at(-1) ?? "";
  return /^[a-z]+s$/.test(last) ? last : "items";
}

function typeWords(type: unknown): string {
  const types = [...new Set(Array.isArray(type) ? type : [type])];
  const words = types.map((name) => {
    switch (name) {
      case "integer":
        return "an integer";
      case "object":
        return "an object";
      case "array":
        return "an array";
      case "null":
        return "null";
      default:
        return `a ${String(name)}`;
    }
  });
  return words.length === 0 ? "a valid value" : words.join(" or ");
}

function jsonType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

function kindOf(value: unknown): string {
  const type = jsonType(value);
  if (type === "object" || type === "array") return typeWords(type);
  return show(value);
}

/** A value as the user sent it, short enough for a message. */
function show(value: unknown): string {
  if (value === undefined) return "nothing";
  if (typeof value === "object" && value !== null) return typeWords(jsonType(value));
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}…` : text;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function pointerSegments(pointer: string): string[] {
  if (pointer === "" || pointer === "#") return [];
  return pointer
    .replace(/^#/, "")
    .split("/")
    .slice(1)
    .map((segment) => segment.replaceAll("~1", "/").replaceAll("~0", "~"));
}

function parentPointer(schemaPath: string): string {
  return schemaPath.slice(0, Math.max(0, schemaPath.lastIndexOf("/")));
}

function resolvePointer(root: unknown, pointer: string): unknown {
  let node = root;
  for (const segment of pointerSegments(pointer)) {
    if (typeof node !== "object" || node === null || !Object.hasOwn(node, segment)) return undefined;
    node = (node as Record<string, unknown>)[segment];
  }
  return node;
}

function valueAt(data: unknown, instancePath: string): unknown {
  return resolvePointer(data, instancePath);
}
