/** `torch.nn.modules.utils` state-dict helpers for DataParallel checkpoints. */
import { OrderedDict } from '../values';

/**
 * `consume_prefix_in_state_dict_if_present(state_dict, prefix)`, in place, with PyTorch's
 * exact semantics (FORMAT.md §9): stripped keys move to the end; `_metadata` keys equal to
 * `prefix` without ANY dots, or starting with `prefix`, are renamed (so `'module'` becomes `''`
 * and overwrites the root entry in place); the root `''` entry is skipped.
 */
export function consumePrefixInStateDictIfPresent(stateDict: Map<string, unknown>, prefix: string): void {
  for (const key of [...stateDict.keys()]) {
    if (key.startsWith(prefix)) {
      const v = stateDict.get(key);
      stateDict.delete(key);
      stateDict.set(key.slice(prefix.length), v);
    }
  }
  const md = (stateDict as OrderedDict<string, unknown>)._metadata;
  if (md) {
    const bare = prefix.split('.').join('');
    for (const key of [...md.keys()]) {
      if (key.length === 0) continue;
      if (key === bare || key.startsWith(prefix)) {
        const v = md.get(key)!;
        md.delete(key);
        md.set(key.slice(prefix.length), v);
      }
    }
  }
}

/**
 * A new state dict without any leading `module.` prefixes, however deeply the model was
 * wrapped (`DataParallel(DataParallel(model))` gives `module.module.fc.weight`). Keeps the
 * order and `_metadata` (renamed the same way; wrapper entries dropped). The seed's
 * `k[7:]` loop strips exactly one level; this strips every level, and only from keys that
 * have the prefix.
 */
export function stripModulePrefix<V>(stateDict: Map<string, V>, prefix = 'module.'): OrderedDict<string, V> {
  const strip = (k: string): string => {
    while (k.startsWith(prefix)) k = k.slice(prefix.length);
    return k;
  };
  const out = new OrderedDict<string, V>();
  for (const [k, v] of stateDict) out.set(strip(k), v);
  const md = (stateDict as OrderedDict<string, V>)._metadata;
  if (md) {
    const bare = prefix.endsWith('.') ? prefix.slice(0, -1) : prefix;
    const newMd = new OrderedDict<string, Map<string, unknown>>();
    for (const [k, v] of md) {
      let key = k;
      // 'module', 'module.module', ... are the wrapped model's own entry: it becomes the root.
      while (key === bare || key.startsWith(prefix)) key = key === bare ? '' : key.slice(prefix.length);
      if (key === '' && k !== '' && newMd.has('')) {
        newMd.set('', v); // the innermost wrapped model's entry wins over the wrappers'
        continue;
      }
      if (!newMd.has(key) || key === '') newMd.set(key, v);
    }
    out._metadata = newMd;
  }
  return out;
}

/** The seed's loop, verbatim: `for k, v in sd.items(): new[k[7:]] = v` (one level, every key). */
export function dropFirstChars<V>(stateDict: Map<string, V>, n = 7): OrderedDict<string, V> {
  const out = new OrderedDict<string, V>();
  for (const [k, v] of stateDict) out.set(k.slice(n), v);
  return out;
}
