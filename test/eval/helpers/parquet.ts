// A minimal Parquet writer for test fixtures: one row group, required columns, PLAIN encoding,
// uncompressed data pages v1, metadata in Thrift compact protocol (parquet-format's parquet.thrift).
// Small enough to read against the spec; hyparquet (which nobody here wrote) must read it back.
import { writeFileSync } from 'node:fs';

export type ParquetColumn = { name: string; type: 'string'; values: string[] } | { name: string; type: 'int64'; values: number[] } | { name: string; type: 'double'; values: number[] };

class Compact {
  bytes: number[] = [];
  private last: number[] = [0];
  varint(n: bigint | number) {
    let v = BigInt(n);
    while (v >= 0x80n) {
      this.bytes.push(Number((v & 0x7fn) | 0x80n));
      v >>= 7n;
    }
    this.bytes.push(Number(v));
  }
  zigzag(n: number | bigint) {
    const v = BigInt(n);
    this.varint(v >= 0n ? v << 1n : ((-v) << 1n) - 1n);
  }
  field(id: number, type: number) {
    const delta = id - this.last[this.last.length - 1]!;
    if (delta > 0 && delta <= 15) this.bytes.push((delta << 4) | type);
    else {
      this.bytes.push(type);
      this.zigzag(id);
    }
    this.last[this.last.length - 1] = id;
  }
  i32(id: number, v: number) {
    this.field(id, 5);
    this.zigzag(v);
  }
  i64(id: number, v: number) {
    this.field(id, 6);
    this.zigzag(v);
  }
  binary(id: number, s: string) {
    this.field(id, 8);
    const b = Buffer.from(s, 'utf8');
    this.varint(b.length);
    this.bytes.push(...b);
  }
  struct(id: number, body: () => void) {
    this.field(id, 12);
    this.begin(body);
  }
  begin(body: () => void) {
    this.last.push(0);
    body();
    this.bytes.push(0); // stop
    this.last.pop();
  }
  list(id: number, elemType: number, n: number, each: (i: number) => void) {
    this.field(id, 9);
    if (n < 15) this.bytes.push((n << 4) | elemType);
    else {
      this.bytes.push(0xf0 | elemType);
      this.varint(n);
    }
    for (let i = 0; i < n; i++) each(i);
  }
}

const TYPE = { string: 6, int64: 2, double: 5 } as const; // BYTE_ARRAY, INT64, DOUBLE

function plain(c: ParquetColumn): Buffer {
  if (c.type === 'string')
    return Buffer.concat(
      c.values.map((s) => {
        const b = Buffer.from(s, 'utf8');
        const len = Buffer.alloc(4);
        len.writeUInt32LE(b.length);
        return Buffer.concat([len, b]);
      }),
    );
  const out = Buffer.alloc(8 * c.values.length);
  c.values.forEach((v, i) => (c.type === 'int64' ? out.writeBigInt64LE(BigInt(v), 8 * i) : out.writeDoubleLE(v, 8 * i)));
  return out;
}

export function writeParquet(file: string, columns: ParquetColumn[]): void {
  const n = columns[0]!.values.length;
  const parts: Buffer[] = [Buffer.from('PAR1')];
  let offset = 4;
  const chunks: { offset: number; size: number; col: ParquetColumn }[] = [];
  for (const col of columns) {
    const data = plain(col);
    const h = new Compact();
    h.begin(() => {
      h.i32(1, 0); // DATA_PAGE
      h.i32(2, data.length);
      h.i32(3, data.length);
      h.struct(5, () => {
        h.i32(1, n);
        h.i32(2, 0); // PLAIN
        h.i32(3, 3); // RLE (no levels: required column)
        h.i32(4, 3);
      });
    });
    const page = Buffer.concat([Buffer.from(h.bytes), data]);
    chunks.push({ offset, size: page.length, col });
    parts.push(page);
    offset += page.length;
  }
  const m = new Compact();
  m.begin(() => {
    m.i32(1, 1);
    m.list(2, 12, columns.length + 1, (i) => {
      m.begin(() => {
        if (i === 0) {
          m.binary(4, 'schema');
          m.i32(5, columns.length);
        } else {
          const c = columns[i - 1]!;
          m.i32(1, TYPE[c.type]);
          m.i32(3, 0); // REQUIRED
          m.binary(4, c.name);
          if (c.type === 'string') m.i32(6, 0); // UTF8
        }
      });
    });
    m.i64(3, n);
    m.list(4, 12, 1, () => {
      m.begin(() => {
        m.list(1, 12, chunks.length, (i) => {
          const ch = chunks[i]!;
          m.begin(() => {
            m.i64(2, ch.offset);
            m.struct(3, () => {
              m.i32(1, TYPE[ch.col.type]);
              m.list(2, 5, 1, () => m.zigzag(0));
              m.list(3, 8, 1, () => {
                const b = Buffer.from(ch.col.name, 'utf8');
                m.varint(b.length);
                m.bytes.push(...b);
              });
              m.i32(4, 0); // UNCOMPRESSED
              m.i64(5, n);
              m.i64(6, ch.size);
              m.i64(7, ch.size);
              m.i64(9, ch.offset);
            });
          });
        });
        m.i64(2, chunks.reduce((a, c) => a + c.size, 0));
        m.i64(3, n);
      });
    });
  });
  const meta = Buffer.from(m.bytes);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(meta.length);
  parts.push(meta, len, Buffer.from('PAR1'));
  writeFileSync(file, Buffer.concat(parts));
}
