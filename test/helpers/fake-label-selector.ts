// Equality-based label selectors as the API server parses them, for the fake API server:
// `key`, `!key`, `key=value`, `key==value`, `key!=value`, comma-separated terms ANDed.
// Set-based terms (`in`, `notin`) are rejected: Sluice never sends them.

export type LabelRequirement =
  | { op: 'exists' | 'notExists'; key: string }
  | { op: 'equals' | 'notEquals'; key: string; value: string };

export type LabelSelector = LabelRequirement[];

const KEY = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

export class LabelSelectorError extends Error {}

export function parseLabelSelector(text: string): LabelSelector {
  const selector: LabelSelector = [];
  for (const rawTerm of text.split(',')) {
    const term = rawTerm.trim();
    if (term === '') {
      if (text.trim() === '') continue;
      throw new LabelSelectorError(`empty term in label selector "${text}"`);
    }
    if (/\s(in|notin)\s/.test(` ${term} `)) throw new LabelSelectorError(`set-based term "${term}" not supported`);
    let requirement: LabelRequirement;
    const match = /^([^!=]+)(!=|==|=)(.*)$/.exec(term);
    if (term.startsWith('!')) requirement = { op: 'notExists', key: term.slice(1).trim() };
    else if (match) {
      const [, key = '', op, value = ''] = match;
      requirement = { op: op === '!=' ? 'notEquals' : 'equals', key: key.trim(), value: value.trim() };
      if (!VALUE.test(requirement.value)) throw new LabelSelectorError(`invalid label value in "${term}"`);
    } else requirement = { op: 'exists', key: term };
    if (!KEY.test(requirement.key)) throw new LabelSelectorError(`invalid label key in "${term}"`);
    selector.push(requirement);
  }
  return selector;
}

export function matchesLabels(selector: LabelSelector, labels: Record<string, string> | undefined): boolean {
  const has = (key: string) => labels !== undefined && Object.hasOwn(labels, key);
  return selector.every((req) => {
    switch (req.op) {
      case 'exists':
        return has(req.key);
      case 'notExists':
        return !has(req.key);
      case 'equals':
        return has(req.key) && labels?.[req.key] === req.value;
      case 'notEquals':
        // As in Kubernetes: a missing label satisfies `key!=value`.
        return !has(req.key) || labels?.[req.key] !== req.value;
    }
  });
}
