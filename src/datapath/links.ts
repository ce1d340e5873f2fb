// Listing the network interfaces (links) of a network namespace through netlink, with
// `ip -j link show` (iproute2 is required already). Not /sys/class/net: a sysfs mount shows
// the links of the namespace it was mounted in, which is not the process's own when the agent
// was started with `nsenter --net` (or any setns) and no fresh sysfs. Netlink always answers
// for the namespace of the asking process.
import { runCommand } from './command.js';


export interface Link {
  ifname: string;
  ifindex: number;
}

/** `argv` run inside the network namespace at path `netns` (this process's own when undefined). */
export const argvInNetns = (netns: string | undefined, argv: string[]): string[] => (netns ? ['nsenter', `--net=${netns}`, ...argv] : argv);

/** Parses `ip -j link show`: every link's name and ifindex, in ifindex order. */
export function parseIpLinkJson(text: string): Link[] {
  const raw = JSON.parse(text) as unknown;
  if (!Array.isArray(raw)) throw new Error(`ip -j link show: expected a JSON array, got ${text.slice(0, 80)}`);
  const links: Link[] = [];
  for (const entry of raw as { ifname?: unknown; ifindex?: unknown }[]) {
    if (typeof entry?.ifname !== 'string' || typeof entry.ifindex !== 'number') {
      throw new Error(`ip -j link show: an entry without ifname/ifindex: ${JSON.stringify(entry).slice(0, 120)}`);
    }
    links.push({ ifname: entry.ifname, ifindex: entry.ifindex });
  }
  return links.sort((a, b) => a.ifindex - b.ifindex);
}

/** The links of this process's network namespace (or of the namespace at path `netns`). */
export async function listLinks(netns?: string): Promise<Link[]> {
  const argv = argvInNetns(netns, ['ip', '-j', 'link', 'show']);
  const { stdout } = await runCommand(argv);
  return parseIpLinkJson(stdout);
}
