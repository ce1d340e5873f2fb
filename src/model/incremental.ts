// The model with memory, for the reconciler. `full()` computes exactly what computeDesiredState
// computes and keeps, per Service, its drafted ports and their owner (not the parsed Service),
// and per EndpointSlice the object it parsed from (parsed again when needed); `update()` then recomputes only the Services that changed themselves or
// through one of their slices, so an endpoint change costs one Service's model, not the
// cluster's. Frontend conflicts across Services are settled again only when a recomputed
// Service's claims (addresses, ports, age) changed. Same results as computeDesiredState for the
// same objects: test/model/incremental.test.ts holds it to that over random change sequences.
// A Node or config change, or a relist, goes through full().
//
// Last good version (keepLastGood, on by default): an update of a Service or EndpointSlice that
// has errors of its own (a bad address, port, label…) does not replace the version before it:
// the last version that parsed cleanly stays programmed, and the errors are reported with a note
// saying so — so a bad edit never wipes what is programmed, from the API server or a manifest
// file alike, and across relists. An object never seen in good shape is programmed as far as it
// can be, as computeDesiredState does. Removal removes.
import { checkConfig, type CheckedConfig } from './config.js';
import { claimKey, dropConflictingFrontends } from './conflicts.js';
import { draftServicePorts, type DraftOwner, type PortDraft } from './desired-port.js';
import { exact, flatText, NO_ITEMS, type Exact, type FlatText } from './flat-text.js';
import { parseEndpointSlice, type ParsedSlice } from './endpoint-slices.js';
import { toFrontend, type SourcedFrontend } from './frontends.js';
import { readOwnNode, type OwnNode } from './node.js';
import { parseService } from './service-parse.js';
import { listOf, MultiIndex, oneOrMany, type OneOrMany } from './one-or-many.js';
import { ITEMS_PER_STEP, runSteps, type Steps } from './steps.js';
import type { DesiredServicePort, Frontend, ModelError, ModelInput, ModelResult } from './types.js';
import { get, guarded, objectIdentity, ObjectReport } from './validate.js';

/** What changed since the last call, by key ('namespace/name'), and how to read the objects now. */
export interface ModelChanges {
  services: Iterable<string>;
  endpointSlices: Iterable<string>;
  /** The current object, or undefined when it was removed. */
  service(key: string): unknown;
  endpointSlice(key: string): unknown;
}

export interface IncrementalResult extends ModelResult {
  /** Service-port keys added, replaced or removed by this call (every key after full()). */
  changed: ReadonlySet<string>;
}

interface SliceEntry {
  /** 'namespace/service-name' of the owning Service; null when the slice is skipped. */
  serviceKey: string | null;
  /**
   * The object that parsed into the programmed slice (the current one, or the last good one);
   * null when the slice is skipped. Parsed again when its Service is redrafted: keeping 100k
   * parsed endpoints between syncs cost ~16 MB at 10,000 Services, re-parsing one Service's
   * slices costs microseconds.
   */
  source: unknown;
  /** The parsed slice, held only while full() drafts every Service. */
  slice: ParsedSlice | null;
  errors: ModelError[];
}

interface ServiceEntry {
  /** The drafts' owner (the Service's age and error report); null when it was skipped or did not parse. */
  owner: DraftOwner | null;
  /** Frontends before conflicts are settled. */
  drafts: Exact<PortDraft>;
  /** Parse and draft errors. */
  errors: ModelError[];
  /**
   * Age and every port's claims in one string: equal signatures settle conflicts the same way.
   * Built on first use.
   */
  claimsSignature?: string;
  /**
   * Per draft, the ip|port|protocol of each frontend (what conflicts are about); a draft's only
   * claim is kept bare, not in an array of one (56 bytes each, kept for every service port).
   */
  claimKeys: Array<OneOrMany<FlatText> | undefined>;
}

interface Context {
  nodeName: string;
  config: CheckedConfig;
  node: OwnNode;
}

const compareText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const byName = (a: ParsedSlice, b: ParsedSlice): number => compareText(a.name, b.name);

function compareErrors(a: ModelError, b: ModelError): number {
  return compareText(a.kind, b.kind) || compareText(a.object, b.object) || compareText(a.field, b.field) || compareText(a.message, b.message);
}

