// Writing a file so that readers never see half of it: write a temporary file beside it, then rename.
// A crash or an error leaves the old file (or none) and no temporary file behind.
import { closeSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';

/** Calls `fill(write)`; every `write(bytes)` goes to a temporary file that replaces `path` at the end. */
export function writeFileAtomic(path: string, fill: (write: (b: Uint8Array) => void) => void): void {
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const fd = openSync(tmp, 'w');
  let open = true;
  try {
    fill((b) => {
      let o = 0;
      while (o < b.length) o += writeSync(fd, b, o, b.length - o);
    });
    closeSync(fd);
    open = false;
    renameSync(tmp, path);
  } catch (e) {
    if (open) closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
}
