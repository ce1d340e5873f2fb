// Reads sluicectl's fixed-width tables back into records, so tests can compare a table with the
// JSON of the same command cell by cell. Column boundaries are runs of at least two character
// positions that are blank on every line (empty cells are fine as long as the header is there).

export interface ParsedTable {
  headers: string[];
  rows: Record<string, string>[];
}

export function parseTable(text: string): ParsedTable {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const width = Math.max(...lines.map((l) => l.length));
  const blank = Array.from({ length: width }, (_, i) => lines.every((l) => (l[i] ?? ' ') === ' '));
  const spans: [number, number][] = [];
  let start = -1;
  for (let i = 0; i <= width; i++) {
    const gap = i === width || (blank[i] && blank[i + 1]) || (blank[i] && blank[i - 1]);
    if (!gap && start < 0) start = i;
    if (gap && start >= 0) {
      spans.push([start, i]);
      start = -1;
    }
  }
  const cells = (line: string): string[] => spans.map(([a, b]) => line.slice(a, b).trim());
  const [head = '', ...body] = lines;
  const headers = cells(head);
  return { headers, rows: body.map((l) => Object.fromEntries(cells(l).map((c, i) => [headers[i] ?? `#${i}`, c]))) };
}

/** Splits sluicectl output into titled sections (a line in capitals followed by a table). */
export function sections(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  let current = '';
  for (const line of text.split('\n')) {
    if (/^[A-Z]+( [A-Z]+)*$/.test(line)) {
      current = line;
      out[current] = '';
    } else if (current) out[current] += line + '\n';
  }
  return out;
}