/** 'namespace/name' of a named object; null for a nameless one (or one whose identity throws). */
function identityKey(raw: unknown): string | null {
  try {
    const { namespace, name } = objectIdentity(raw);
    return name ? `${namespace}/${name}` : null;
  } catch {
    return null;
  }
}

/** An entry's claims signature, built once when an update first compares it ('' for none). */
function claimsSignatureOfEntry(entry: ServiceEntry | undefined): string {
  if (!entry) return '';
  entry.claimsSignature ??= claimsSignatureOf(entry.owner, entry.drafts);
  return entry.claimsSignature;
}

function claimsSignatureOf(service: DraftOwner | null, drafts: readonly PortDraft[]): string {
  if (!service) return '';
  // Kind and field too: a conflict's message names them.
  const ports = drafts.map((d) => `${d.port.key}=${d.frontends.map((f) => `${f.kind}|${f.ip}|${f.port}|${f.field}`).join(',')}`);
  return `${service.createdAtMs};${ports.join(';')}`;
}

function lastGoodNote(kind: string, key: string): ModelError {
  return {
    kind, object: key, field: '', value: undefined,
    message: `${kind} ${key}: this version has errors (above); the last version without errors stays programmed until it is fixed`,
  };
}

function sameFrontends(a: readonly Frontend[], b: readonly Frontend[]): boolean {
  return a.length === b.length && a.every((f, i) => f.kind === b[i]?.kind && f.ip === b[i]?.ip && f.port === b[i]?.port);
}

export interface IncrementalModelOptions {
  /** Keep the last clean version of an object whose update has errors (default true). */
  keepLastGood?: boolean;
}

export class IncrementalModel {
  private readonly keepLastGood: boolean;
  /** The last version of each object that parsed without errors. */
  private readonly lastGoodService = new Map<string, unknown>();
  private readonly lastGoodSlice = new Map<string, unknown>();
  private ctx: Context | undefined;
  /** Input, config and node errors, and those of nameless or duplicate objects (full() only). */
  private fixedErrors: ModelError[] = [];
  private readonly slices = new Map<string, SliceEntry>();
  /** Service key → keys of the slices that name it. */
  private readonly slicesOf = new MultiIndex<string, string>();
  private readonly services = new Map<string, ServiceEntry>();
  /** Conflict errors by Service key, from the last time conflicts were settled. */
  private conflictErrors = new Map<string, ModelError[]>();
  /** The output, kept in key order. */
  private ports = new Map<string, DesiredServicePort>();
  /** Service key → its output port keys; a lone key is kept bare (most Services have one port). */
  private portsOf = new Map<string, OneOrMany<string>>();
  private errors: ModelError[] = [];

  /** full() keeps parsed slices until every Service is drafted; update() parses on demand. */
  private holdParsed = false;

  constructor(opts: IncrementalModelOptions = {}) {
    this.keepLastGood = opts.keepLastGood ?? true;
  }

  /** True once full() ran: update() can follow. */
  get ready(): boolean {
    return this.ctx !== undefined;
  }

  /** Everything from scratch, as computeDesiredState(input). */
  full(input: ModelInput): IncrementalResult {
    return runSteps(this.fullSteps(input));
  }

  /**
   * full(), pausing every ITEMS_PER_STEP objects (src/model/steps.ts). The objects are read from
   * `input` as it is when this starts; nothing else may call this model until it returns.
   */
  *fullSteps(input: ModelInput): Steps<IncrementalResult> {
    const before = new Set(this.ports.keys());
    this.slices.clear();
    this.slicesOf.clear();
    this.services.clear();
    this.fixedErrors = [];
    const r = new ObjectReport('ModelInput', 'input', this.fixedErrors);
    const list = (key: string): readonly unknown[] => {
      const value = get(input, key);
      if (Array.isArray(value)) return value;
      if (value !== undefined && value !== null) r.error(key, value, 'must be a list; read as empty');
      return [];
    };
    const nodeNameValue = get(input, 'nodeName');
    const nodeName = typeof nodeNameValue === 'string' ? nodeNameValue : '';
    if (nodeName === '') r.error('nodeName', nodeNameValue, 'must be a non-empty string');
    const config = checkConfig(get(input, 'config'), this.fixedErrors);
    const node = readOwnNode(list('nodes'), nodeName, this.fixedErrors);
    this.ctx = { nodeName, config, node };

    const slices = list('endpointSlices');
    const services = list('services');
    this.holdParsed = true;
    try {
      for (let index = 0; index < slices.length; index++) {
        const raw = slices[index];
        this.addSlice(raw, index, identityKey(raw), true);
        if (index % ITEMS_PER_STEP === ITEMS_PER_STEP - 1) yield;
      }
      for (let index = 0; index < services.length; index++) {
        const raw = services[index];
        this.addService(raw, index, identityKey(raw), true);
        if (index % ITEMS_PER_STEP === ITEMS_PER_STEP - 1) yield;
      }
    } finally {
      this.holdParsed = false;
      for (const entry of this.slices.values()) entry.slice = null;
    }
    for (const key of this.lastGoodService.keys()) if (!this.services.has(key)) this.lastGoodService.delete(key);
    for (const key of this.lastGoodSlice.keys()) if (!this.slices.has(key)) this.lastGoodSlice.delete(key);
    yield;
    this.settleConflicts();
    const changed = new Set([...before, ...this.ports.keys()]);
    this.collectErrors();
    return { state: { services: this.ports }, errors: this.errors, changed };
  }

