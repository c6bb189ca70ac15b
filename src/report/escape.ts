// Escaping for the two report formats. Every piece of text that reaches a report goes through one of these:
// sample generations are model output and may contain anything.

const HTML: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text for HTML element content or a quoted attribute value. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => HTML[c]!);
}

/**
 * Text for a Markdown table cell or paragraph: no raw HTML (entities instead), no emphasis/code markers,
 * no column breaks, no line breaks, no links. Square brackets stay readable: only `](` could form a link.
 */
export function escapeMd(s: string): string {
  return s
    .replace(/[\\`*_|]/g, (c) => `\\${c}`)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/\]\(/g, ']\\(')
    .replace(/\r?\n/g, ' ');
}
