/**
 * The tree an archive builds, kept in memory while it is unpacked: every path's kind, each file's size
 * and content hash, each symlink's target. The unpacker asks it whether an entry is safe before anything
 * touches the disk, and the node answers questions about the function (where `kiln.json` is, whether the
 * entry module is a file, the digest) from it instead of following links on disk.
 */
import { createHash } from "node:crypto";
import { KilnError } from "../domain/errors.js";

export type TreeNode =
  | { kind: "directory" }
  | { kind: "file"; executable: boolean; sizeBytes: number; sha256: string }
  | { kind: "symlink"; target: string };

export type FileNode = Extract<TreeNode, { kind: "file" }>;

/** The most symlinks one lookup follows, as Linux's MAXSYMLINKS: more is a loop. */
const maxSymlinkHops = 40;
/** Linux's NAME_MAX and PATH_MAX: longer names cannot be created, so they are refused up front. */
const maxNameBytes = 255;
const maxPathBytes = 4095;

export class FunctionTree {
  /** Keyed by the entry's normalized relative path ("lib/a.js"); the root itself is not in it. */
  private readonly nodes = new Map<string, TreeNode>();

  addDirectory(parts: readonly string[], entryPath: string): void {
    if (parts.length === 0) return;
    this.claimParents(parts, entryPath);
    const existing = this.nodes.get(parts.join("/"));
    if (existing?.kind === "directory") return;
    if (existing !== undefined) throw invalidArchive(`'${entryPath}' appears twice in the archive`);
    this.nodes.set(parts.join("/"), { kind: "directory" });
  }

  /** Records a file; the caller fills in `sha256` once it has read the content. */
  addFile(parts: readonly string[], entryPath: string, executable: boolean, sizeBytes: number): FileNode {
    const node: FileNode = { kind: "file", executable, sizeBytes, sha256: "" };
    this.addLeaf(parts, entryPath, node);
    return node;
  }

  /** Records a symlink; links are checked all together by `checkSymlinks` once the tree is complete. */
  addSymlink(parts: readonly string[], entryPath: string, target: string): void {
    if (target === "" || target.includes("\0")) {
      throw invalidArchive(`symlink '${entryPath}' has an empty or unreadable target`);
    }
    if (target.startsWith("/")) {
      throw invalidArchive(`symlink '${entryPath}' -> '${target}' points outside the function directory`);
    }
    this.addLeaf(parts, entryPath, { kind: "symlink", target });
  }

  /**
   * Refuses the archive unless every symlink, followed through the whole tree the way the kernel does
   * (links inside links, `..` after each link), stays inside it: a chain like `a -> .`, `b -> a/..` is
   * harmless link by link and escapes together.
   */
  checkSymlinks(): void {
    for (const [key, node] of this.nodes) {
      if (node.kind !== "symlink") continue;
      const parts = key.split("/");
      const resolved = this.resolve(parts.slice(0, -1), node.target.split("/"));
      if (resolved === "outside") {
        throw invalidArchive(`symlink '${key}' -> '${node.target}' points outside the function directory`);
      }
      if (resolved === "loop") {
        throw invalidArchive(`symlink '${key}' -> '${node.target}' leads into a loop of symlinks`);
      }
    }
  }

  get fileCount(): number {
    let count = 0;
    for (const node of this.nodes.values()) if (node.kind !== "directory") count += 1;
    return count;
  }

  /** The symlinks as `[relative path, target]`, to be created once `checkSymlinks` passed. */
  symlinks(): [string, string][] {
    const links: [string, string][] = [];
    for (const [key, node] of this.nodes) if (node.kind === "symlink") links.push([key, node.target]);
    return links;
  }

  /**
   * The regular file `relativePath` leads to, following symlinks inside the tree, as its real relative
   * path (no symlink in it) and size; null when it leads to no file or out of the tree.
   */
  findFile(relativePath: string): { path: string; sizeBytes: number } | null {
    const resolved = this.resolve([], relativePath.split("/"));
    if (typeof resolved === "string") return null;
    const key = resolved.join("/");
    const node = this.nodes.get(key);
    return node?.kind === "file" ? { path: key, sizeBytes: node.sizeBytes } : null;
  }

