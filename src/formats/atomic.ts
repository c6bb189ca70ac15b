// Writing a file so that readers never see half of it: write a temporary file beside it, then rename.
// A crash or an error leaves the old file (or none) and no temporary file behind.
//
// Only regular files are written. A device node, FIFO, socket or directory at the path is refused (renaming
// over /dev/full would replace the device with a file). A symlink is written THROUGH: its final target is
// replaced atomically (the temporary file sits in the target's folder, so the rename stays on one file
// system) and the link itself is kept, as `cp` or an editor would treat it. An existing regular file is
// replaced, keeping its permission bits: callers that must not overwrite results check before writing.
// Errors name the path the caller gave, never the temporary file.
import { chmodSync, closeSync, lstatSync, openSync, readlinkSync, realpathSync, renameSync, rmSync, statSync, writeSync, type Stats } from 'node:fs';
import { dirname, resolve } from 'node:path';

/** What a non-regular file is, in words; undefined for a regular file. */
function kindOf(s: Stats): string | undefined {
  if (s.isFile()) return undefined;
  if (s.isDirectory()) return 'a directory';
  if (s.isCharacterDevice()) return 'a character device';
  if (s.isBlockDevice()) return 'a block device';
  if (s.isFIFO()) return 'a FIFO (named pipe)';
  if (s.isSocket()) return 'a socket';
  return 'not a regular file';
}

function code(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException)?.code;
}

/** Node's fs message without the ", open '<path>'" tail (that path may be the temporary file). */
function reason(e: unknown): string {
  return (e as Error).message.replace(/, \w+ '.*'$/s, '').replace(/, \w+$/, '');
}

/**
 * The file that writing `path` should replace: `path` itself, or the final target of a symlink (also of a
 * dangling one, whose target is created). Throws, naming `path`, when that is not a regular file.
 */
export function writeTarget(path: string): { target: string; mode?: number } {
  let target = resolve(path);
  for (let hops = 0; ; hops++) {
    let st: Stats;
    try {
      st = lstatSync(target);
    } catch (e) {
      if (code(e) !== 'ENOENT') throw new Error(`${path}: ${reason(e)}`);
      try {
        if (!statSync(dirname(target)).isDirectory()) throw new Error('not a directory');
      } catch {
        throw new Error(`${path}: cannot be written, the folder ${dirname(target)} does not exist`);
      }
      return { target };
    }
    if (st.isSymbolicLink()) {
      if (hops >= 40) throw new Error(`${path}: too many levels of symbolic links`);
      try {
        target = realpathSync(target); // an existing target, every link on the way resolved
        continue;
      } catch {
        target = resolve(dirname(target), readlinkSync(target)); // dangling: follow one hop by hand
        continue;
      }
    }
    const kind = kindOf(st);
    if (kind) throw new Error(`${path}: is ${kind}${target !== resolve(path) ? ` (${target}, through a symlink)` : ''}; alignlab writes regular files only`);
    return { target, mode: st.mode & 0o7777 };
  }
}

/** Calls `fill(write)`; every `write(bytes)` goes to a temporary file that replaces `path` at the end. */
export function writeFileAtomic(path: string, fill: (write: (b: Uint8Array) => void) => void): void {
  const { target, mode } = writeTarget(path);
  const tmp = `${target}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  let fd: number;
  try {
    fd = openSync(tmp, 'wx');
  } catch (e) {
    throw new Error(`${path}: cannot be written (${reason(e)})`);
  }
  let open = true;
  try {
    fill((b) => {
      let o = 0;
      try {
        while (o < b.length) o += writeSync(fd, b, o, b.length - o);
      } catch (e) {
        throw new Error(`${path}: ${reason(e)}`);
      }
    });
    closeSync(fd);
    open = false;
    try {
      if (mode !== undefined) chmodSync(tmp, mode);
      renameSync(tmp, target);
    } catch (e) {
      throw new Error(`${path}: ${reason(e)}`);
    }
  } catch (e) {
    if (open) closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
}
