/**
 * Webhook SSRF defences: every special-use address form is classified internal (IPv6 embeddings of
 * IPv4 included), and the delivery agent checks the address a connection is actually made to — a
 * name whose DNS answers a public address on submit and loopback at delivery (rebinding) never
 * reaches the loopback server. DNS is a lookup function given to the unit; the server is real.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { LookupFunction, WebhookTargetRefused, isInternalAddress, webhookAgent, webhookTargetProblem } from '@farm/platform';

describe('isInternalAddress', () => {
  it.each([
    ['IPv4 loopback', '127.0.0.1'],
    ['IPv4 "this network"', '0.0.0.0'],
    ['private 10/8', '10.1.2.3'],
    ['private 172.16/12', '172.20.0.1'],
    ['private 192.168/16', '192.168.1.1'],
    ['link-local (cloud metadata)', '169.254.169.254'],
    ['carrier-grade NAT', '100.64.0.1'],
    ['IETF protocol assignments', '192.0.0.8'],
    ['documentation', '198.51.100.7'],
    ['benchmarking', '198.18.0.1'],
    ['AS112', '192.175.48.1'],
    ['multicast', '224.0.0.1'],
    ['reserved', '240.0.0.1'],
    ['broadcast', '255.255.255.255'],
    ['IPv6 loopback', '::1'],
    ['IPv6 unspecified', '::'],
    ['IPv4-mapped loopback', '::ffff:127.0.0.1'],
    ['IPv4-mapped loopback, hex', '::ffff:7f00:1'],
    ['IPv4-mapped private', '::ffff:10.0.0.1'],
    ['IPv4-compatible loopback', '::127.0.0.1'],
    ['IPv4-translated (SIIT)', '::ffff:0:7f00:1'],
    ['NAT64 well-known prefix', '64:ff9b::7f00:1'],
    ['NAT64 local-use prefix', '64:ff9b:1::a00:1'],
    ['6to4 of loopback', '2002:7f00:1::'],
    ['6to4 of a public address', '2002:808:808::1'],
    ['Teredo', '2001:0:4136:e378:8000:63bf:3fff:fdd2'],
    ['IETF protocol assignments (IPv6)', '2001:2::1'],
    ['documentation (IPv6)', '2001:db8::1'],
    ['documentation 3fff::/20', '3fff::1'],
    ['discard-only', '100::1'],
    ['unique local', 'fd12:3456::1'],
    ['link-local IPv6', 'fe80::1'],
    ['multicast IPv6', 'ff02::1'],
    ['not an address', 'localhost'],
  ])('refuses %s (%s)', (_name, address) => {
    expect(isInternalAddress(address)).toBe(true);
  });

  it.each(['8.8.8.8', '93.184.216.34', '::ffff:8.8.8.8', '2606:4700:4700::1111', '2a00:1450:4001:80b::200e'])('allows the public address %s', (address) => {
    expect(isInternalAddress(address)).toBe(false);
  });
});

describe('the delivery agent', () => {
  let server: http.Server;
  let port: number;
  let received = 0;
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      received++;
      req.resume();
      res.writeHead(204).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise((resolve) => server.close(resolve)));

  /** DNS of `hook.example` that answers each of `answers` in turn (the last one from then on). */
  function rebindingDns(...answers: string[]): { lookup: LookupFunction; asked: () => number } {
    let asked = 0;
    const lookup: LookupFunction = (_hostname, options, callback) => {
      const address = answers[Math.min(asked++, answers.length - 1)];
      const family = address.includes(':') ? 6 : 4;
      if (options.all) callback(null, [{ address, family }]);
      else callback(null, address, family);
    };
    return { lookup, asked: () => asked };
  }

  const post = (url: string, agent: ReturnType<typeof webhookAgent>) => request(url, { method: 'POST', body: '{}', dispatcher: agent });

  it('refuses at connect time a name that resolved to a public address on submit and to loopback now (rebinding)', async () => {
    const dns = rebindingDns('93.184.216.34', '127.0.0.1');
    const url = `http://hook.example:${port}/hook`;
    expect(await webhookTargetProblem(url, false, dns.lookup)).toBeNull(); // submit: public, accepted
    const agent = webhookAgent(false, dns.lookup);
    const refused = post(url, agent);
    await expect(refused).rejects.toBeInstanceOf(WebhookTargetRefused); // the dispatcher does not retry these
    await expect(refused).rejects.toThrow(/resolves to a private or loopback address.*127\.0\.0\.1/);
    await agent.close();
    expect(dns.asked()).toBe(2); // the connection asked DNS itself
    expect(received).toBe(0);
  });

  it.each(['127.0.0.1', '[::ffff:127.0.0.1]'])('refuses a literal internal address (%s) without connecting', async (host) => {
    const agent = webhookAgent(false);
    await expect(post(`http://${host}:${port}/hook`, agent)).rejects.toThrow(/private or loopback/);
    await agent.close();
    expect(received).toBe(0);
  });

  it('refuses names that resolve to IPv6 embeddings of loopback', async () => {
    for (const address of ['::ffff:127.0.0.1', '64:ff9b::7f00:1', '::127.0.0.1']) {
      const agent = webhookAgent(false, rebindingDns(address).lookup);
      await expect(post(`http://hook.example:${port}/hook`, agent)).rejects.toThrow(/private or loopback/);
      await agent.close();
    }
    expect(received).toBe(0);
  });

  it('delivers to loopback when private targets are allowed', async () => {
    const agent = webhookAgent(true);
    const res = await post(`http://127.0.0.1:${port}/hook`, agent);
    await res.body.dump();
    await agent.close();
    expect(res.statusCode).toBe(204);
    expect(received).toBe(1);
  });
});