  /** Recomputes what `changes` touch. Requires a full() first. */
  update(changes: ModelChanges): IncrementalResult {
    if (!this.ctx) throw new Error('IncrementalModel.update before full()');
    const dirty = new Set<string>(changes.services);
    // The sorted error list is rebuilt only when something touched had or has errors.
    let errorsTouched = false;
    for (const key of changes.endpointSlices) {
      const old = this.slices.get(key);
      if (old?.errors.length) errorsTouched = true;
      if (old?.serviceKey) {
        dirty.add(old.serviceKey);
        this.slicesOf.delete(old.serviceKey, key);
      }
      this.slices.delete(key);
      const raw = changes.endpointSlice(key);
      if (raw === undefined) {
        this.lastGoodSlice.delete(key);
        continue;
      }
      const added = this.addSlice(raw, 0, key, false);
      if (added?.errors.length) errorsTouched = true;
      if (added?.serviceKey) dirty.add(added.serviceKey);
    }

    const changed = new Set<string>();
    let claimsMoved = false;
    for (const key of dirty) {
      const old = this.services.get(key);
      this.services.delete(key);
      const raw = changes.service(key);
      if (raw !== undefined) this.addService(raw, 0, key, false);
      else this.lastGoodService.delete(key);
      const now = this.services.get(key);
      if (claimsSignatureOfEntry(old) !== claimsSignatureOfEntry(now)) claimsMoved = true;
      if (old?.errors.length || now?.errors.length || this.conflictErrors.has(key)) errorsTouched = true;
    }
    if (claimsMoved) {
      errorsTouched = true;
      for (const key of this.settleConflicts()) changed.add(key);
    } else {
      // Same claims everywhere: every conflict settles as before (kept errors, dropped frontends).
      for (const key of dirty) for (const portKey of this.replacePorts(key)) changed.add(portKey);
    }
    if (errorsTouched) this.collectErrors();
    return { state: { services: this.ports }, errors: this.errors, changed };
  }

  /** Parses a slice into this.slices (full(): duplicates and nameless ones only report). */
  private addSlice(raw: unknown, index: number, key: string | null, fromList: boolean): SliceEntry | undefined {
    const errors: ModelError[] = [];
    let parsed = guarded(errors, 'EndpointSlice', raw, null, () => parseEndpointSlice(raw, index, errors));
    let source: unknown = raw;
    const good = key === null ? undefined : this.lastGoodSlice.get(key);
    const listedTwice = fromList && key !== null && this.hasSlice(key);
    if (key !== null && errors.length === 0 && !listedTwice) this.lastGoodSlice.set(key, raw);
    else if (this.keepLastGood && key !== null && good !== undefined && good !== raw && !listedTwice) {
      // This version has errors of its own: the last clean one stays, the errors are reported.
      const kept: ModelError[] = [];
      parsed = guarded(kept, 'EndpointSlice', good, null, () => parseEndpointSlice(good, index, kept));
      source = good;
      errors.push(lastGoodNote('EndpointSlice', key));
    }
    if (key === null || (listedTwice && parsed)) {
      if (parsed && key !== null) new ObjectReport('EndpointSlice', key, errors).error('metadata.name', parsed.slice.name, 'is a duplicate; skipped');
      this.fixedErrors.push(...errors);
      return undefined;
    }
    const previous = this.slices.get(key);
    if (previous && previous.source !== null && !parsed) {
      this.fixedErrors.push(...errors); // an unparsable namesake after a good one: reported only
      return undefined;
    }
    if (previous) this.fixedErrors.push(...previous.errors); // an unparsable namesake listed earlier
    const entry: SliceEntry = {
      serviceKey: parsed ? flatText(parsed.namespace, '/', parsed.serviceName) : null,
      source: parsed ? source : null,
      slice: parsed && this.holdParsed ? parsed.slice : null,
      errors,
    };
    this.slices.set(key, entry);
    if (entry.serviceKey) this.slicesOf.add(entry.serviceKey, key);
    return entry;
  }

