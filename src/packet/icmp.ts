// ICMPv4 messages (RFC 792): type, code, checksum over the whole message, 4 bytes of
// type-specific data ("rest of header"), then the body (errors quote the offending packet).
import { checksumValid, internetChecksum } from './checksum.js';

export const ICMP_TYPE = { ECHO_REPLY: 0, DEST_UNREACH: 3, ECHO_REQUEST: 8, TIME_EXCEEDED: 11 } as const;
export const ICMP_UNREACH_CODE = { NET: 0, HOST: 1, PROTOCOL: 2, PORT: 3, FRAG_NEEDED: 4 } as const;

export interface IcmpSpec {
  type: number;
  code: number;
  /** 4 bytes after the checksum (echo: id + sequence). Default zeros. */
  rest?: Buffer;
}

export interface IcmpHeader {
  type: number;
  code: number;
  checksum: number;
  checksumValid: boolean;
  rest: Buffer;
}

export function encodeIcmp(spec: IcmpSpec, body: Buffer): Buffer {
  const rest = spec.rest ?? Buffer.alloc(4);
  if (rest.length !== 4) throw new RangeError(`ICMP rest of header: ${rest.length} bytes, must be 4`);
  const msg = Buffer.alloc(8 + body.length);
  msg[0] = spec.type;
  msg[1] = spec.code;
  rest.copy(msg, 4);
  body.copy(msg, 8);
  msg.writeUInt16BE(internetChecksum(msg), 2);
  return msg;
}

export function decodeIcmp(msg: Buffer): { header: IcmpHeader; payload: Buffer } {
  if (msg.length < 8) throw new RangeError(`packet: ICMP header truncated: ${msg.length} bytes, needs 8`);
  const header: IcmpHeader = {
    type: msg[0] ?? 0,
    code: msg[1] ?? 0,
    checksum: msg.readUInt16BE(2),
    checksumValid: checksumValid(msg),
    rest: Buffer.from(msg.subarray(4, 8)),
  };
  return { header, payload: Buffer.from(msg.subarray(8)) };
}