  /**
   * The content address of a function: sha256 over its paths (each directory's names in code-unit order,
   * depth first), executable bits, link targets and file content hashes — the same for the same files
   * however the archive was packed.
   */
  digest(): string {
    const children = new Map<string, string[]>();
    for (const key of this.nodes.keys()) {
      const slash = key.lastIndexOf("/");
      const parent = slash < 0 ? "" : key.slice(0, slash);
      const names = children.get(parent) ?? [];
      names.push(key.slice(slash + 1));
      children.set(parent, names);
    }
    const hash = createHash("sha256");
    const visit = (dir: string): void => {
      const names = (children.get(dir) ?? []).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      for (const name of names) {
        const key = dir === "" ? name : `${dir}/${name}`;
        const node = this.nodes.get(key);
        if (node?.kind === "directory") visit(key);
        else if (node?.kind === "symlink") hash.update(`link\0${key}\0${node.target}\0`);
        else if (node?.kind === "file") {
          hash.update(`file\0${key}\0${node.executable ? "x" : "-"}\0${node.sha256}\0`);
        }
      }
    };
    visit("");
    return hash.digest("hex");
  }

  private addLeaf(parts: readonly string[], entryPath: string, node: TreeNode): void {
    if (parts.length === 0) throw invalidArchive(`'${entryPath}' names the function directory itself`);
    this.claimParents(parts, entryPath);
    if (this.nodes.has(parts.join("/"))) throw invalidArchive(`'${entryPath}' appears twice in the archive`);
    this.nodes.set(parts.join("/"), node);
  }

  /** Makes the entry's parents directories of the tree, refusing a parent that is a file or a symlink. */
  private claimParents(parts: readonly string[], entryPath: string): void {
    for (let length = 1; length < parts.length; length++) {
      const key = parts.slice(0, length).join("/");
      const node = this.nodes.get(key);
      if (node === undefined) this.nodes.set(key, { kind: "directory" });
      else if (node.kind === "symlink") {
        throw invalidArchive(`'${entryPath}' would be written through the symlink '${key}'`);
      } else if (node.kind === "file") {
        throw invalidArchive(`'${entryPath}' is inside '${key}', which is a file`);
      }
    }
  }

  /**
   * Walks `rest` from the directory `start` as a path lookup does: a symlink is replaced by its target
   * (read from the link's own directory), `..` leaves the directory reached so far. A name the tree does
   * not hold is taken as it is (nothing can appear there later: the unpacked code is read-only).
   */
  private resolve(start: readonly string[], rest: readonly string[]): string[] | "outside" | "loop" {
    const resolved = [...start];
    const pending = [...rest].reverse();
    let hops = 0;
    for (let part = pending.pop(); part !== undefined; part = pending.pop()) {
      if (part === "" || part === ".") continue;
      if (part === "..") {
        if (resolved.length === 0) return "outside";
        resolved.pop();
        continue;
      }
      resolved.push(part);
      const node = this.nodes.get(resolved.join("/"));
      if (node?.kind !== "symlink") continue;
      hops += 1;
      if (hops > maxSymlinkHops) return "loop";
      if (node.target.startsWith("/")) return "outside";
      resolved.pop();
      pending.push(...node.target.split("/").reverse());
    }
    return resolved;
  }
}

/**
 * The components of an entry's path inside the function ("./lib//a.js" → ["lib", "a.js"]); refuses a
 * path that is absolute, holds a NUL, climbs out with `..`, or is longer than the file system allows.
 */
export function parseEntryPath(entryPath: string): string[] {
  if (entryPath.includes("\0") || entryPath.startsWith("/")) {
    throw invalidArchive(`'${entryPath.replaceAll("\0", "\\0")}' points outside the function directory`);
  }
  if (Buffer.byteLength(entryPath) > maxPathBytes) {
    throw invalidArchive(`an entry's path is longer than ${maxPathBytes} bytes`);
  }
  const parts: string[] = [];
  for (const part of entryPath.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (parts.pop() === undefined) {
        throw invalidArchive(`'${entryPath}' points outside the function directory`);
      }
      continue;
    }
    if (Buffer.byteLength(part) > maxNameBytes) {
      throw invalidArchive(`'${entryPath}' has a name longer than ${maxNameBytes} bytes`);
    }
    parts.push(part);
  }
  return parts;
}

export function invalidArchive(problem: string): KilnError {
  return new KilnError("INVALID_ARCHIVE", `the function archive is unsafe: ${problem}`);
}
