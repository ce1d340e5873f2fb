// Two Service ports must never claim the same ip:port/protocol: the dataplane keys frontends by
// it. The API server prevents most collisions (cluster IPs, node ports are allocated) but not
// externalIPs (any user can name any address, CVE-2020-8554) and not manifest files.
import type { PortDraft } from './desired-port.js';
import { exact, flatText, type FlatText } from './flat-text.js';

/** What two frontends must not share: `ip|port|protocol` (kept per draft by the incremental model). */
export function claimKey(ip: string, port: number, protocol: string): FlatText {
  return flatText(ip, '|', port, '|', protocol);
}

/**
 * The oldest Service (metadata.creationTimestamp; then by key) keeps a contested frontend: a
 * newcomer cannot take traffic away from a running Service. The loser's frontend is reported
 * and dropped; the rest of that Service port is still programmed.
 */
export function dropConflictingFrontends(drafts: readonly PortDraft[]): void {
  const order = [...drafts].sort(
    (a, b) => a.service.createdAtMs - b.service.createdAtMs || (a.port.key < b.port.key ? -1 : a.port.key > b.port.key ? 1 : 0),
  );
  const owners = new Map<string, string>();
  for (const draft of order) {
    draft.frontends = exact(draft.frontends.filter((f) => {
      const claim = claimKey(f.ip, f.port, draft.port.protocol);
      const owner = owners.get(claim);
      if (owner === undefined) {
        owners.set(claim, draft.port.key);
        return true;
      }
      draft.service.report.error(
        f.field,
        f.ip,
        `${f.kind} frontend ${f.ip}:${f.port}/${draft.port.protocol} is already used by ${owner}; not programmed for ${draft.port.key}`,
      );
      return false;
    }));
  }
}
