// safetensors: the format Hugging Face stores weights in (https://huggingface.co/docs/safetensors).
//
//   [u64 little-endian N] [N bytes of UTF-8 JSON header] [byte buffer]
//
// The header maps tensor names to {dtype, shape, data_offsets: [begin, end]} with offsets relative to
// the start of the byte buffer, plus an optional "__metadata__" string->string map. The buffer must be
// indexed entirely, without holes or overlaps. We read F32/F16/BF16 (and F64/I32/I64) into float32,
// and write F32 with the header padded by spaces so the data starts 8-byte aligned.

import { writeFileAtomic } from './atomic.js';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { endianness } from 'node:os';
import type { HostTensor } from '../engine/tree.js';

export type SafetensorsDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32';

/** A tensor read from a safetensors file: always float32 data, plus the dtype it had on disk. */
export interface LoadedTensor extends HostTensor {
  dtype: SafetensorsDtype;
  /** Exact values of integer tensors (float32 is exact only below 2^24). */
  ints?: Int32Array | BigInt64Array;
}

export interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

export interface SafetensorsHeader {
  /** Byte offset in the file where the data buffer starts (8 + header length). */
  dataStart: number;
  /** Entries in file order of their offsets. */
  tensors: Map<string, HeaderEntry>;
  metadata: Record<string, string>;
}

const DTYPE_BYTES: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4 };
// Valid dtypes of the spec that we do not convert: named differently in errors than unknown ones.
const SPEC_ONLY_DTYPES = new Set(['BOOL', 'U8', 'I8', 'I16', 'U16', 'U32', 'U64', 'F8_E5M2', 'F8_E4M3', 'F8_E8M0', 'F4', 'F6_E2M3', 'F6_E3M2']);
// The reference implementation refuses headers above 100 MB; a larger value means a corrupt length.
const MAX_HEADER_BYTES = 100_000_000;

function assertLittleEndian(): void {
  if (endianness() !== 'LE') throw new Error('safetensors: this code assumes a little-endian host');
}

function fail(file: string, where: string, why: string): never {
  throw new Error(`${file}: ${where} ${why}`);
}

/** Read and validate the header of a safetensors file without reading tensor data. */
export function readSafetensorsHeader(path: string): SafetensorsHeader {
  const fd = openSync(path, 'r');
  try {
    return readHeaderFd(fd, path);
  } finally {
    closeSync(fd);
  }
}

function readExact(fd: number, buf: Uint8Array, pos: number): number {
  let got = 0;
  while (got < buf.length) {
    const n = readSync(fd, buf, got, buf.length - got, pos + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

function readHeaderFd(fd: number, file: string): SafetensorsHeader {
  const size = fstatSync(fd).size;
  if (size < 8) fail(file, 'file', `is truncated: ${size} bytes, the 8-byte header length alone needs 8`);
  const lenBuf = Buffer.alloc(8);
  readExact(fd, lenBuf, 0);
  const n = lenBuf.readBigUInt64LE(0);
  if (n > BigInt(size - 8)) fail(file, 'header length', `${n} is beyond the file size (${size} bytes): the file is truncated or not safetensors`);
  if (n > BigInt(MAX_HEADER_BYTES)) fail(file, 'header length', `${n} exceeds ${MAX_HEADER_BYTES} bytes`);
  const headerLen = Number(n);
  const hb = Buffer.alloc(headerLen);
  readExact(fd, hb, 8);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(hb));
  } catch (e) {
    fail(file, 'header', `is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail(file, 'header', 'must be a JSON object');
  const dataStart = 8 + headerLen;
  const bufferLen = size - dataStart;
  const metadata: Record<string, string> = {};
  const entries: [string, HeaderEntry][] = [];
  for (const [name, v] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(file, 'field "__metadata__"', 'must be an object of strings');
      for (const [k, s] of Object.entries(v as Record<string, unknown>)) {
        if (typeof s !== 'string') fail(file, `field "__metadata__.${k}"`, `must be a string, got ${JSON.stringify(s)}`);
        metadata[k] = s;
      }
      continue;
    }
    entries.push([name, validateEntry(file, name, v, bufferLen)]);
  }
  // The buffer must be covered exactly: sorted by begin offset, each tensor starts where the previous ended.
  entries.sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0]);
  let at = 0;
  for (const [name, e] of entries) {
    const [b, end] = e.data_offsets;
    if (b < at) fail(file, `tensor "${name}"`, `data_offsets [${b}, ${end}] overlap the previous tensor (which ends at ${at})`);
    if (b > at) fail(file, `tensor "${name}"`, `data_offsets [${b}, ${end}] leave a hole at bytes ${at}..${b} of the buffer`);
    at = end;
  }
  if (at !== bufferLen) fail(file, 'byte buffer', `has ${bufferLen} bytes but the tensors index ${at} (truncated or trailing data)`);
  return { dataStart, tensors: new Map(entries), metadata };
}

function validateEntry(file: string, name: string, v: unknown, bufferLen: number): HeaderEntry {
  const where = `tensor "${name}"`;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(file, where, 'must be an object with dtype, shape, data_offsets');
  const o = v as Record<string, unknown>;
  const dtype = o.dtype;
  if (typeof dtype !== 'string') fail(file, `${where} field "dtype"`, 'is missing');
  if (!(dtype in DTYPE_BYTES)) {
    if (SPEC_ONLY_DTYPES.has(dtype)) fail(file, `${where} field "dtype"`, `"${dtype}" is not supported (supported: ${Object.keys(DTYPE_BYTES).join(', ')})`);
    fail(file, `${where} field "dtype"`, `"${dtype}" is not a safetensors dtype`);
  }
  const shape = o.shape;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0))
    fail(file, `${where} field "shape"`, `must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
  const off = o.data_offsets;
  if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0))
    fail(file, `${where} field "data_offsets"`, `must be [begin, end] byte offsets, got ${JSON.stringify(off)}`);
  const [b, e] = off as [number, number];
  if (e < b) fail(file, `${where} field "data_offsets"`, `[${b}, ${e}] ends before it begins`);
  if (e > bufferLen) fail(file, `${where} field "data_offsets"`, `[${b}, ${e}] is out of range: the byte buffer has ${bufferLen} bytes`);
  const count = (shape as number[]).reduce((a, d) => a * d, 1);
  const want = count * DTYPE_BYTES[dtype];
  if (want !== e - b) fail(file, where, `shape [${(shape as number[]).join(', ')}] of ${dtype} needs ${want} bytes but data_offsets span ${e - b}`);
  return { dtype, shape: shape as number[], data_offsets: [b, e] };
}

// f16 -> f32 through a 64k-entry table: one lookup per element.
let F16_TABLE: Float32Array | null = null;
function f16Table(): Float32Array {
  if (F16_TABLE) return F16_TABLE;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const f = h & 0x3ff;
    t[h] = e === 0 ? s * f * 2 ** -24 : e === 31 ? (f ? NaN : s * Infinity) : s * (1 + f / 1024) * 2 ** (e - 15);
  }
  return (F16_TABLE = t);
}

