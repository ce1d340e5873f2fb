// Issue 13 §2, end to end: a node without kube-proxy. The credentials name the API server by the
// `kubernetes` Service's ClusterIP (what KUBERNETES_SERVICE_HOST is in a pod), which nothing
// translates before Sluice has synced: the agent cannot start that way. With --k8s-api-server set
// to the real address (here a node address in the sandbox, HTTPS, served nowhere else) it syncs
// from empty maps, programs them, and the traffic flows.
import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../../src/testbed/exec.js';
import { createAgentBed, expectServed, nodeObject, portKey, service, slice } from './agent-bed.js';

/** The `kubernetes` Service's ClusterIP: no route, no server, no map entry in the sandbox. */
const KUBERNETES_CLUSTER_IP = '10.96.0.1';
/** Where the API server really is: a dummy interface's address in the node namespace. */
const API_ADDRESS = '172.20.0.10';
const VIP = '10.96.0.30';
const HTTP = [{ name: 'http', port: 80 }];

t.test('the agent reaches the API server at its real address, not its ClusterIP', async (t) => {
  const bed = await createAgentBed(t, { source: 'api', apiAddress: API_ADDRESS });
  if (!bed) return;
  const api = bed.api!;
  t.ok(api.url.startsWith(`https://${API_ADDRESS}:`), `the fake API server serves HTTPS at the node address only (${api.url})`);
  await api.apply(nodeObject());
  // What the in-cluster configuration amounts to: the ClusterIP, the cluster CA, the token.
  const inCluster = join(bed.work, 'in-cluster.kubeconfig');
  await writeFile(inCluster, [
    'apiVersion: v1', 'kind: Config',
    'clusters:', `- name: in-cluster\n  cluster:\n    server: https://${KUBERNETES_CLUSTER_IP}:443\n    certificate-authority-data: ${Buffer.from(api.ca ?? '').toString('base64')}`,
    'users:', `- name: sa\n  user:\n    token: ${api.token}`,
    'contexts:', '- name: c\n  context:\n    cluster: in-cluster\n    user: sa',
    'current-context: c', '',
  ].join('\n'), { mode: 0o600 });

  await t.test('through the ClusterIP alone the agent never syncs (the deadlock)', async (t) => {
    const listsBefore = await api.call<number>('listCount');
    const agent = bed.startAgent(['--kubeconfig', inCluster]);
    // Stopped even when a check below fails: left running, it would keep the admin socket and
    // the next subtest's agent would refuse to start.
    t.teardown(() => agent.kill('SIGTERM'));
    await agent.waitForLog((l) => l.component === 'k8s' && /list|watch|connect|ENETUNREACH|ECONNREFUSED|EHOSTUNREACH/i.test(JSON.stringify(l)) && l.level !== 'info',
      'a failed list of the API server', 20_000);
    const status = await bed.status();
    t.not(status.sync.state, 'synced', 'not synced', { sync: status.sync });
    t.equal(await api.call<number>('listCount'), listsBefore, 'the API server was never reached');
    await agent.kill('SIGTERM');
  });

  await t.test('with --k8s-api-server the agent syncs from empty maps and programs them', async (t) => {
    const agent = bed.startAgent(['--kubeconfig', inCluster, '--k8s-api-server', `${api.url}`]);
    const synced = await bed.waitForSynced();
    t.equal(synced.sync.state, 'synced');
    t.ok((await api.call<number>('listCount')) >= 3, 'Services, EndpointSlices and Nodes listed at the real address');
    await api.apply(service('web', VIP, HTTP));
    await api.apply(slice('web-1', 'web', ['web-a', 'web-b'], HTTP));
    await bed.waitForBackends(portKey('web', 'http'), ['web-a', 'web-b'], 80);
    expectServed(t, await bed.traffic('connect-time', VIP, 80, 10), ['web-a', 'web-b'], 'connect-time after the bootstrap');
    t.notOk(agent.logs.some((l) => JSON.stringify(l).includes(api.token)), 'the token never shows up in the logs');
  });

  await t.test('a bad address is refused before anything starts, naming the flag and the value', async (t) => {
    const bad = await run(bed.agentArgv([...bed.agentFlags(), '--k8s-api-server', 'https://api server:443']), { allowFailure: true, timeoutMs: 20_000 });
    t.equal(bad.code, 2, 'exit code 2');
    t.match(bad.stderr, /--k8s-api-server: "https:\/\/api server:443" is not an API server address/);
  });
});
