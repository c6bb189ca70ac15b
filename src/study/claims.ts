// Work sharing between the study's processes (one per core): every process walks the same list of tasks
// (preference pairs and reward model per draw, then the runs) and does a task only if it wins its claim, a file
// created with O_EXCL in <out>/.claims. A task's result is a file; a process that needs a result another process
// is producing waits for that file. A claim whose owner died (Ctrl-C, crash) is taken over, so no task is lost.
//
// Why files and not messages: the results already are files (a study resumes from them), so a claim is the only
// extra state, and any process — including a later `alignlab study` resuming the directory — can read it.

import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export class Claims {
  private readonly mine = new Set<string>();
  private readonly cleanup = () => {
    for (const f of this.mine) rmSync(f, { force: true });
  };

  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
    // Claims are deleted when their task ends; these catch an exit in between (a signal exits at once).
    process.on('exit', this.cleanup);
  }

  /** Forget every claim (the first process of a study does this: a claim left by a killed study means nothing). */
  reset(): void {
    rmSync(this.dir, { recursive: true, force: true });
    mkdirSync(this.dir, { recursive: true });
  }

  private file(task: string): string {
    return join(this.dir, `${task}.claim`);
  }

  /** True if this process now owns `task` (it was unclaimed, or its owner is gone). */
  tryClaim(task: string): boolean {
    const f = this.file(task);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        writeFileSync(f, String(process.pid), { flag: 'wx' });
        this.mine.add(f);
        return true;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        if (this.ownerAlive(f)) return false;
        rmSync(f, { force: true }); // the owner died: take the task over
      }
    }
    return false;
  }

  /** Whether another live process holds `task`. */
  heldByOther(task: string): boolean {
    const f = this.file(task);
    return existsSync(f) && !this.mine.has(f) && this.ownerAlive(f);
  }

  release(task: string): void {
    const f = this.file(task);
    rmSync(f, { force: true });
    this.mine.delete(f);
  }

  /**
   * Wait until `done()` holds or nobody live holds `task` any more; true = done. Polls: the producer is another
   * process, and its result is a file written atomically before its claim is released.
   */
  async waitFor(task: string, done: () => boolean, pollMs = 200): Promise<boolean> {
    for (;;) {
      if (done()) return true;
      if (!this.heldByOther(task)) return done();
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }

  dispose(): void {
    this.cleanup();
    process.off('exit', this.cleanup);
  }

  private ownerAlive(f: string): boolean {
    let pid: number;
    try {
      pid = Number(readFileSync(f, 'utf-8'));
    } catch {
      return false; // deleted meanwhile: released
    }
    if (!(pid > 0)) return false;
    if (pid === process.pid) return true;
    try {
      process.kill(pid, 0);
      return true;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'EPERM';
    }
  }
}
