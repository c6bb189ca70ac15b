// Moving parameter trees between the host (Float32Array) and the engine's device.
import { np, type Arr } from '../engine/index.js';
import { mapTree, type HostParams, type HostTensor, type ParamTree } from '../engine/tree.js';

export function toDevice(host: HostParams): ParamTree<Arr> {
  return mapTree(host, (t) => np.array(t.data, { shape: t.shape }));
}

/** Copy device params to the host; the caller keeps its arrays. */
export async function toHost(params: ParamTree<Arr>): Promise<HostParams> {
  const pending: Promise<void>[] = [];
  const out = mapTree(params, (x) => {
    const t: HostTensor = { shape: [...x.shape], data: new Float32Array(0) };
    pending.push(x.ref.data().then((d) => void (t.data = d instanceof Float32Array ? d : Float32Array.from(d as ArrayLike<number>))));
    return t;
  });
  await Promise.all(pending);
  return out;
}
