import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { readSafetensors, readSafetensorsHeader, writeSafetensors } from '../../src/formats/safetensors.js';
import type { HostTensor } from '../../src/engine/tree.js';
import { errorOf, rng, tmp } from './helpers.js';

const dir = tmp('st');

function randomTensor(shape: number[], seed: number): HostTensor {
  const r = rng(seed);
  const n = shape.reduce((a, d) => a * d, 1);
  return { shape, data: Float32Array.from({ length: n }, () => r() * 2 - 1) };
}

/** Build a safetensors file by hand: our own header bytes, so the reader is tested against the spec, not the writer. */
function craft(name: string, header: unknown, data: Uint8Array, { pad = true, lengthOverride }: { pad?: boolean; lengthOverride?: bigint } = {}): string {
  let json = typeof header === 'string' ? header : JSON.stringify(header);
  if (pad) json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const hb = Buffer.from(json);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lengthOverride ?? BigInt(hb.length));
  const path = join(dir, name);
  writeFileSync(path, Buffer.concat([len, hb, data]));
  return path;
}

const u16 = (xs: number[]) => new Uint8Array(Uint16Array.from(xs).buffer);

test('written files follow the spec: u64 header length, JSON header, F32 dtype names, contiguous offsets, 8-byte aligned data', () => {
  const tensors: Record<string, HostTensor> = {
    'a.weight': randomTensor([3, 5], 1),
    'b.bias': randomTensor([7], 2), // 28 bytes: the next tensor starts at a non-multiple of 8, as the spec allows
    scalar: { shape: [], data: Float32Array.of(42) },
    empty: { shape: [0, 4], data: new Float32Array(0) },
    'c.weight': randomTensor([2, 3, 4], 3),
  };
  const path = join(dir, 'spec.safetensors');
  writeSafetensors(path, tensors, { format: 'pt', note: 'hello' });
  const bytes = readFileSync(path);
  const n = Number(bytes.readBigUInt64LE(0));
  assert.equal((8 + n) % 8, 0, 'data must start 8-byte aligned');
  const headerText = bytes.subarray(8, 8 + n).toString('utf-8');
  assert.match(headerText, /^\{.*\} *$/s, 'header is JSON padded only with spaces');
  const header = JSON.parse(headerText) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }> & { __metadata__: unknown };
  assert.deepEqual(header.__metadata__, { format: 'pt', note: 'hello' });
  let at = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const e = header[name];
    assert.equal(e.dtype, 'F32');
    assert.deepEqual(e.shape, t.shape);
    assert.deepEqual(e.data_offsets, [at, at + t.data.length * 4], `${name} is laid out right after the previous tensor`);
    for (let i = 0; i < t.data.length; i++) assert.equal(bytes.readFloatLE(8 + n + at + 4 * i), t.data[i]);
    at += t.data.length * 4;
  }
  assert.equal(bytes.length, 8 + n + at, 'no trailing bytes');
  const back = readSafetensors(path);
  for (const [name, t] of Object.entries(tensors)) {
    assert.deepEqual(back.get(name)!.shape, t.shape);
    assert.deepEqual(back.get(name)!.data, t.data);
  }
  assert.deepEqual(readSafetensorsHeader(path).metadata, { format: 'pt', note: 'hello' });
  assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.tmp-')), [], 'no temporary file left behind');
});

test('reads F16, BF16, F64, I32 and I64 from hand-made bytes', () => {
  // f16: 1, -2, 0.5, 65504 (max), 2^-24 (smallest subnormal), +inf; bf16: 1, -2.5, 3.140625, 1e-40-ish subnormal pattern
  const f16 = u16([0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x7c00]);
  const bf16 = u16([0x3f80, 0xc020, 0x4049, 0x0001]);
  const f64 = new Uint8Array(Float64Array.of(0.1, -1e10).buffer);
  const i32 = new Uint8Array(Int32Array.of(-7, 123456789).buffer);
  const i64 = new Uint8Array(BigInt64Array.of(2n ** 40n + 1n, -3n).buffer);
  const parts = [f16, bf16, f64, i32, i64];
  const offs: [number, number][] = [];
  let at = 0;
  for (const p of parts) offs.push([at, (at += p.length)]);
  const path = craft(
    'dtypes.safetensors',
    {
      h: { dtype: 'F16', shape: [2, 3], data_offsets: offs[0] },
      b: { dtype: 'BF16', shape: [4], data_offsets: offs[1] },
      d: { dtype: 'F64', shape: [2], data_offsets: offs[2] },
      i: { dtype: 'I32', shape: [2], data_offsets: offs[3] },
      l: { dtype: 'I64', shape: [1, 2], data_offsets: offs[4] },
    },
    Buffer.concat(parts),
  );
  const t = readSafetensors(path);
  assert.deepEqual([...t.get('h')!.data], [1, -2, 0.5, 65504, 2 ** -24, Infinity]);
  assert.deepEqual(t.get('h')!.shape, [2, 3]);
  assert.equal(t.get('h')!.dtype, 'F16');
  const b = t.get('b')!.data;
  assert.deepEqual([...b.slice(0, 3)], [1, -2.5, 3.140625]);
  assert.equal(b[3], new Float32Array(new Uint32Array([0x00010000]).buffer)[0]);
  assert.deepEqual([...t.get('d')!.data], [Math.fround(0.1), -1e10]);
  assert.deepEqual([...t.get('i')!.data], [-7, 123456792 /* nearest float32 */]);
  assert.deepEqual([...(t.get('i')!.ints as Int32Array)], [-7, 123456789]);
  assert.deepEqual([...(t.get('l')!.ints as BigInt64Array)], [2n ** 40n + 1n, -3n]);
  assert.deepEqual(t.get('l')!.shape, [1, 2]);
});

