// GGUF: llama.cpp's model file (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md), version 3.
//
//   magic "GGUF" | u32 version | u64 tensor count | u64 metadata count
//   metadata: (string key, u32 value type, value)*        strings are u64 length + UTF-8 bytes
//   tensor infos: (string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset)*
//   padding to `general.alignment` (default 32), then the tensor data, each tensor aligned
//
// ne[] lists dimensions innermost first: a row-major [out, in] matrix has ne = [in, out].
// We export f32 tensors with the conventions of llama.cpp's convert_hf_to_gguf.py (checked against the
// llama.cpp source bundled with node-llama-cpp 3.21.1): llama/mistral/mixtral -> arch "llama" (whose RoPE rotates
// adjacent pairs, so HF's rotate-half q/k rows are permuted), qwen2 -> "qwen2" (NEOX RoPE, no permute),
// gpt2 -> "gpt2" (fused qkv, learned positions). Tokenizers: byte-level BPE -> llama.cpp "gpt2"; our word-level
// vocabularies -> llama.cpp "bert" (WordPiece), which tokenizes them identically (see ggufVocab).

import { writeFileAtomic } from './atomic.js';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { ModelConfig } from './config.js';
import type { HostParams, HostTensor } from '../engine/tree.js';
import { checkParams, transpose2d } from './hf.js';
import type { TokenizerConfig, TokenizerJson } from './tokenizer.js';

export enum GGUFType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

export type GGUFScalar = number | bigint | boolean | string;
export interface GGUFValue {
  type: GGUFType;
  /** Element type when type is ARRAY. */
  arrayType?: GGUFType;
  value: GGUFScalar | GGUFScalar[];
}

export interface GGUFTensorInfo {
  name: string;
  /** ggml's dims, innermost first. */
  ne: number[];
  /** Row-major shape (ne reversed), the way our HostTensors are stored. */
  shape: number[];
  /** ggml type id (0 = F32, 1 = F16, 30 = BF16, ...). */
  type: number;
  typeName: string;
  /** Offset relative to the start of the data section. */
  offset: number;
  byteSize: number;
  /** Values as float32 for F32/F16/BF16 tensors (when read with data). */
  data?: Float32Array;
}

export interface GGUFFile {
  path: string;
  version: number;
  alignment: number;
  metadata: Map<string, GGUFValue>;
  tensors: GGUFTensorInfo[];
  /** Absolute file offset of the data section. */
  dataStart: number;
}

/** The plain value of a metadata key, or undefined. */
export function ggufGet(f: GGUFFile, key: string): GGUFScalar | GGUFScalar[] | undefined {
  return f.metadata.get(key)?.value;
}

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_DEFAULT_ALIGNMENT = 32;

// ggml types: name, block size (elements), bytes per block (gguf-py's GGML_QUANT_SIZES).
const GGML_TYPES: Record<number, [string, number, number]> = {
  0: ['F32', 1, 4], 1: ['F16', 1, 2], 2: ['Q4_0', 32, 18], 3: ['Q4_1', 32, 20], 6: ['Q5_0', 32, 22], 7: ['Q5_1', 32, 24],
  8: ['Q8_0', 32, 34], 9: ['Q8_1', 32, 40], 10: ['Q2_K', 256, 84], 11: ['Q3_K', 256, 110], 12: ['Q4_K', 256, 144],
  13: ['Q5_K', 256, 176], 14: ['Q6_K', 256, 210], 15: ['Q8_K', 256, 292], 16: ['IQ2_XXS', 256, 66], 17: ['IQ2_XS', 256, 74],
  18: ['IQ3_XXS', 256, 98], 19: ['IQ1_S', 256, 50], 20: ['IQ4_NL', 32, 18], 21: ['IQ3_S', 256, 110], 22: ['IQ2_S', 256, 82],
  23: ['IQ4_XS', 256, 136], 24: ['I8', 1, 1], 25: ['I16', 1, 2], 26: ['I32', 1, 4], 27: ['I64', 1, 8], 28: ['F64', 1, 8],
  29: ['IQ1_M', 256, 56], 30: ['BF16', 1, 2], 34: ['TQ1_0', 256, 54], 35: ['TQ2_0', 256, 66], 39: ['MXFP4', 32, 17],
  40: ['NVFP4', 64, 36], 41: ['Q1_0', 128, 18], 42: ['Q2_0', 64, 18],
};

