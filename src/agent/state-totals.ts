// Frontend and backend-slot totals of the desired state, for the sync report and metrics. Kept per
// service port, so an incremental sync recounts only the ports it changed: counting 10,000
// service ports on every endpoint change was about a millisecond of each sync.
import type { DesiredServicePort, DesiredState } from '../model/types.js';

interface PortCounts {
  frontends: number;
  backends: number;
}

const countsOf = (sp: DesiredServicePort): PortCounts => ({
  frontends: sp.frontends.length,
  backends: sp.clusterBackends.length + sp.localBackends.length,
});

export class StateTotals {
  private readonly perPort = new Map<string, PortCounts>();
  frontends = 0;
  backends = 0;

  /** `changed`: the service-port keys that may differ from the state given last; none = recount all. */
  update(state: DesiredState, changed?: ReadonlySet<string>): void {
    if (!changed) {
      this.perPort.clear();
      this.frontends = 0;
      this.backends = 0;
      for (const [key, sp] of state.services) this.add(key, sp);
      return;
    }
    for (const key of changed) {
      const old = this.perPort.get(key);
      if (old) {
        this.frontends -= old.frontends;
        this.backends -= old.backends;
        this.perPort.delete(key);
      }
      const sp = state.services.get(key);
      if (sp) this.add(key, sp);
    }
  }

  private add(key: string, sp: DesiredServicePort): void {
    const c = countsOf(sp);
    this.perPort.set(key, c);
    this.frontends += c.frontends;
    this.backends += c.backends;
  }
}