/** Convert raw little-endian bytes of a dtype to float32 (the bytes are copied, so alignment does not matter). */
export function decodeToF32(bytes: Uint8Array, dtype: SafetensorsDtype): { data: Float32Array; ints?: Int32Array | BigInt64Array } {
  assertLittleEndian();
  const copy = new Uint8Array(bytes); // fresh, aligned ArrayBuffer
  const buf = copy.buffer;
  switch (dtype) {
    case 'F32':
      return { data: new Float32Array(buf) };
    case 'F64':
      return { data: Float32Array.from(new Float64Array(buf)) };
    case 'F16': {
      const h = new Uint16Array(buf);
      const t = f16Table();
      const out = new Float32Array(h.length);
      for (let i = 0; i < h.length; i++) out[i] = t[h[i]];
      return { data: out };
    }
    case 'BF16': {
      // bf16 is the top half of an f32: shift it back into place.
      const h = new Uint16Array(buf);
      const out = new Float32Array(h.length);
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < h.length; i++) u[i] = h[i] << 16;
      return { data: out };
    }
    case 'I32': {
      const ints = new Int32Array(buf);
      return { data: Float32Array.from(ints), ints };
    }
    case 'I64': {
      const ints = new BigInt64Array(buf);
      const data = new Float32Array(ints.length);
      for (let i = 0; i < ints.length; i++) data[i] = Number(ints[i]);
      return { data, ints };
    }
  }
}

/** Read every tensor of a safetensors file (or only `names`) as float32. */
export function readSafetensors(path: string, names?: Iterable<string>): Map<string, LoadedTensor> {
  const fd = openSync(path, 'r');
  try {
    const h = readHeaderFd(fd, path);
    const want = names ? new Set(names) : null;
    const out = new Map<string, LoadedTensor>();
    for (const [name, e] of h.tensors) {
      if (want && !want.has(name)) continue;
      const [b, end] = e.data_offsets;
      const bytes = new Uint8Array(end - b);
      const got = readExact(fd, bytes, h.dataStart + b);
      if (got !== bytes.length) fail(path, `tensor "${name}"`, `is truncated: read ${got} of ${bytes.length} bytes`);
      const dtype = e.dtype as SafetensorsDtype;
      out.set(name, { dtype, shape: [...e.shape], ...decodeToF32(bytes, dtype) });
    }
    if (want) for (const n of want) if (!out.has(n)) fail(path, `tensor "${n}"`, 'is missing');
    return out;
  } finally {
    closeSync(fd);
  }
}

/** Bytes a tensor takes when written as F32 (used to decide sharding). */
export function f32ByteSize(t: HostTensor): number {
  return t.data.length * 4;
}

/**
 * Write tensors as F32 safetensors, atomically (temp file + rename): a crash never leaves a half-written
 * file under the final name. Tensors are laid out contiguously in the order given.
 */
export function writeSafetensors(path: string, tensors: Record<string, HostTensor>, metadata?: Record<string, string>): void {
  assertLittleEndian();
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let at = 0;
  for (const [name, t] of Object.entries(tensors)) {
    if (name === '__metadata__') throw new Error(`${path}: tensor name "__metadata__" is reserved`);
    const count = t.shape.reduce((a, d) => a * d, 1);
    if (count !== t.data.length) throw new Error(`${path}: tensor "${name}" has shape [${t.shape.join(', ')}] (${count} values) but ${t.data.length} values of data`);
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [at, at + t.data.length * 4] };
    at += t.data.length * 4;
  }
  let json = JSON.stringify(header);
  // Pad with spaces (allowed by the spec) so that 8 + header length is a multiple of 8.
  const raw = Buffer.from(json, 'utf-8');
  const pad = (8 - (raw.length % 8)) % 8;
  json += ' '.repeat(pad);
  const hb = Buffer.from(json, 'utf-8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hb.length));
  writeFileAtomic(path, (write) => {
    write(len);
    write(hb);
    for (const t of Object.values(tensors)) write(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  });
}