const SCALAR_BYTES: Partial<Record<GGUFType, number>> = {
  [GGUFType.UINT8]: 1, [GGUFType.INT8]: 1, [GGUFType.UINT16]: 2, [GGUFType.INT16]: 2, [GGUFType.UINT32]: 4, [GGUFType.INT32]: 4,
  [GGUFType.FLOAT32]: 4, [GGUFType.BOOL]: 1, [GGUFType.UINT64]: 8, [GGUFType.INT64]: 8, [GGUFType.FLOAT64]: 8,
};

// ---------------------------------------------------------------------------------------------
// Reading

class GGUFError extends Error {
  constructor(file: string, field: string, why: string) {
    super(`${file}: ${field} ${why}`);
    this.name = 'GGUFError';
  }
}

/** A buffered little-endian reader over a file descriptor that refuses to read past the end of the file. */
class Reader {
  pos = 0;
  private buf = Buffer.alloc(0);
  private bufStart = 0;
  constructor(
    private fd: number,
    readonly size: number,
    private file: string,
  ) {}

  private ensure(n: number, what: string): void {
    if (this.pos + n > this.size) throw new GGUFError(this.file, what, `runs past the end of the file (needs ${n} bytes at offset ${this.pos}, file has ${this.size}): truncated`);
    if (this.pos >= this.bufStart && this.pos + n <= this.bufStart + this.buf.length) return;
    const len = Math.min(Math.max(n, 1 << 20), this.size - this.pos);
    this.buf = Buffer.alloc(len);
    let got = 0;
    while (got < len) {
      const r = readSync(this.fd, this.buf, got, len - got, this.pos + got);
      if (r === 0) break;
      got += r;
    }
    this.bufStart = this.pos;
  }
  bytes(n: number, what: string): Buffer {
    this.ensure(n, what);
    const o = this.pos - this.bufStart;
    this.pos += n;
    return this.buf.subarray(o, o + n);
  }
  u32(what: string): number {
    return this.bytes(4, what).readUInt32LE(0);
  }
  u64(what: string): number {
    const v = this.bytes(8, what).readBigUInt64LE(0);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new GGUFError(this.file, what, `value ${v} is implausibly large`);
    return Number(v);
  }
  str(what: string): string {
    const n = this.u64(`${what} (string length)`);
    if (this.pos + n > this.size) throw new GGUFError(this.file, what, `string length ${n} runs past the end of the file (offset ${this.pos}, file has ${this.size} bytes)`);
    return this.bytes(n, what).toString('utf-8');
  }
  scalar(t: GGUFType, what: string): GGUFScalar {
    switch (t) {
      case GGUFType.UINT8: return this.bytes(1, what).readUInt8(0);
      case GGUFType.INT8: return this.bytes(1, what).readInt8(0);
      case GGUFType.UINT16: return this.bytes(2, what).readUInt16LE(0);
      case GGUFType.INT16: return this.bytes(2, what).readInt16LE(0);
      case GGUFType.UINT32: return this.bytes(4, what).readUInt32LE(0);
      case GGUFType.INT32: return this.bytes(4, what).readInt32LE(0);
      case GGUFType.FLOAT32: return this.bytes(4, what).readFloatLE(0);
      case GGUFType.BOOL: {
        const b = this.bytes(1, what).readUInt8(0);
        if (b > 1) throw new GGUFError(this.file, what, `bool has byte value ${b}`);
        return b === 1;
      }
      case GGUFType.STRING: return this.str(what);
      case GGUFType.UINT64: return this.bytes(8, what).readBigUInt64LE(0);
      case GGUFType.INT64: return this.bytes(8, what).readBigInt64LE(0);
      case GGUFType.FLOAT64: return this.bytes(8, what).readDoubleLE(0);
      default: throw new GGUFError(this.file, what, `has unknown value type ${t}`);
    }
  }
}

const isScalarType = (t: number) => t >= 0 && t <= 12 && t !== GGUFType.ARRAY;

