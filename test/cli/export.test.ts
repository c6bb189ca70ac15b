// `alignlab export --out` and every writer that goes through formats/atomic.ts: regular files only. Special
// files (FIFO, directory, device node) are refused with one line naming the path the user gave; a symlink is
// written through (its target replaced, the link kept); nothing is left behind on failure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../src/cli/main.js';
import { main as initMain } from '../../src/cli/init.js';
import { writeFileAtomic } from '../../src/formats/atomic.js';

const tmp = mkdtempSync(join(tmpdir(), 'alignlab-export-'));
const model = join(tmp, 'model');
await initMain(['--arch', 'llama', '--out', model, '--layers', '1', '--hidden', '16', '--heads', '2', '--context', '32']);

/** `alignlab export gguf --model <model> --out <out>` in this process: its exit code and stderr text. */
async function exportTo(out: string): Promise<{ code: number; stderr: string }> {
  let stderr = '';
  const [error, log] = [console.error, console.log];
  console.error = (...a: unknown[]) => void (stderr += a.join(' ') + '\n');
  console.log = () => {};
  try {
    return { code: await run(['export', 'gguf', '--model', model, '--out', out]), stderr };
  } finally {
    [console.error, console.log] = [error, log];
  }
}

const leftovers = (dir: string) => readdirSync(dir).filter((f) => f.includes('.tmp-'));

test('export refuses a FIFO, a directory and a device node, naming the path given, and leaves them as they were', async () => {
  const d = join(tmp, 'special');
  mkdirSync(d);
  const fifo = join(d, 'pipe.gguf');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0, 'mkfifo');
  const dir = join(d, 'folder.gguf');
  mkdirSync(dir);
  const cases: [string, RegExp][] = [
    [fifo, /is a FIFO \(named pipe\)/],
    [dir, /is a directory/],
  ];
  if (existsSync('/dev/full')) cases.push(['/dev/full', /is a character device/]);
  for (const [path, kind] of cases) {
    const before = lstatSync(path);
    const r = await exportTo(path);
    assert.equal(r.code, 1, path);
    assert.match(r.stderr, new RegExp(`^alignlab export: ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: ${kind.source}; alignlab writes regular files only\n$`));
    const after = lstatSync(path);
    assert.equal(after.mode, before.mode, `${path} is still what it was`);
    assert.equal(after.ino, before.ino);
  }
  assert.ok(lstatSync(fifo).isFIFO());
  assert.deepEqual(leftovers(d), []);
});

test('export through a symlink replaces its target and keeps the link; an existing regular file is replaced', async () => {
  const d = join(tmp, 'links');
  mkdirSync(d);
  const direct = join(d, 'direct.gguf');
  assert.equal((await exportTo(direct)).code, 0);
  const want = readFileSync(direct);
  assert.ok(want.length > 1000);

  const target = join(d, 'models', 'real.gguf');
  mkdirSync(join(d, 'models'));
  writeFileSync(target, 'an older export');
  const link = join(d, 'latest.gguf');
  symlinkSync('models/real.gguf', link);
  const r = await exportTo(link);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(lstatSync(link).isSymbolicLink(), 'the link is kept');
  assert.equal(readlinkSync(link), 'models/real.gguf');
  assert.deepEqual(readFileSync(target), want, 'the target holds the export');

  // A dangling link creates its target; a link whose target folder is missing is one line naming the link.
  const dangling = join(d, 'new.gguf');
  symlinkSync('models/new-target.gguf', dangling);
  assert.equal((await exportTo(dangling)).code, 0);
  assert.deepEqual(readFileSync(join(d, 'models', 'new-target.gguf')), want);
  const broken = join(d, 'broken.gguf');
  symlinkSync('nowhere/x.gguf', broken);
  const b = await exportTo(broken);
  assert.equal(b.code, 1);
  assert.match(b.stderr, new RegExp(`^alignlab export: ${broken}: cannot be written, the folder ${join(d, 'nowhere')} does not exist\n$`));
  assert.deepEqual(leftovers(d), []);
  assert.deepEqual(leftovers(join(d, 'models')), []);
});

test('writeFileAtomic: an error while writing leaves the old file and no temporary file; errors name the given path', () => {
  const d = join(tmp, 'atomic');
  mkdirSync(d);
  const f = join(d, 'results.bin');
  writeFileSync(f, 'old');
  const mode = 0o640;
  spawnSync('chmod', [mode.toString(8), f]);
  assert.throws(
    () =>
      writeFileAtomic(f, (write) => {
        write(new Uint8Array([1, 2, 3]));
        throw new Error('disk on fire');
      }),
    /disk on fire/,
  );
  assert.equal(readFileSync(f, 'utf-8'), 'old');
  assert.deepEqual(leftovers(d), []);
  writeFileAtomic(f, (write) => write(new TextEncoder().encode('new')));
  assert.equal(readFileSync(f, 'utf-8'), 'new');
  assert.equal(statSync(f).mode & 0o777, mode, 'the replaced file keeps its permissions');
  // A folder that cannot be written to: the message names the file asked for, not a temporary name.
  if (process.getuid?.() !== 0) {
    const ro = join(d, 'ro');
    mkdirSync(ro, { mode: 0o555 });
    assert.throws(() => writeFileAtomic(join(ro, 'x.bin'), () => {}), (e: Error) => e.message.startsWith(`${join(ro, 'x.bin')}: cannot be written`) && !e.message.includes('.tmp-'));
  }
});
