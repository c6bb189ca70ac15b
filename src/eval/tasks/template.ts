// Prompt templates are Jinja (the dialect of Hugging Face chat templates, via @huggingface/jinja).
// Before rendering anything we list the row fields a template reads, so a row that lacks one is an
// error naming the row and the field instead of a prompt with a silent hole in it.
import { Template } from '@huggingface/jinja';

const GLOBALS = new Set(['true', 'false', 'none', 'True', 'False', 'None', 'range', 'namespace', 'raise_exception', 'strftime_now', 'loop']);

export interface CompiledTemplate {
  source: string;
  /** Top-level names the template reads (row fields). */
  variables: string[];
  render(vars: Record<string, unknown>): string;
}

type Node = { type?: string; [k: string]: unknown };

/** Walks the parsed template and collects the free variable names it requires (not loop/set-bound, not filters or tests, not `is defined` checks). */
function freeVariables(program: unknown): string[] {
  const used = new Set<string>();
  const bound = new Set<string>();
  const optional = new Set<string>();
  const bindTargets = (n: unknown) => {
    const node = n as Node;
    if (node?.type === 'Identifier') bound.add(node.value as string);
    else if (node?.type === 'TupleLiteral') for (const x of node.value as unknown[]) bindTargets(x);
  };
  const visit = (n: unknown): void => {
    if (Array.isArray(n)) return n.forEach(visit);
    if (n instanceof Map) {
      for (const [k, v] of n) {
        visit(k);
        visit(v);
      }
      return;
    }
    if (typeof n !== 'object' || n === null) return;
    const node = n as Node;
    switch (node.type) {
      case 'Identifier':
        used.add(node.value as string);
        return;
      case 'MemberExpression':
        visit(node.object);
        if (node.computed) visit(node.property);
        return;
      case 'FilterExpression':
        visit(node.operand);
        if ((node.filter as Node).type === 'CallExpression') visit((node.filter as Node).args);
        return;
      case 'FilterStatement':
        if ((node.filter as Node).type === 'CallExpression') visit((node.filter as Node).args);
        visit(node.body);
        return;
      case 'TestExpression': {
        // `x is defined` is how a template makes a field optional: such a field is not required.
        const op = node.operand as Node;
        if (op.type === 'Identifier' && ['defined', 'undefined'].includes((node.test as Node).value as string)) optional.add(op.value as string);
        else visit(node.operand);
        return;
      }
      case 'KeywordArgumentExpression':
        visit(node.value);
        return;
      case 'For':
        bindTargets(node.loopvar);
        visit(node.iterable);
        visit(node.body);
        visit(node.defaultBlock);
        return;
      case 'Set':
        bindTargets(node.assignee);
        visit(node.value);
        visit(node.body);
        return;
      case 'Macro':
        bindTargets(node.name);
        for (const a of node.args as Node[]) bindTargets(a.type === 'KeywordArgumentExpression' ? a.key : a);
        visit(node.body);
        return;
    }
    for (const [k, v] of Object.entries(node)) if (k !== 'type') visit(v);
  };
  visit(program);
  return [...used].filter((v) => !bound.has(v) && !optional.has(v) && !GLOBALS.has(v)).sort();
}

export function compileTemplate(source: string, what = 'template'): CompiledTemplate {
  let t: Template;
  try {
    t = new Template(source);
  } catch (e) {
    throw new Error(`${what}: invalid Jinja template (${(e as Error).message})`);
  }
  const variables = freeVariables(t.parsed);
  return {
    source,
    variables,
    render: (vars) => {
      try {
        return t.render(vars);
      } catch (e) {
        throw new Error(`${what}: rendering failed (${(e as Error).message})`);
      }
    },
  };
}
