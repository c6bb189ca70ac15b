// `alignlab <command>`: each command lives in its own file and is loaded only when used,
// so `alignlab inspect` does not pay for the evaluation stack.
import { UsageError } from './args.js';

interface Command {
  summary: string;
  load: () => Promise<{ main(argv: string[]): Promise<void> }>;
}

export const COMMANDS: Record<string, Command> = {
  study: { summary: 'run the DPO-vs-PPO study and write its report (--quick for a 3-minute version)', load: () => import('./study.js') },
  train: { summary: 'train sft|rm|dpo|ppo|grpo|rloo --config FILE.yaml [--resume RUN_DIR]', load: () => import('./train.js') },
  runs: { summary: 'list training runs and their final metrics', load: () => import('./runs.js') },
  eval: { summary: 'evaluate providers on tasks --config eval.yaml → leaderboard', load: () => import('./eval.js') },
  serve: { summary: 'serve a model over an OpenAI-compatible HTTP API', load: () => import('./serve.js') },
  inspect: { summary: 'show a model directory: architecture, sizes, parameter count', load: () => import('./inspect.js') },
  logits: { summary: 'print full logits for a sequence of token ids as JSON', load: () => import('./logits.js') },
  generate: { summary: 'sample text from a model', load: () => import('./generate.js') },
  export: { summary: 'export gguf --model DIR --out FILE', load: () => import('./export.js') },
  init: { summary: 'create a tiny random model directory (for trying things out)', load: () => import('./init.js') },
};

export function usage(): string {
  const w = Math.max(...Object.keys(COMMANDS).map((k) => k.length));
  return ['usage: alignlab <command> [flags]', '', ...Object.entries(COMMANDS).map(([k, c]) => `  ${k.padEnd(w)}  ${c.summary}`), '', 'alignlab <command> --help for its flags'].join('\n');
}

export async function run(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name ? 0 : 1;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    console.error(`alignlab: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  try {
    await (await cmd.load()).main(rest);
    return 0;
  } catch (e) {
    const err = e as Error;
    if (err instanceof UsageError) {
      console.error(`alignlab ${name}: ${err.message}`);
      return 2;
    }
    console.error(`alignlab ${name}: ${err.message}`);
    if (process.env.ALIGNLAB_DEBUG) console.error(err.stack);
    return 1;
  }
}
