import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeFrame, FrameDecoder, FrameError } from '../../src/protocol/framing.js';

describe('framing', () => {
  it('round-trips any JSON however the bytes are split into chunks', () => {
    fc.assert(
      fc.property(fc.array(fc.jsonValue(), { minLength: 1, maxLength: 5 }), fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 20 }), (values, cuts) => {
        const bytes = Buffer.concat(values.map((v) => encodeFrame(v)));
        const decoder = new FrameDecoder();
        const out: unknown[] = [];
        let at = 0;
        for (let i = 0; at < bytes.length; i++) {
          const n = cuts[i % cuts.length]!;
          out.push(...decoder.push(bytes.subarray(at, at + n)));
          at += n;
        }
        expect(out).toEqual(values.map((v) => JSON.parse(JSON.stringify(v))));
        expect(decoder.pending).toBe(0);
      }),
      { numRuns: 300 },
    );
  });

  it('refuses an oversized frame from its header alone, invalid UTF-8 and invalid JSON', () => {
    const header = Buffer.alloc(4);
    header.writeUInt32BE(2000);
    expect(() => new FrameDecoder(1000).push(header)).toThrow(FrameError);
    const frame = (body: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, body.length]), body]);
    expect(() => new FrameDecoder().push(frame(Buffer.from([0xff, 0xfe])))).toThrow(/UTF-8/);
    expect(() => new FrameDecoder().push(frame(Buffer.from('{"a":')))).toThrow(/not JSON/);
  });
});
