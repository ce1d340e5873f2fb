// One ParsedService → its DesiredServicePorts (one per port per family with a cluster IP).
import { categorizeEndpoints } from './endpoint-sets.js';
import type { ParsedSlice } from './endpoint-slices.js';
import { mergeEndpoints } from './endpoints.js';
import { frontendsFor, nodePortAddresses, type SourcedFrontend } from './frontends.js';
import type { CheckedConfig } from './config.js';
import type { OwnNode } from './node.js';
import { NO_RANGES, sourceRangesForFamily } from './service-external.js';
import type { ParsedService } from './service-parse.js';
import type { ObjectReport } from './validate.js';
import type { DesiredServicePort } from './types.js';
import { exact, flatText, type Exact, type FlatText } from './flat-text.js';

/**
 * What settling conflicts needs of a draft's Service: its age and where its errors go. Not the
 * ParsedService itself, which the incremental model would then keep for every Service (~500
 * bytes each; a Service is parsed again from its object when it changes).
 */
export interface DraftOwner {
  createdAtMs: number;
  report: ObjectReport;
}

/** A DesiredServicePort before frontend conflicts across Services are settled. */
export interface PortDraft {
  port: DesiredServicePort;
  frontends: Exact<SourcedFrontend>;
  service: DraftOwner;
}

export interface DraftContext {
  config: CheckedConfig;
  node: OwnNode;
  nodeName: string;
  slicesByService: ReadonlyMap<string, ParsedSlice[]>;
}

export function servicePortKey(namespace: string, name: string, portName: string, protocol: string, family: string): FlatText {
  return flatText(namespace, '/', name, ':', portName, '/', protocol, '/', family);
}

export function draftServicePorts(service: ParsedService, ctx: DraftContext): Exact<PortDraft> {
  const drafts: PortDraft[] = [];
  const owner: DraftOwner = { createdAtMs: service.createdAtMs, report: service.report };
  const slices = ctx.slicesByService.get(`${service.namespace}/${service.name}`) ?? [];
  for (const family of ctx.config.families) {
    // One view per family: a Service without a cluster IP in this family is not in this view.
    if (!service.clusterIps[family]) continue;
    const nodeAddresses = nodePortAddresses(ctx.node, family, ctx.config.nodePortCidrs, ctx.config.hostAddresses);
    const sourceRanges = sourceRangesForFamily(service.sourceRanges, family);
    const hasVipOfFamily = service.loadBalancerIngress.some((e) => e.ip.family === family);
    if (sourceRanges.closed && hasVipOfFamily && service.type === 'LoadBalancer' && Array.isArray(service.sourceRanges)) {
      service.report.error(
        'spec.loadBalancerSourceRanges',
        service.sourceRanges.map((c) => c.canonical),
        `has no ${family} range: every ${family} client of the LoadBalancer VIPs is dropped (fail closed)`,
      );
    }
    for (const servicePort of service.ports) {
      const frontends = frontendsFor({
        service,
        port: servicePort,
        family,
        nodeAddresses,
        loadBalancerAllowed: sourceRanges.allowed,
      });
      const externallyAccessible = frontends.some((f) => f.kind !== 'ClusterIP');
      const endpoints = mergeEndpoints(slices, family, servicePort.name, servicePort.protocol, ctx.nodeName);
      const sets = categorizeEndpoints(endpoints, ctx.nodeName, ctx.node.zone);
      drafts.push({
        service: owner,
        frontends,
        port: {
          key: servicePortKey(service.namespace, service.name, servicePort.name, servicePort.protocol, family),
          namespace: service.namespace,
          name: service.name,
          portName: servicePort.name,
          protocol: servicePort.protocol,
          family,
          frontends: [],
          clusterBackends: sets.cluster,
          localBackends: sets.local,
          internalLocal: service.internalPolicyLocal,
          externalLocal: service.externalPolicyLocal && externallyAccessible,
          affinityTimeoutSec: service.affinityTimeoutSec,
          healthCheckNodePort: service.healthCheckNodePort,
          loadBalancerSourceRanges: service.type === 'LoadBalancer' ? sourceRanges.ranges : NO_RANGES,
          ...(service.type === 'LoadBalancer' && sourceRanges.closed ? { loadBalancerSourcesClosed: true } : {}),
        },
      });
    }
  }
  return exact(drafts);
}
