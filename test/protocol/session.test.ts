import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { clientSession, FrameOpener, FrameSealer, frameTag, nodeSession, SealError, sessionKey, TAG_BYTES } from '../../src/protocol/session.js';

const SECRET = Buffer.from('correct horse battery staple 42');
const NODE_NONCE = 'bm9kZS1ub25jZS0wMDAwMDAwMDAwMDAwMDAwMDAwMA==';
const CLIENT_NONCE = 'Y2xpZW50LW5vbmNlLTAwMDAwMDAwMDAwMDAwMDAwMDA=';

describe('sealed frames (protocol 2)', () => {
  it('matches the worked example of docs/protocol.md (cross-checked with openssl)', () => {
    const key = sessionKey(SECRET, NODE_NONCE, CLIENT_NONCE);
    expect(key.toString('hex')).toBe('fcb21986d9872f4f18d7cc898dcb5a75ed6bbf5e73f9654722336d4fec0970e6');
    const c2n = Buffer.from('{"type":"request","id":1,"op":"status","params":{}}');
    const n2c = Buffer.from('{"type":"result","id":1,"result":null}');
    expect(frameTag(key, 'c2n', 0n, c2n).toString('hex')).toBe('67a8a01a9bf78895faada30effc53e38f77e649ea782f9fac73721f40a81e5ce');
    expect(frameTag(key, 'n2c', 0n, n2c).toString('hex')).toBe('9c5561c5491c16974932fdf0f054878287a9faa04657760931d8b1f154d8c61a');
    const sealed = new FrameSealer(key, 'c2n').seal(c2n);
    expect(sealed.subarray(0, c2n.length).equals(c2n)).toBe(true);
    expect(sealed.length).toBe(c2n.length + TAG_BYTES);
  });

  it('opens every frame of a session in order, both ways', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 20 }), (bodies) => {
        const key = sessionKey(SECRET, NODE_NONCE, CLIENT_NONCE);
        const client = clientSession(key);
        const node = nodeSession(key);
        for (const b of bodies) {
          const body = Buffer.from(b);
          expect(node.opener.open(client.sealer.seal(body)).equals(body)).toBe(true);
          expect(client.opener.open(node.sealer.seal(body)).equals(body)).toBe(true);
        }
      }),
    );
  });

  it('refuses an injected, replayed, reordered, dropped, reflected, altered or truncated frame', () => {
    const key = sessionKey(SECRET, NODE_NONCE, CLIENT_NONCE);
    const frames = ['a', 'b', 'c'].map((t) => Buffer.from(`{"n":"${t}"}`));
    const fresh = () => ({ sealer: new FrameSealer(key, 'c2n'), opener: new FrameOpener(key, 'c2n') });
    const sealedAll = () => {
      const s = new FrameSealer(key, 'c2n');
      return frames.map((f) => s.seal(f));
    };
    const [f0, f1, f2] = sealedAll() as [Buffer, Buffer, Buffer];
    const refuses = (sequence: Buffer[]) => {
      const o = fresh().opener;
      return (() => {
        for (const f of sequence) o.open(f);
      }) as () => void;
    };
    expect(refuses([f0, f1, f2])).not.toThrow();
    // injected: sealed with a key derived from another secret
    const other = new FrameSealer(sessionKey(Buffer.from('another secret, 16+ bytes'), NODE_NONCE, CLIENT_NONCE), 'c2n');
    expect(refuses([other.seal(frames[0]!)])).toThrow(SealError);
    // injected: a plain frame with 32 made-up bytes
    expect(refuses([Buffer.concat([frames[0]!, Buffer.alloc(32)])])).toThrow(SealError);
    expect(refuses([f0, f0])).toThrow(SealError); // replayed
    expect(refuses([f1, f0])).toThrow(SealError); // reordered
    expect(refuses([f0, f2])).toThrow(SealError); // dropped
    // reflected: a node → client frame sent back to the node
    expect(refuses([new FrameSealer(key, 'n2c').seal(frames[0]!)])).toThrow(SealError);
    const altered = Buffer.from(f0);
    altered[2] = altered[2]! ^ 1;
    expect(refuses([altered])).toThrow(SealError);
    expect(refuses([f0.subarray(0, 31)])).toThrow(SealError);
    // another session's key (another node nonce) never verifies
    const s2 = new FrameSealer(sessionKey(SECRET, CLIENT_NONCE, NODE_NONCE), 'c2n');
    expect(refuses([s2.seal(frames[0]!)])).toThrow(SealError);
  });
});