test('reads files whose header is not padded and whose tensors are listed out of order', () => {
  const a = new Uint8Array(Float32Array.of(1, 2).buffer);
  const b = new Uint8Array(Float32Array.of(3).buffer);
  const path = craft('unpadded.safetensors', { b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] }, a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, Buffer.concat([a, b]), { pad: false });
  const t = readSafetensors(path);
  assert.deepEqual([...t.get('a')!.data], [1, 2]);
  assert.deepEqual([...t.get('b')!.data], [3]);
});

test('bad files fail with an error naming the file and the field or tensor', () => {
  const four = new Uint8Array(16);
  const ok = { x: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } };
  const cases: [string, () => string, RegExp][] = [
    ['tiny', () => (writeFileSync(join(dir, 'tiny.safetensors'), Buffer.from([1, 2, 3])), join(dir, 'tiny.safetensors')), /file is truncated/],
    ['len', () => craft('len.safetensors', ok, four, { lengthOverride: 10_000n }), /header length 10000 is beyond the file size/],
    ['json', () => craft('json.safetensors', '{"x": {"dtype": ', four), /header is not valid UTF-8 JSON/],
    ['array', () => craft('array.safetensors', '[1,2]', four), /header must be a JSON object/],
    ['dtype', () => craft('dtype.safetensors', { x: { dtype: 'F17', shape: [4], data_offsets: [0, 16] } }, four), /tensor "x" field "dtype" "F17" is not a safetensors dtype/],
    ['u8', () => craft('u8.safetensors', { x: { dtype: 'U8', shape: [16], data_offsets: [0, 16] } }, four), /tensor "x" field "dtype" "U8" is not supported/],
    ['range', () => craft('range.safetensors', { x: { dtype: 'F32', shape: [8], data_offsets: [0, 32] } }, four), /tensor "x" field "data_offsets" \[0, 32\] is out of range: the byte buffer has 16 bytes/],
    ['overlap', () => craft('overlap.safetensors', { x: { dtype: 'F32', shape: [3], data_offsets: [0, 12] }, y: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } }, four), /tensor "y" data_offsets \[8, 16\] overlap/],
    ['hole', () => craft('hole.safetensors', { x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, y: { dtype: 'F32', shape: [1], data_offsets: [12, 16] } }, four), /tensor "y" data_offsets \[12, 16\] leave a hole/],
    ['span', () => craft('span.safetensors', { x: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 16] } }, four), /tensor "x" shape \[2, 3\] of F32 needs 24 bytes but data_offsets span 16/],
    ['shape', () => craft('shape.safetensors', { x: { dtype: 'F32', shape: [-4], data_offsets: [0, 16] } }, four), /tensor "x" field "shape" must be an array of non-negative integers/],
    ['truncated', () => craft('truncated.safetensors', { x: { dtype: 'F32', shape: [8], data_offsets: [0, 32] } }, new Uint8Array(22)), /field "data_offsets" \[0, 32\] is out of range: the byte buffer has 22 bytes/],
    ['trailing', () => craft('trailing.safetensors', ok, new Uint8Array(20)), /byte buffer has 20 bytes but the tensors index 16/],
    ['meta', () => craft('meta.safetensors', { __metadata__: { format: 1 }, ...ok }, four), /field "__metadata__.format" must be a string/],
  ];
  for (const [label, make, re] of cases) {
    const path = make();
    const msg = errorOf(() => readSafetensors(path));
    assert.ok(msg.startsWith(`${path}: `) && re.test(msg), `${label}: got "${msg}"`);
  }
});

test('writer rejects data that does not match its shape and a reserved name', () => {
  const path = join(dir, 'bad-write.safetensors');
  assert.throws(() => writeSafetensors(path, { x: { shape: [2, 2], data: new Float32Array(3) } }), /tensor "x" has shape \[2, 2\] \(4 values\) but 3 values/);
  assert.throws(() => writeSafetensors(path, { __metadata__: { shape: [1], data: new Float32Array(1) } }), /reserved/);
  assert.throws(() => writeSafetensors(join(dir, 'no-such-dir', 'x.safetensors'), { x: { shape: [1], data: new Float32Array(1) } }),
    /no-such-dir\/x\.safetensors: cannot be written, the folder \S*no-such-dir does not exist/);
});
