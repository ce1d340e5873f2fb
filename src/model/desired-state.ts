// computeDesiredState: (Services, EndpointSlices, Nodes, node name, config) → what the dataplane
// programs, following kube-proxy semantics. Pure, deterministic (sorted output), never throws.
import { checkConfig, type CheckedConfig } from './config.js';
import { dropConflictingFrontends } from './conflicts.js';
import { draftServicePorts, type PortDraft } from './desired-port.js';
import { NO_ITEMS } from './flat-text.js';
import { indexEndpointSlices } from './endpoint-slices.js';
import { toFrontend } from './frontends.js';
import { readOwnNode } from './node.js';
import { parseService, type ParsedService } from './service-parse.js';
import type { DesiredServicePort, ModelError, ModelInput, ModelResult } from './types.js';
import { get, guarded, ObjectReport } from './validate.js';

function inputList(r: ObjectReport, input: unknown, key: string): readonly unknown[] {
  const value = get(input, key);
  if (Array.isArray(value)) return value;
  if (value !== undefined && value !== null) r.error(key, value, 'must be a list; read as empty');
  return [];
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Parsed Services sorted by namespace/name; a repeated namespace/name is reported and skipped. */
function parseServices(raw: readonly unknown[], config: CheckedConfig, sink: ModelError[]): ParsedService[] {
  const parsed: ParsedService[] = [];
  raw.forEach((item, index) => {
    const service = guarded(sink, 'Service', item, null, () => parseService(item, index, config, sink));
    if (service) parsed.push(service);
  });
  parsed.sort((a, b) => compareText(a.namespace, b.namespace) || compareText(a.name, b.name));
  return parsed.filter((service, i) => {
    const previous = parsed[i - 1];
    if (previous?.namespace !== service.namespace || previous.name !== service.name) return true;
    service.report.error('metadata.name', service.name, 'is a duplicate; skipped');
    return false;
  });
}

export function computeDesiredState(input: ModelInput): ModelResult {
  const errors: ModelError[] = [];
  const r = new ObjectReport('ModelInput', 'input', errors);
  const nodeNameValue = get(input, 'nodeName');
  const nodeName = typeof nodeNameValue === 'string' ? nodeNameValue : '';
  if (nodeName === '') r.error('nodeName', nodeNameValue, 'must be a non-empty string');
  const config = checkConfig(get(input, 'config'), errors);
  const node = readOwnNode(inputList(r, input, 'nodes'), nodeName, errors);
  const slicesByService = indexEndpointSlices(inputList(r, input, 'endpointSlices'), errors);
  const services = parseServices(inputList(r, input, 'services'), config, errors);

  const ctx = { config, node, nodeName, slicesByService };
  const drafts: PortDraft[] = [];
  for (const service of services) {
    drafts.push(...guarded(errors, 'Service', { metadata: service }, NO_ITEMS, () => draftServicePorts(service, ctx)));
  }
  dropConflictingFrontends(drafts);
  drafts.sort((a, b) => compareText(a.port.key, b.port.key));
  const state = new Map<string, DesiredServicePort>();
  for (const draft of drafts) {
    draft.port.frontends = draft.frontends.map(toFrontend);
    state.set(draft.port.key, draft.port);
  }
  // Sorted too, so the same objects give the same errors whatever their order in the input.
  errors.sort(
    (a, b) =>
      compareText(a.kind, b.kind) || compareText(a.object, b.object) || compareText(a.field, b.field) || compareText(a.message, b.message),
  );
  return { state: { services: state }, errors };
}
