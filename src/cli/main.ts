// `alignlab <command>`: each command lives in its own file and is loaded only when used,
// so `alignlab inspect` does not pay for the evaluation stack.
//
// Argument parsing is commander's (one library for every command): it has no dependencies of its own,
// does subcommands and generates each command's --help from the options it declares (so help cannot
// drift from what is accepted), gives --version, and with `showSuggestionAfterError` answers a mistyped
// flag or command with the nearest known one. It has no shell completion of its own, so there is none.
//
// Exit codes: 0 done; 1 a runtime error (one line `alignlab <cmd>: <message>`, the stack only with
// ALIGNLAB_DEBUG=1); 2 a usage error; 130 / 143 stopped by SIGINT / SIGTERM (results kept, see signals.ts).
import { CommanderError } from 'commander';
import { program, tidy, UsageError } from './args.js';

interface Command {
  summary: string;
  load: () => Promise<{ main(argv: string[]): Promise<void | number> }>;
}

export const COMMANDS: Record<string, Command> = {
  study: { summary: 'run the DPO-vs-PPO study and write its report (--quick for a 3-minute version)', load: () => import('./study.js') },
  train: { summary: 'train sft|rm|dpo|ppo|grpo|rloo --config FILE.yaml [--resume RUN_DIR]', load: () => import('./train.js') },
  runs: { summary: 'list training runs and their final metrics', load: () => import('./runs.js') },
  dashboard: { summary: 'show runs, studies and evaluations on a live page at http://127.0.0.1:8686/', load: () => import('./dashboard.js') },
  eval: { summary: 'evaluate providers on tasks --config eval.yaml → leaderboard', load: () => import('./eval.js') },
  serve: { summary: 'serve a model over an OpenAI-compatible HTTP API', load: () => import('./serve.js') },
  inspect: { summary: 'show a model directory: architecture, sizes, parameter count, weight files checked', load: () => import('./inspect.js') },
  logits: { summary: 'print full logits for a sequence of token ids as JSON', load: () => import('./logits.js') },
  generate: { summary: 'sample text from a model', load: () => import('./generate.js') },
  export: { summary: 'export gguf --model DIR --out FILE', load: () => import('./export.js') },
  pull: { summary: 'download a model repository from the Hugging Face hub (org/name) into its cache', load: () => import('./pull.js') },
  init: { summary: 'create a tiny random model directory (for trying things out)', load: () => import('./init.js') },
};

/** The top level: lists the commands (their flags live in their own files), --help, --version. */
function topLevel() {
  const p = program()
    .usage('[options] <command>')
    .description('Evaluate open LLMs and compare DPO vs PPO, measured.')
    .addHelpText('after', '\nalignlab <command> --help lists its flags.\nExit codes: 0 ok, 1 error, 2 usage error, 130/143 stopped by SIGINT/SIGTERM (results kept).');
  for (const [name, c] of Object.entries(COMMANDS)) p.command(name).description(c.summary);
  return p;
}

export function usage(): string {
  return topLevel().helpInformation();
}

export async function run(argv: string[]): Promise<number> {
  let [name, ...rest] = argv;
  if (name === 'help' && rest.length === 1 && rest[0]! in COMMANDS) [name, rest] = [rest[0]!, ['--help']];
  const cmd = name === undefined ? undefined : COMMANDS[name];
  if (!cmd) {
    // No command, a flag (--help, --version) or an unknown name: commander answers (with a suggestion).
    try {
      await topLevel().parseAsync(argv, { from: 'user' });
      return 0;
    } catch (e) {
      if (!(e instanceof CommanderError)) throw e;
      if (e.exitCode === 0) return 0;
      if (e.code !== 'commander.help') console.error(`alignlab: ${tidy(e.message)} (alignlab --help lists the commands)`);
      return 2;
    }
  }
  try {
    return (await (await cmd.load()).main(rest)) ?? 0;
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