  private hasSlice(key: string): boolean {
    const entry = this.slices.get(key);
    return entry !== undefined && entry.source !== null;
  }

  /** The parsed slice of an entry: held during full(), parsed again from its source otherwise. */
  private parsedSlice(key: string): ParsedSlice | null {
    const entry = this.slices.get(key);
    if (!entry || entry.source === null) return null;
    if (entry.slice) return entry.slice;
    const source = entry.source;
    // It parsed before (its errors are already reported): the same object parses the same way.
    return guarded([], 'EndpointSlice', source, null, () => parseEndpointSlice(source, 0, []))?.slice ?? null;
  }

  /** Parses and drafts a Service into this.services (full(): duplicates and nameless ones only report). */
  private addService(raw: unknown, index: number, key: string | null, fromList: boolean): void {
    const ctx = this.ctx as Context;
    const errors: ModelError[] = [];
    let parsed = guarded(errors, 'Service', raw, null, () => parseService(raw, index, ctx.config, errors));
    const good = key === null ? undefined : this.lastGoodService.get(key);
    if (key !== null && errors.length === 0 && !(fromList && this.services.get(key)?.owner)) this.lastGoodService.set(key, raw);
    else if (this.keepLastGood && key !== null && good !== undefined && good !== raw && !(fromList && this.services.get(key)?.owner)) {
      // This version has errors of its own: the last clean one stays, the errors are reported
      // (the kept version's own later errors, drafting and conflicts, go to the same list).
      parsed = guarded(errors, 'Service', good, null, () => parseService(good, index, ctx.config, []));
      parsed?.report.redirect(errors);
      errors.push(lastGoodNote('Service', key));
    }
    if (key === null || (fromList && this.services.get(key)?.owner && parsed)) {
      parsed?.report.error('metadata.name', parsed.name, 'is a duplicate; skipped');
      this.fixedErrors.push(...errors);
      return;
    }
    const previous = this.services.get(key);
    if (previous?.owner && !parsed) {
      this.fixedErrors.push(...errors);
      return;
    }
    if (previous) this.fixedErrors.push(...previous.errors);
    let drafts: Exact<PortDraft> = NO_ITEMS;
    if (parsed) {
      const slices = this.slicesOf.values(key).map((k) => this.parsedSlice(k)).filter((s): s is ParsedSlice => !!s).sort(byName);
      const draftCtx = { ...ctx, slicesByService: new Map([[key, slices]]) };
      drafts = guarded(errors, 'Service', { metadata: parsed }, NO_ITEMS, () => draftServicePorts(parsed, draftCtx));
    }
    const claimKeys = drafts.map((d) => oneOrMany(d.frontends.map((f) => claimKey(f.ip, f.port, d.port.protocol))));
    // The drafts' owner, shared; the ParsedService itself is not kept (see DraftOwner).
    const owner = parsed ? (drafts[0]?.service ?? { createdAtMs: parsed.createdAtMs, report: parsed.report }) : null;
    this.services.set(key, { owner, drafts, errors, claimKeys });
  }

