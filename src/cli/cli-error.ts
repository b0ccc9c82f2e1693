/** An error the CLI itself finds (bad usage, an unreadable function directory), printed as `code: message`. */
export class CliError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options: { cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "CliError";
    this.code = code;
  }
}

/** A usage error: wrong arguments or flags. */
export function createUsageError(message: string, command?: string): CliError {
  const help = command === undefined ? "kiln --help" : `kiln ${command} --help`;
  return new CliError("USAGE_ERROR", `${message} (see ${help})`);
}
