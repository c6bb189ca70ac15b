import { hubEnv, pull } from '../formats/hub.js';
import { command, parse } from './args.js';
import { interrupts } from './signals.js';

export const cli = () =>
  command('pull', 'download a model repository from the Hugging Face hub into its cache (resumable, checksummed)')
    .argument('<repo>', 'repository id, e.g. openai-community/gpt2')
    .option('--revision <rev>', 'branch, tag or commit', 'main')
    .option('--include <glob...>', 'only files matching these patterns (fnmatch, as huggingface-cli: "*.json" "*.safetensors")')
    .addHelpText(
      'after',
      [
        '',
        'Environment: HF_ENDPOINT (default https://huggingface.co), HF_HOME (default ~/.cache/huggingface; the cache is',
        '$HF_HOME/hub, or HF_HUB_CACHE), HF_TOKEN for private and gated repositories.',
        'Afterwards any command takes the id where it takes a model directory, e.g. `alignlab inspect --model org/name`,',
        'and `gguf:org/name/file.gguf` in an eval config. Run the same command again to resume an interrupted download.',
      ].join('\n'),
    );

export async function main(argv: string[]): Promise<number | void> {
  const cmd = cli();
  if (!(await parse(cmd, argv))) return;
  const [repoId] = cmd.args;
  const o = cmd.opts<{ revision: string; include?: string[] }>();
  const env = hubEnv();
  // The partial file is kept on a signal; the same command resumes it.
  const stop = interrupts((sig) => `${sig}: stopping; run the same command again to resume the download`);
  try {
    const r = await pull(repoId!, { revision: o.revision, include: o.include, env, signal: stop.signal, log: (l) => console.error(l) });
    const bytes = r.files.reduce((s, f) => s + f.size, 0);
    const fresh = r.files.filter((f) => !f.cached).length;
    console.error(`${repoId}@${o.revision} (commit ${r.commit.slice(0, 12)}): ${r.files.length} files, ${(bytes / 1e6).toFixed(1)} MB, ${fresh} downloaded, ${r.files.length - fresh} already cached`);
    console.log(r.snapshot);
  } catch (e) {
    if (stop.signal.aborted) return stop.exitCode();
    throw e;
  } finally {
    stop.dispose();
  }
}
