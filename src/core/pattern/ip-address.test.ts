import { describe, expect, it } from 'vitest';
import { inCidr, parseCidr, parseIpAddress } from './ip-address.js';

describe('ip address', () => {
  it('ip address - reads IPv4 and IPv6 forms', () => {
    expect(parseIpAddress('10.0.0.255')).toEqual([10, 0, 0, 255]);
    expect(parseIpAddress('::1')).toEqual([...new Array(15).fill(0), 1]);
    expect(parseIpAddress('2001:0db8:1234:1a00:0000:0000:0000:0000')).toEqual(
      parseIpAddress('2001:db8:1234:1a00::'),
    );
    expect(parseIpAddress('::ffff:10.0.0.1')?.slice(10)).toEqual([0xff, 0xff, 10, 0, 0, 1]);
    expect(parseIpAddress('1:2:3:4:5:6:7:8')).toHaveLength(16);
  });

  it('ip address - refuses what is not an address', () => {
    for (const text of [
      '10.0.0.256',
      '10.0.0',
      '1.2.3.4.5',
      'xx.11.xx',
      '1::2::3',
      '1:2:3:4:5:6:7:8:9',
      '1:2:3:4:5:6:7::8',
      'fe80::1%eth0',
      '12345::',
      '',
      'example.com',
    ]) {
      expect([text, parseIpAddress(text)]).toEqual([text, undefined]);
    }
  });

  it('ip address - cidr blocks contain the addresses that share their prefix', () => {
    const block = parseCidr('10.0.0.0/24');
    if (typeof block === 'string') throw new Error(block);
    expect(inCidr(block, [10, 0, 0, 0])).toBe(true);
    expect(inCidr(block, [10, 0, 0, 255])).toBe(true);
    expect(inCidr(block, [10, 0, 1, 0])).toBe(false);
    const odd = parseCidr('2001:db8:1234:1a00::/57');
    if (typeof odd === 'string') throw new Error(odd);
    expect(inCidr(odd, parseIpAddress('2001:db8:1234:1a7f::1')!)).toBe(true);
    expect(inCidr(odd, parseIpAddress('2001:db8:1234:1a80::')!)).toBe(false);
    expect(inCidr(odd, [10, 0, 0, 1])).toBe(false);
  });

  it('ip address - cidr explains what is wrong with a block', () => {
    expect(parseCidr('10.0.0.0')).toMatch(/one "\/"/);
    expect(parseCidr('bad-/64filter')).toMatch(/not an IPv4 or IPv6 address/);
    expect(parseCidr('10.0.0.0/33')).toMatch(/0 to 32/);
    expect(parseCidr('::/129')).toMatch(/0 to 128/);
  });
});
