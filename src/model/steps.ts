// Long computations (a full model, a full apply) written as generators that pause — `yield` —
// every so often, so that the same code either runs to the end at once (runSteps) or gives the
// event loop a turn whenever it has held it for a slice (runStepsYielding). A sync of 65,536
// dual-stack Services takes seconds of CPU; run whole, it kept the admin socket, the metrics
// server and the watches waiting until it ended. A pause point costs nothing when nobody yields.

/** A computation that pauses (yields nothing) between pieces and returns T. */
export type Steps<T> = Generator<void, T, void>;

/** Items a loop handles between two pause points. */
export const ITEMS_PER_STEP = 256;

/** Runs `steps` to the end without giving the event loop a turn. */
export function runSteps<T>(steps: Steps<T>): T {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/** How a computation gives the event loop a turn: by default, after the pending I/O (setImmediate). */
export type Turn = () => Promise<void>;

export const nextTurn: Turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Runs `steps`, giving the event loop a turn (`turn`) at the first pause point after each
 * `sliceMs` of work: what arrived meanwhile (an admin request, a metrics scrape, a watch event)
 * is served, then the computation goes on. `sliceMs` 0: a turn at every pause point.
 */
export async function runStepsYielding<T>(steps: Steps<T>, sliceMs: number, turn: Turn = nextTurn): Promise<T> {
  let since = performance.now();
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    if (performance.now() - since >= sliceMs) {
      await turn();
      since = performance.now();
    }
  }
}
