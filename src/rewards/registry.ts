// Built-in reward functions that a PPO/GRPO/RLOO config can name (`reward: { function: ID }`), with
// promptfoo-like ids: a name, optionally `name:argument`. A learned reward model is the other source
// (`reward: { model: DIR }`, see train/run-data.ts loadRewardModel).

import { textReward, tokenReward, type RewardFn } from './types.js';
import { vaderCompound } from './vader.js';
import { detokenize } from '../data/sotu.js';
import type { Tokenizer } from '../formats/tokenizer.js';

/** What a reward function may need from the run: the policy's tokenizer (to read token ids as words). */
export interface RewardContext {
  tokenizer?: Tokenizer;
}

interface RewardSpec {
  /** One line for docs and error messages. */
  help: string;
  /** Builds the function from the text after the colon ('' when there is none). */
  make: (arg: string, ctx: RewardContext) => RewardFn;
  needsArg: boolean;
}

export const REWARD_FUNCTIONS: Record<string, RewardSpec> = {
  sentiment: {
    help: 'VADER compound sentiment of the completion text, in [-1, 1] (the study\'s gold reward)',
    make: () => textReward((t) => vaderCompound(t)),
    needsArg: false,
  },
  'word-sentiment': {
    help: 'VADER compound sentiment of the completion\'s tokens read as words and joined as the study joins them (no space before closing punctuation; special tokens dropped): the study\'s gold reward, for word-level tokenizers',
    make: (_arg, { tokenizer }) => {
      if (!tokenizer) throw new Error('reward function "word-sentiment" needs the policy\'s tokenizer');
      return tokenReward((ids) => vaderCompound(detokenize(ids.filter((i) => !tokenizer.isSpecial(i) || tokenizer.tokenOf(i) === '<unk>').map((i) => tokenizer.tokenOf(i) ?? '<unk>'))));
    },
    needsArg: false,
  },
  chars: {
    help: 'chars:SET — share of the completion\'s characters that are in SET, in [0, 1] (a dense toy reward a tiny model learns in seconds)',
    make: (set) => {
      const allowed = new Set(set);
      return textReward((t) => {
        const cs = [...t];
        return cs.length === 0 ? 0 : cs.filter((ch) => allowed.has(ch)).length / cs.length;
      });
    },
    needsArg: true,
  },
  contains: {
    help: 'contains:TEXT — 1 when the completion contains TEXT, else 0',
    make: (x) => textReward((t) => (t.includes(x) ? 1 : 0)),
    needsArg: true,
  },
};

/** The reward function an id names; throws a message listing the known ids. */
export function rewardFunction(id: string, ctx: RewardContext = {}): RewardFn {
  const i = id.indexOf(':');
  const name = i < 0 ? id : id.slice(0, i);
  const arg = i < 0 ? '' : id.slice(i + 1);
  const spec = REWARD_FUNCTIONS[name];
  const known = Object.entries(REWARD_FUNCTIONS).map(([k, s]) => (s.needsArg ? `${k}:…` : k)).join(', ');
  if (!spec) throw new Error(`unknown reward function "${id}" (known: ${known})`);
  if (spec.needsArg && arg === '') throw new Error(`reward function "${name}" needs an argument: ${spec.help}`);
  if (!spec.needsArg && arg !== '') throw new Error(`reward function "${name}" takes no argument (got "${arg}")`);
  return spec.make(arg, ctx);
}