/** Read a GGUF file: header, metadata, tensor infos and (unless data: false) F32/F16/BF16 tensor data as float32. */
export function readGGUF(path: string, { data = true }: { data?: boolean } = {}): GGUFFile {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const r = new Reader(fd, size, path);
    const magic = r.u32('magic');
    if (magic !== GGUF_MAGIC) throw new GGUFError(path, 'magic', `is ${JSON.stringify(Buffer.from(new Uint32Array([magic]).buffer).toString('latin1'))}, expected "GGUF": not a GGUF file`);
    const version = r.u32('version');
    if (version !== 2 && version !== 3) throw new GGUFError(path, 'version', `${version} is not supported (supported: 2, 3)`);
    const nTensors = r.u64('tensor count');
    const nKV = r.u64('metadata count');
    // Every tensor info and every key takes at least 8 bytes: larger counts cannot fit in the file.
    if (nTensors * 8 > size) throw new GGUFError(path, 'tensor count', `${nTensors} cannot fit in a file of ${size} bytes`);
    if (nKV * 8 > size) throw new GGUFError(path, 'metadata count', `${nKV} cannot fit in a file of ${size} bytes`);
    const metadata = new Map<string, GGUFValue>();
    for (let i = 0; i < nKV; i++) {
      const key = r.str(`metadata key #${i}`);
      if (key.length === 0) throw new GGUFError(path, `metadata key #${i}`, 'is empty');
      if (metadata.has(key)) throw new GGUFError(path, `metadata key "${key}"`, 'appears twice');
      const t = r.u32(`metadata "${key}" type`);
      if (t === GGUFType.ARRAY) {
        const at = r.u32(`metadata "${key}" array element type`);
        if (!isScalarType(at)) throw new GGUFError(path, `metadata "${key}"`, `has unsupported array element type ${at}`);
        const n = r.u64(`metadata "${key}" array length`);
        const minBytes = at === GGUFType.STRING ? 8 : SCALAR_BYTES[at as GGUFType]!;
        if (r.pos + n * minBytes > size) throw new GGUFError(path, `metadata "${key}"`, `array of ${n} elements runs past the end of the file`);
        const vals: GGUFScalar[] = new Array(n);
        for (let j = 0; j < n; j++) vals[j] = r.scalar(at, `metadata "${key}"[${j}]`);
        metadata.set(key, { type: GGUFType.ARRAY, arrayType: at, value: vals });
      } else {
        if (!isScalarType(t)) throw new GGUFError(path, `metadata "${key}"`, `has unknown value type ${t}`);
        metadata.set(key, { type: t, value: r.scalar(t, `metadata "${key}"`) });
      }
    }
    let alignment = GGUF_DEFAULT_ALIGNMENT;
    const al = metadata.get('general.alignment');
    if (al) {
      if (al.type !== GGUFType.UINT32) throw new GGUFError(path, 'metadata "general.alignment"', `must be uint32, got type ${GGUFType[al.type]}`);
      alignment = al.value as number;
      if (alignment === 0 || (alignment & (alignment - 1)) !== 0) throw new GGUFError(path, 'metadata "general.alignment"', `${alignment} is not a power of 2`);
    }
    const tensors: GGUFTensorInfo[] = [];
    const names = new Set<string>();
    for (let i = 0; i < nTensors; i++) {
      const name = r.str(`tensor info #${i} name`);
      const w = `tensor "${name}"`;
      if (names.has(name)) throw new GGUFError(path, w, 'appears twice');
      names.add(name);
      const nDims = r.u32(`${w} n_dims`);
      if (nDims > 4) throw new GGUFError(path, `${w} n_dims`, `is ${nDims}, at most 4`);
      const ne: number[] = [];
      for (let j = 0; j < nDims; j++) ne.push(r.u64(`${w} ne[${j}]`));
      const type = r.u32(`${w} type`);
      const tt = GGML_TYPES[type];
      if (!tt) throw new GGUFError(path, `${w} type`, `${type} is not a known ggml type`);
      const [typeName, blck, tsize] = tt;
      if ((ne[0] ?? 1) % blck !== 0) throw new GGUFError(path, w, `has ${ne[0]} elements per row, not a multiple of ${typeName}'s block size ${blck}`);
      const count = ne.reduce((a, d) => a * d, 1);
      if (!Number.isSafeInteger(count)) throw new GGUFError(path, w, `shape [${ne.join(', ')}] is too large`);
      const offset = r.u64(`${w} offset`);
      if (offset % alignment !== 0) throw new GGUFError(path, `${w} offset`, `${offset} is not a multiple of the alignment ${alignment}`);
      tensors.push({ name, ne, shape: [...ne].reverse(), type, typeName, offset, byteSize: (count / blck) * tsize });
    }
    const dataStart = Math.ceil(r.pos / alignment) * alignment;
    let expected = 0;
    for (const t of tensors) {
      // llama.cpp requires tensors to be packed in order, each padded to the alignment.
      if (t.offset !== expected) throw new GGUFError(path, `tensor "${t.name}" offset`, `is ${t.offset}, expected ${expected} (tensors must be contiguous and aligned)`);
      if (dataStart + t.offset + t.byteSize > size) throw new GGUFError(path, `tensor "${t.name}" data`, `(${t.byteSize} bytes at offset ${dataStart + t.offset}) runs past the end of the file (${size} bytes): truncated`);
      expected += Math.ceil(t.byteSize / alignment) * alignment;
    }
    if (data) for (const t of tensors) t.data = readTensorData(fd, path, t, dataStart);
    return { path, version, alignment, metadata, tensors, dataStart };
  } finally {
    closeSync(fd);
  }
}

