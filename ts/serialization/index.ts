/**
 * `torch.load` / `torch.save` for TypeScript: the raw tree (ts/raw/tree.ts) ↔ TS values.
 *
 * Loading: the binding returns `{root, storages, info}`; {@link fromRaw} builds one
 * {@link UntypedStorage} per file storage (tensors viewing it share it, so views stay views),
 * resolves each storage's device (`mapLocation`), and turns tagged nodes into classes.
 * Identity survives: a raw node reached twice is one JS object, so it becomes one TS value.
 * Integral Python floats (`2.0`) load as numbers; their positions are remembered per
 * container (a WeakMap) so that a re-save writes floats again.
 * PyObjects whose `module.name` has a class (`classes` option, then the global registry)
 * are replaced bottom-up by `cls.fromPyObject(obj)`.
 *
 * Saving: {@link toRaw} walks the value, gives every compound object an id (later
 * occurrences become `{t:'ref', id}`), collects each distinct UntypedStorage once, and names
 * the path of anything it cannot write (`E_UNSERIALIZABLE`).
 *
 * Files: `options` (the public option types), `load`, `save`, `from-raw` / `to-raw` (the
 * two conversions), `devices` (storage placement), `facts` (what a load remembers for the
 * next save).
 */
export type { MapLocation, NamedPyClass, LoadOptions, LoadAsyncOptions, SaveOptions, SaveAsyncOptions, WritableLike, SaveTarget, LoadInfo } from './options';
export type { CancelledError } from './cancel';
export { isTensor, isStateDict, loadStateDict, loadStateDictAsync, type LoadStateDictOptions, type LoadStateDictAsyncOptions } from './typed';
export { wasPyFloat, markPyFloat, storageInfo, type StorageFacts } from './facts';
export { fromRaw, fromRawAsync } from './from-raw';
export { toRaw } from './to-raw';
export { load, isSafetensorsPath, loadSafetensorsWithInfo, loadWithInfo, loadAsync } from './load';
export { save, saveAsync } from './save';