  /**
   * Settles frontend conflicts across every Service (as computeDesiredState does) and rebuilds
   * the output. Returns the port keys whose output changed.
   */
  private settleConflicts(): Set<string> {
    this.conflictErrors = new Map();
    // Each contested ip:port/protocol is settled on its own (the oldest claimant keeps it), so only
    // the drafts that hold a contested claim take part (copied: settling filters their frontends):
    // usually none, and never a sort of them all.
    const claimants = new Map<string, number>();
    for (const entry of this.services.values()) for (const claims of entry.claimKeys) for (const c of listOf(claims)) claimants.set(c, (claimants.get(c) ?? 0) + 1);
    const contested: PortDraft[] = [];
    const settled = new Map<string, Exact<SourcedFrontend>>();
    for (const [key, entry] of this.services) {
      if (!entry.owner) continue;
      let errors: ModelError[] | undefined;
      entry.drafts.forEach((d, i) => {
        if (!listOf(entry.claimKeys[i]).some((c) => (claimants.get(c) ?? 0) > 1)) {
          settled.set(d.port.key, d.frontends);
          return;
        }
        if (!errors) {
          errors = [];
          entry.owner?.report.redirect(errors);
          this.conflictErrors.set(key, errors);
        }
        contested.push({ ...d, frontends: exact(d.frontends) });
      });
    }
    dropConflictingFrontends(contested);
    for (const d of contested) settled.set(d.port.key, d.frontends);
    for (const [key, errors] of this.conflictErrors) if (errors.length === 0) this.conflictErrors.delete(key);
    const changed = new Set<string>();
    const previous = this.ports;
    this.ports = new Map();
    this.portsOf = new Map();
    const next: Array<[string, DesiredServicePort]> = [];
    for (const [key, entry] of this.services) {
      const keys: string[] = [];
      for (const d of entry.drafts) {
        const frontends = (settled.get(d.port.key) ?? []).map(toFrontend);
        const old = previous.get(d.port.key);
        // Unchanged Services keep their port objects: the writer skips them by identity.
        const reuse = old !== undefined && old === d.port && sameFrontends(old.frontends, frontends);
        const port = reuse ? old : { ...d.port, frontends };
        // The draft holds its output port from now on, not a second copy of it.
        d.port = port;
        if (!reuse) changed.add(d.port.key);
        next.push([d.port.key, port]);
        keys.push(d.port.key);
      }
      const portKeys = oneOrMany(keys);
      if (portKeys !== undefined) this.portsOf.set(key, portKeys);
    }
    for (const key of previous.keys()) if (!settled.has(key)) changed.add(key);
    next.sort((a, b) => compareText(a[0], b[0]));
    for (const [k, v] of next) this.ports.set(k, v);
    return changed;
  }

  /**
   * Replaces one Service's ports in the output with its new drafts, each keeping the frontends
   * it had settled (its claims are unchanged). Returns the port keys touched.
   */
  private replacePorts(serviceKey: string): string[] {
    const old = listOf(this.portsOf.get(serviceKey));
    const entry = this.services.get(serviceKey);
    const drafts = entry?.owner ? entry.drafts : [];
    if (!entry?.owner) this.conflictErrors.delete(serviceKey);
    // Conflict errors of this Service stay valid (same claims); later ones would go to its errors.
    else entry.owner.report.redirect(this.conflictErrors.get(serviceKey) ?? []);
    const keys = drafts.map((d) => d.port.key);
    // Deleting a key that is set again would move it to the end: only the gone ones go.
    for (const key of old) if (!keys.includes(key)) this.ports.delete(key);
    let added = false;
    for (const d of drafts) {
      // Same claims: the port keeps its settled frontends (a new port, none contested, all of its own).
      const frontends = this.ports.get(d.port.key)?.frontends ?? d.frontends.map(toFrontend);
      const port = { ...d.port, frontends };
      d.port = port;
      if (!this.ports.has(d.port.key)) added = true;
      this.ports.set(d.port.key, port);
    }
    const portKeys = oneOrMany(keys);
    if (portKeys !== undefined) this.portsOf.set(serviceKey, portKeys);
    else this.portsOf.delete(serviceKey);
    if (added) this.ports = new Map([...this.ports].sort((a, b) => compareText(a[0], b[0])));
    return [...new Set([...old, ...keys])];
  }

  /** The sorted error list: fixed ones, then every slice's, Service's and conflict's. */
  private collectErrors(): void {
    const all = [...this.fixedErrors];
    for (const e of this.slices.values()) if (e.errors.length > 0) all.push(...e.errors);
    for (const e of this.services.values()) if (e.errors.length > 0) all.push(...e.errors);
    for (const errors of this.conflictErrors.values()) all.push(...errors);
    all.sort(compareErrors);
    this.errors = all;
  }
}