function readTensorData(fd: number, path: string, t: GGUFTensorInfo, dataStart: number): Float32Array | undefined {
  if (t.type !== 0 && t.type !== 1 && t.type !== 30) return undefined; // quantized: not decoded here
  const bytes = new Uint8Array(t.byteSize);
  let got = 0;
  while (got < bytes.length) {
    const n = readSync(fd, bytes, got, bytes.length - got, dataStart + t.offset + got);
    if (n === 0) throw new GGUFError(path, `tensor "${t.name}" data`, 'is truncated');
    got += n;
  }
  if (t.type === 0) return new Float32Array(bytes.buffer);
  const h = new Uint16Array(bytes.buffer);
  const out = new Float32Array(h.length);
  if (t.type === 30) {
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < h.length; i++) u[i] = h[i] << 16;
    return out;
  }
  for (let i = 0; i < h.length; i++) {
    const x = h[i];
    const e = (x >> 10) & 0x1f, f = x & 0x3ff, s = x & 0x8000 ? -1 : 1;
    out[i] = e === 0 ? s * f * 2 ** -24 : e === 31 ? (f ? NaN : s * Infinity) : s * (1 + f / 1024) * 2 ** (e - 15);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Writing

/** A tensor to write: row-major shape and float32 data (written as F32). */
export interface GGUFTensorOut {
  name: string;
  shape: number[];
  data: Float32Array;
}

function encodeString(s: string): Buffer {
  const b = Buffer.from(s, 'utf-8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(b.length));
  return Buffer.concat([len, b]);
}

function encodeScalar(t: GGUFType, v: GGUFScalar): Buffer {
  if (t === GGUFType.STRING) return encodeString(v as string);
  const b = Buffer.alloc(SCALAR_BYTES[t]!);
  switch (t) {
    case GGUFType.UINT8: b.writeUInt8(v as number); break;
    case GGUFType.INT8: b.writeInt8(v as number); break;
    case GGUFType.UINT16: b.writeUInt16LE(v as number); break;
    case GGUFType.INT16: b.writeInt16LE(v as number); break;
    case GGUFType.UINT32: b.writeUInt32LE(v as number); break;
    case GGUFType.INT32: b.writeInt32LE(v as number); break;
    case GGUFType.FLOAT32: b.writeFloatLE(v as number); break;
    case GGUFType.BOOL: b.writeUInt8(v ? 1 : 0); break;
    case GGUFType.UINT64: b.writeBigUInt64LE(BigInt(v as number | bigint)); break;
    case GGUFType.INT64: b.writeBigInt64LE(BigInt(v as number | bigint)); break;
    case GGUFType.FLOAT64: b.writeDoubleLE(v as number); break;
    default: throw new Error(`GGUF: cannot encode value type ${t}`);
  }
  return b;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}
function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}

/** Write a GGUF v3 file with the given metadata and F32 tensors, atomically (temp file + rename). */
export function writeGGUFFile(path: string, metadata: [string, GGUFValue][], tensors: GGUFTensorOut[], alignment = GGUF_DEFAULT_ALIGNMENT): void {
  const parts: Buffer[] = [u32(GGUF_MAGIC), u32(3), u64(tensors.length), u64(metadata.length)];
  for (const [key, v] of metadata) {
    parts.push(encodeString(key), u32(v.type));
    if (v.type === GGUFType.ARRAY) {
      const vals = v.value as GGUFScalar[];
      parts.push(u32(v.arrayType!), u64(vals.length));
      for (const x of vals) parts.push(encodeScalar(v.arrayType!, x));
    } else parts.push(encodeScalar(v.type, v.value as GGUFScalar));
  }
  const pad = (n: number) => Math.ceil(n / alignment) * alignment;
  let offset = 0;
  for (const t of tensors) {
    const count = t.shape.reduce((a, d) => a * d, 1);
    if (count !== t.data.length) throw new Error(`${path}: tensor "${t.name}" has shape [${t.shape.join(', ')}] but ${t.data.length} values`);
    const ne = [...t.shape].reverse();
    parts.push(encodeString(t.name), u32(ne.length), ...ne.map(u64), u32(0), u64(offset));
    offset += pad(t.data.length * 4);
  }
  const head = Buffer.concat(parts);
  writeFileAtomic(path, (write) => {
    write(head);
    write(Buffer.alloc(pad(head.length) - head.length));
    for (const t of tensors) {
      const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
      write(bytes);
      write(Buffer.alloc(pad(bytes.length) - bytes.length));
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Model export

/** The GGUF architecture llama.cpp runs a config as. */
export function ggufArch(c: ModelConfig): 'llama' | 'qwen2' | 'gpt2' {
  return c.arch === 'gpt2' ? 'gpt2' : c.arch === 'qwen2' ? 'qwen2' : 'llama';
}

/**
 * Reorder the rows of an HF q/k projection ([nHead·D, in], rotate-half RoPE) for llama.cpp's adjacent-pair RoPE:
 * within each head, row s·D/2 + j moves to 2j + s. Same as convert_hf_to_gguf.py's `permute`. Works on biases too.
 */
export function permuteRope(w: HostTensor, nHead: number): HostTensor {
  const rows = w.shape[0];
  const cols = w.shape.length > 1 ? w.shape[1] : 1;
  const D = rows / nHead, half = D / 2;
  const out = new Float32Array(w.data.length);
  for (let h = 0; h < nHead; h++)
    for (let s = 0; s < 2; s++)
      for (let j = 0; j < half; j++) {
        const src = h * D + s * half + j, dst = h * D + 2 * j + s;
        out.set(w.data.subarray(src * cols, (src + 1) * cols), dst * cols);
      }
  return { shape: [...w.shape], data: out };
}

/** Columns [c0, c1) of a 2-D tensor, transposed: the HF [out, in] weight of a slice of our fused [in, out] matrix. */
function colsT(t: HostTensor, c0: number, c1: number): HostTensor {
  const [r, c] = t.shape;
  const w = c1 - c0;
  const out = new Float32Array(r * w);
  for (let i = 0; i < r; i++) for (let j = 0; j < w; j++) out[j * r + i] = t.data[i * c + c0 + j];
  return { shape: [w, r], data: out };
}

/** Expert e of a stacked [E, a, b] tensor, transposed to [b, a]; all experts stacked back: [E, b, a]. */
function stackedT(t: HostTensor): HostTensor {
  const [E, a, b] = t.shape;
  const out = new Float32Array(t.data.length);
  for (let e = 0; e < E; e++) {
    const x = transpose2d({ shape: [a, b], data: t.data.subarray(e * a * b, (e + 1) * a * b) });
    out.set(x.data, e * a * b);
  }
  return { shape: [E, b, a], data: out };
}

/** GGUF tensors (llama.cpp names, row-major shapes) for our params. */
export function ggufTensorsFromParams(config: ModelConfig, params: HostParams): GGUFTensorOut[] {
  checkParams(config, params, 'params');
  const out: GGUFTensorOut[] = [];
  const add = (name: string, t: HostTensor) => out.push({ name, shape: t.shape, data: t.data });
  const { numHeads: H, numKvHeads: K, headDim: D } = config;
  const arch = ggufArch(config);
  add('token_embd.weight', params.wte); // [V, C]: ne = [C, V], as llama.cpp wants
  if (arch === 'gpt2') add('position_embd.weight', params.wpe!);
  params.layers.forEach((l, i) => {
    const b = `blk.${i}.`;
    add(`${b}attn_norm.weight`, l.ln1.w);
    if (l.ln1.b) add(`${b}attn_norm.bias`, l.ln1.b);
    if (arch === 'gpt2') {
      add(`${b}attn_qkv.weight`, transpose2d(l.wqkv));
      add(`${b}attn_qkv.bias`, l.bqkv!);
    } else {
      const q = colsT(l.wqkv, 0, H * D), k = colsT(l.wqkv, H * D, (H + K) * D), v = colsT(l.wqkv, (H + K) * D, (H + 2 * K) * D);
      const rope = arch === 'llama' ? permuteRope : (t: HostTensor) => t;
      add(`${b}attn_q.weight`, rope(q, H));
      add(`${b}attn_k.weight`, rope(k, K));
      add(`${b}attn_v.weight`, v);
      if (l.bqkv) {
        const bias = (c0: number, c1: number): HostTensor => ({ shape: [c1 - c0], data: l.bqkv!.data.slice(c0, c1) });
        add(`${b}attn_q.bias`, rope(bias(0, H * D), H));
        add(`${b}attn_k.bias`, rope(bias(H * D, (H + K) * D), K));
        add(`${b}attn_v.bias`, bias((H + K) * D, (H + 2 * K) * D));
      }
    }
    add(`${b}attn_output.weight`, transpose2d(l.wo));
    if (l.bo) add(`${b}attn_output.bias`, l.bo);
    add(`${b}ffn_norm.weight`, l.ln2.w);
    if (l.ln2.b) add(`${b}ffn_norm.bias`, l.ln2.b);
    if (arch === 'gpt2') {
      add(`${b}ffn_up.weight`, transpose2d(l.wfc!));
      add(`${b}ffn_up.bias`, l.bfc!);
      add(`${b}ffn_down.weight`, transpose2d(l.wproj!));
      add(`${b}ffn_down.bias`, l.bproj!);
    } else if (l.router) {
      add(`${b}ffn_gate_inp.weight`, transpose2d(l.router));
      add(`${b}ffn_gate_exps.weight`, stackedT(l.egate!)); // [E, I, C]: ne = [C, I, E]
      add(`${b}ffn_up_exps.weight`, stackedT(l.eup!));
      add(`${b}ffn_down_exps.weight`, stackedT(l.edown!)); // [E, C, I]: ne = [I, C, E]
    } else {
      add(`${b}ffn_gate.weight`, transpose2d(l.wgate!));
      add(`${b}ffn_up.weight`, transpose2d(l.wup!));
      add(`${b}ffn_down.weight`, transpose2d(l.wdown!));
    }
  });
  add('output_norm.weight', params.lnf.w);
  if (params.lnf.b) add('output_norm.bias', params.lnf.b);
  if (!config.tieEmbeddings) add('output.weight', params.lmHead!); // absent: llama.cpp reuses token_embd
  return out;
}

export const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

/** A tokenizer as llama.cpp metadata: the tokenizer.ggml.* keys (and token list) to write. */
export interface GGUFVocab {
  /** tokenizer.ggml.model: "gpt2" (byte-level BPE) or "bert" (WordPiece, used for our word-level vocabularies). */
  model: 'gpt2' | 'bert';
  tokens: string[];
  types: number[];
  /** Ids by token text as written (specials included), for bos/eos/pad/unk lookups. */
  idOf: Map<string, number>;
  unkId: number | null;
  kv: [string, GGUFValue][];
}

// WordPiece's marker for "this token starts a word" (U+2581), which llama.cpp's WPM tokenizer prepends to every word.
const WORD_START = '\u2581';

/**
 * The llama.cpp vocabulary of a tokenizer.json, padded to the model's vocab size with unused "[PAD{i}]" tokens
 * (as convert_hf_to_gguf.py does).
 *
 * - Byte-level BPE (GPT-2 style) -> llama.cpp `gpt2`, tokens and merges as they are.
 * - WordLevel (our word vocabularies: Lowercase + BertPreTokenizer) -> llama.cpp `bert` (WPM). Its tokenizer
 *   lower-cases, splits on whitespace and makes every punctuation character (and ASCII symbol) a word, then
 *   matches "▁word" greedily, falling back to [UNK] for the whole word when no full match exists. With every
 *   vocabulary word stored as "▁word" and no sub-word pieces, that is exactly WordLevel: a word is one token or
 *   unknown. (It differs only on text HF keeps but WPM drops or splits: control characters, CJK ideographs.)
 */
export function ggufVocab(tokenizerJson: TokenizerJson, vocabSize: number): GGUFVocab {
  const model = tokenizerJson.model as { type?: string; vocab?: Record<string, number>; merges?: (string | string[])[]; unk_token?: string } | undefined;
  const type = model?.type;
  const pre = JSON.stringify(tokenizerJson.pre_tokenizer ?? null);
  let kind: GGUFVocab['model'];
  if (type === 'WordLevel') {
    const norm = JSON.stringify(tokenizerJson.normalizer ?? null);
    const preType = (tokenizerJson.pre_tokenizer as { type?: string } | null)?.type;
    if (preType !== 'BertPreTokenizer' || (norm !== 'null' && norm !== '{"type":"Lowercase"}'))
      throw new Error(
        `GGUF export: a WordLevel tokenizer maps onto llama.cpp's WordPiece tokenizer only with the BertPreTokenizer and an optional Lowercase normalizer ` +
          `(as wordLevelTokenizerJson builds it); got pre_tokenizer ${pre} and normalizer ${norm}`,
      );
    kind = 'bert';
  } else if (type === 'BPE' && pre.includes('"ByteLevel"')) kind = 'gpt2';
  else
    throw new Error(
      `GGUF export: supported tokenizers are byte-level BPE (GPT-2 style) and WordLevel (wordLevelTokenizerJson); got model type ${JSON.stringify(type)} with pre_tokenizer ${pre}`,
    );
  const byId = new Map<number, string>();
  for (const [tok, id] of Object.entries(model!.vocab ?? {})) byId.set(id, tok);
  const added = new Map<number, { content: string; special?: boolean }>();
  for (const a of (tokenizerJson.added_tokens ?? []) as { id: number; content: string; special?: boolean }[]) {
    added.set(a.id, a);
    byId.set(a.id, a.content);
  }
  const maxId = Math.max(-1, ...byId.keys());
  if (maxId >= vocabSize) throw new Error(`GGUF export: the tokenizer has token id ${maxId} but the model's vocab_size is ${vocabSize}`);
  const tokens: string[] = [];
  const types: number[] = [];
  const idOf = new Map<string, number>();
  for (let i = 0; i < vocabSize; i++) {
    const t = byId.get(i);
    const a = added.get(i);
    if (t === undefined) {
      tokens.push(`[PAD${i}]`);
      types.push(TOKEN_TYPE.UNUSED);
    } else if (a) {
      tokens.push(t);
      types.push(a.special ? TOKEN_TYPE.CONTROL : TOKEN_TYPE.USER_DEFINED);
    } else {
      tokens.push(kind === 'bert' ? WORD_START + t : t);
      types.push(TOKEN_TYPE.NORMAL);
    }
    if (t !== undefined) idOf.set(t, i);
  }
  const bool = (value: boolean): GGUFValue => ({ type: GGUFType.BOOL, value });
  const kv: [string, GGUFValue][] = [['tokenizer.ggml.model', strv(kind)]];
  if (kind === 'gpt2') {
    const merges = (model!.merges ?? []).map((m) => (Array.isArray(m) ? m.join(' ') : m));
    kv.push(['tokenizer.ggml.pre', strv('gpt-2')]);
    kv.push(['tokenizer.ggml.tokens', { type: GGUFType.ARRAY, arrayType: GGUFType.STRING, value: tokens }]);
    kv.push(['tokenizer.ggml.token_type', { type: GGUFType.ARRAY, arrayType: GGUFType.INT32, value: types }]);
    kv.push(['tokenizer.ggml.merges', { type: GGUFType.ARRAY, arrayType: GGUFType.STRING, value: merges }]);
  } else {
    kv.push(['tokenizer.ggml.tokens', { type: GGUFType.ARRAY, arrayType: GGUFType.STRING, value: tokens }]);
    kv.push(['tokenizer.ggml.token_type', { type: GGUFType.ARRAY, arrayType: GGUFType.INT32, value: types }]);
    kv.push(['tokenizer.ggml.normalizer.lowercase', bool(tokenizerJson.normalizer != null)]);
    kv.push(['tokenizer.ggml.normalizer.strip_accents', bool(false)]);
    // WPM appends a [SEP] by default; our tokenizers add nothing.
    kv.push(['tokenizer.ggml.add_sep_token', bool(false)]);
  }
  const unkName = kind === 'bert' ? model!.unk_token : undefined;
  const unkId = unkName !== undefined ? (idOf.get(unkName) ?? null) : null;
  return { model: kind, tokens, types, idOf, unkId, kv };
}

export interface WriteGGUFOptions {
  config: ModelConfig;
  params: HostParams;
  tokenizerJson: TokenizerJson;
  tokenizerConfig?: TokenizerConfig;
  /** general.name; default "alignlab-<arch>". */
  name?: string;
}

const u32v = (value: number): GGUFValue => ({ type: GGUFType.UINT32, value });
const f32v = (value: number): GGUFValue => ({ type: GGUFType.FLOAT32, value });
const strv = (value: string): GGUFValue => ({ type: GGUFType.STRING, value });

/** Export a model as an f32 GGUF that llama.cpp loads. Returns warnings about behaviour llama.cpp will not reproduce. */
export function writeGGUF(path: string, o: WriteGGUFOptions): { arch: string; warnings: string[] } {
  const c = o.config;
  const arch = ggufArch(c);
  const warnings: string[] = [];
  if (arch === 'qwen2' && c.numHeads * c.headDim !== c.hiddenSize)
    throw new Error(`GGUF export: llama.cpp's qwen2 needs num_attention_heads × head_dim (${c.numHeads}×${c.headDim}) = hidden_size (${c.hiddenSize})`);
  if (c.slidingWindow !== null && c.slidingWindow < c.maxPositions)
    warnings.push(`llama.cpp's "${arch}" architecture has no sliding-window attention: its outputs match only for sequences up to ${c.slidingWindow} tokens`);
  const vocab = ggufVocab(o.tokenizerJson, c.vocabSize);
  const tensors = ggufTensorsFromParams(c, o.params);
  const kv: [string, GGUFValue][] = [
    ['general.architecture', strv(arch)],
    ['general.name', strv(o.name ?? `alignlab-${c.arch}`)],
    ['general.file_type', u32v(0)], // ALL_F32
    ['general.alignment', u32v(GGUF_DEFAULT_ALIGNMENT)],
    [`${arch}.vocab_size`, u32v(c.vocabSize)],
    [`${arch}.context_length`, u32v(c.maxPositions)],
    [`${arch}.embedding_length`, u32v(c.hiddenSize)],
    [`${arch}.block_count`, u32v(c.numLayers)],
    [`${arch}.feed_forward_length`, u32v(c.intermediateSize)],
    [`${arch}.attention.head_count`, u32v(c.numHeads)],
    [`${arch}.attention.head_count_kv`, u32v(c.numKvHeads)],
    [`${arch}.attention.key_length`, u32v(c.headDim)],
    [`${arch}.attention.value_length`, u32v(c.headDim)],
  ];
  if (arch === 'gpt2') kv.push([`${arch}.attention.layer_norm_epsilon`, f32v(c.normEps)]);
  else
    kv.push(
      [`${arch}.attention.layer_norm_rms_epsilon`, f32v(c.normEps)],
      [`${arch}.rope.freq_base`, f32v(c.ropeTheta)],
      [`${arch}.rope.dimension_count`, u32v(c.headDim)],
    );
  if (c.numExperts > 0) kv.push([`${arch}.expert_count`, u32v(c.numExperts)], [`${arch}.expert_used_count`, u32v(c.expertsPerToken)]);
  kv.push(...vocab.kv);
  // Special ids: the model config wins, then tokenizer_config's token names.
  const tc = o.tokenizerConfig ?? {};
  const named = (k: 'bos_token' | 'eos_token' | 'pad_token' | 'unk_token'): number | null => {
    const v = tc[k];
    const n = typeof v === 'string' ? v : v && typeof v === 'object' ? v.content : undefined;
    return n === undefined ? null : (vocab.idOf.get(n) ?? null);
  };
  const eos = c.eosTokenId ?? named('eos_token');
  const bos = c.bosTokenId ?? named('bos_token') ?? eos; // GPT-2 style: one <|endoftext|> for both
  const pad = c.padTokenId ?? named('pad_token');
  const unk = vocab.unkId ?? named('unk_token');
  if (bos !== null) kv.push(['tokenizer.ggml.bos_token_id', u32v(bos)]);
  if (eos !== null) kv.push(['tokenizer.ggml.eos_token_id', u32v(eos)]);
  if (pad !== null) kv.push(['tokenizer.ggml.padding_token_id', u32v(pad)]);
  if (unk !== null) kv.push(['tokenizer.ggml.unknown_token_id', u32v(unk)]);
  // Our tokenizers add no BOS/EOS by themselves (no post-processor template): keep llama.cpp the same.
  kv.push(['tokenizer.ggml.add_bos_token', { type: GGUFType.BOOL, value: false }], ['tokenizer.ggml.add_eos_token', { type: GGUFType.BOOL, value: false }]);
  const chat = tc.chat_template;
  if (typeof chat === 'string') kv.push(['tokenizer.chat_template', strv(chat)]);
  writeGGUFFile(path, kv, tensors);
  return { arch, warnings };
}
