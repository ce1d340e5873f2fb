// The demo's output (stdout, one line at a time) and its small waiting helper.
export const say = (line = '') => void process.stdout.write(line + '\n');

/** Indents every line of `text` by two spaces (sluicectl tables under a heading). */
export function indent(text: string, by = '  '): string {
  return text.trimEnd().split('\n').map((l) => by + l).join('\n');
}

export async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`demo: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
