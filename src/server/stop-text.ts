// Stop sequences for streamed text. A stop string can arrive split over several tokens ("\n" then "Q:"),
// so a streamer must hold back any tail that could still become a stop, and never send text past one.

/** Text up to the earliest occurrence of any stop string, and whether one was found. */
export function truncateAtStop(text: string, stops: readonly string[] | undefined): { text: string; stopped: boolean } {
  let cut = -1;
  for (const s of stops ?? []) {
    const k = text.indexOf(s);
    if (k >= 0 && (cut < 0 || k < cut)) cut = k;
  }
  return cut < 0 ? { text, stopped: false } : { text: text.slice(0, cut), stopped: true };
}

/** Length of the longest suffix of `text` that is a proper prefix of some stop string. */
function heldTail(text: string, stops: readonly string[]): number {
  let best = 0;
  for (const s of stops) {
    for (let n = Math.min(s.length - 1, text.length); n > best; n--) {
      if (text.endsWith(s.slice(0, n))) {
        best = n;
        break;
      }
    }
  }
  return best;
}

/** Turns model pieces into the deltas a client may see, so that the deltas concatenate to the final text. */
export class StopSafeStream {
  #text = '';
  #sent = 0;
  #stopped = false;
  constructor(readonly stops: readonly string[] = []) {}

  /** Text emitted so far. */
  get sent(): string {
    return this.#text.slice(0, this.#sent);
  }

  /** Add a piece; returns the part that is now safe to send ('' if none). */
  push(piece: string): string {
    if (this.#stopped) return '';
    this.#text += piece;
    const cut = truncateAtStop(this.#text, this.stops);
    if (cut.stopped) {
      this.#stopped = true;
      this.#text = cut.text;
      return this.#take(this.#text.length);
    }
    return this.#take(this.#text.length - heldTail(this.#text, this.stops));
  }

  /** The rest of `finalText` not yet sent. The final text is authoritative; if it does not extend what was
   * sent (a model whose pieces and final text disagree), nothing more is sent rather than garbage. */
  finish(finalText: string): string {
    const sent = this.sent;
    this.#stopped = true;
    if (!finalText.startsWith(sent)) return '';
    this.#text = finalText;
    return this.#take(finalText.length);
  }

  #take(upto: number): string {
    if (upto <= this.#sent) return '';
    const out = this.#text.slice(this.#sent, upto);
    this.#sent = upto;
    return out;
  }
}
